//! The key-value index: every version of every key, folded from the canonical chain and
//! unfolded block by block on a reorg.

use super::block::Block;
use super::crypto::{AuthorKey, Hash, TxId};
use super::tx::Op;
use sha2::{Digest, Sha256};
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
#[derive(Clone, Debug, Default)]
pub struct Index {
    keys: HashMap<String, Vec<Version>>,
    versions: usize,
    /// Bumped by every change, so a digest can be cached until the next one.
    generation: u64,
}

/// Two indexes are equal when they hold the same versions, however they got there.
impl PartialEq for Index {
    fn eq(&self, other: &Index) -> bool {
        self.keys == other.keys
    }
}

impl Eq for Index {}

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
        self.generation += 1;
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
        self.generation += 1;
    }

    /// A counter that changes whenever the index does.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// SHA-256 of the whole index: every key in byte order, each with its versions in chain
    /// order (height, tx id, whether it is a delete). The tx id commits to the author and
    /// the value, so two nodes with equal digests hold the same versions of every key.
    pub fn digest(&self) -> Hash {
        let mut keys: Vec<(&String, &Vec<Version>)> = self.keys.iter().collect();
        keys.sort_unstable_by_key(|(key, _)| *key);
        let mut h = Sha256::new();
        h.update(b"kvchain/index/v1\0");
        for (key, versions) in keys {
            h.update((key.len() as u32).to_le_bytes());
            h.update(key.as_bytes());
            h.update((versions.len() as u64).to_le_bytes());
            for v in versions {
                h.update(v.height.to_le_bytes());
                h.update(v.tx_id.0);
                h.update([u8::from(v.value.is_none())]);
            }
        }
        Hash(h.finalize().into())
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

#[cfg(test)]
mod digest_tests {
    use super::*;
    use crate::chain::{block::merkle_root, Header, Keypair, Tx};

    fn block(height: u64, txs: Vec<Tx>) -> Block {
        let header = Header {
            version: 1,
            height,
            prev: Hash::default(),
            merkle: merkle_root(&txs),
            time: 0,
            bits: 0,
            nonce: 0,
        };
        Block { header, txs }
    }

    fn put(k: &str, v: &str, n: u64) -> Tx {
        let op = Op::Put {
            key: k.into(),
            value: v.as_bytes().to_vec(),
        };
        Tx::new(&Keypair::from_seed([1; 32]), op, n, 0).unwrap()
    }

    #[test]
    fn the_digest_follows_every_version_and_nothing_else() {
        let a = block(1, vec![put("x", "1", 0), put("y", "1", 1)]);
        let b = block(2, vec![put("x", "2", 2)]);
        let mut index = Index::fold([&a]);
        let one = index.digest();
        let generation = index.generation();
        index.apply(&b);
        assert_ne!(index.digest(), one);
        assert_ne!(index.generation(), generation);
        index.undo(&b);
        assert_eq!(index.digest(), one, "undo restores the digest");
        // Writes to different keys in another order: the same histories, the same digest.
        let swapped = block(1, vec![put("y", "1", 1), put("x", "1", 0)]);
        assert_eq!(Index::fold([&swapped]).digest(), one);
        // One key's versions in another order: another history, another digest.
        let mut reordered = Index::fold([&block(1, vec![put("x", "2", 2)])]);
        reordered.apply(&block(2, vec![put("x", "1", 0), put("y", "1", 1)]));
        assert_ne!(reordered.digest(), index.digest());
        // A delete differs from a put, even at the same height.
        let del = Tx::new(
            &Keypair::from_seed([1; 32]),
            Op::Delete { key: "x".into() },
            3,
            0,
        )
        .unwrap();
        let mut other = Index::fold([&a]);
        other.apply(&block(2, vec![del]));
        assert_ne!(other.digest(), index.digest());
    }
}
