//! The key-value index: every version of every key, folded from the canonical chain and
//! unfolded block by block on a reorg.

use super::block::Block;
use super::crypto::{AuthorKey, TxId};
use super::tx::Op;
use std::collections::HashMap;
use std::sync::Arc;

/// One version of a key: a value or a tombstone, and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The value, or `None` for a delete (a tombstone).
    pub value: Option<Arc<[u8]>>,
    /// Height of the block that holds the write.
    pub height: u64,
    /// The write's tx id.
    pub tx_id: TxId,
    /// Who signed the write.
    pub author: AuthorKey,
    /// The author's timestamp, in milliseconds.
    pub timestamp: u64,
}

/// Per key, every version in chain order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    keys: HashMap<String, Vec<Version>>,
    versions: usize,
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// The index folded from genesis over `blocks`, which must be a chain in order
    /// starting at height 1.
    pub fn fold<'a>(blocks: impl IntoIterator<Item = &'a Block>) -> Index {
        let mut index = Index::new();
        for b in blocks {
            index.apply(b);
        }
        index
    }

    /// Adds the writes of `block` (the new tip) to the index.
    pub fn apply(&mut self, block: &Block) {
        let height = block.header.height;
        for tx in &block.txs {
            let (key, value) = match tx.op() {
                Op::Put { key, value } => (key, Some(Arc::from(value.as_slice()))),
                Op::Delete { key } => (key, None),
            };
            let version = Version {
                value,
                height,
                tx_id: tx.id(),
                author: tx.author(),
                timestamp: tx.timestamp(),
            };
            match self.keys.get_mut(key.as_str()) {
                Some(list) => list.push(version),
                None => {
                    self.keys.insert(key.clone(), vec![version]);
                }
            }
            self.versions += 1;
        }
    }

    /// Removes the writes of `block`, which must be the last block applied.
    pub fn undo(&mut self, block: &Block) {
        for tx in block.txs.iter().rev() {
            let key = tx.op().key();
            if let Some(list) = self.keys.get_mut(key) {
                let popped = list.pop();
                debug_assert_eq!(popped.map(|v| v.tx_id), Some(tx.id()));
                self.versions -= 1;
                if list.is_empty() {
                    self.keys.remove(key);
                }
            }
        }
    }

    /// The newest version of `key`, tombstone included.
    pub fn latest(&self, key: &str) -> Option<&Version> {
        self.keys.get(key).and_then(|l| l.last())
    }

    /// Every version of `key` in chain order.
    pub fn history(&self, key: &str) -> &[Version] {
        self.keys.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Number of keys that have at least one version.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Number of versions across all keys.
    pub fn version_count(&self) -> usize {
        self.versions
    }
}
