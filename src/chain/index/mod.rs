//! The key-value index: every version of every key, folded from the canonical chain and
//! unfolded block by block on a reorg, with its digest kept up to date alongside.

mod digest;

pub use digest::{Changed, Hashed};

use super::block::Block;
use super::crypto::{AuthorKey, Hash, TxId};
use super::sharded::ShardedMap;
use super::tx::Op;
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

/// One key's versions, with what the digest needs to follow them.
#[derive(Clone, Debug)]
struct Entry {
    versions: Vec<Version>,
    /// The digest chain's value after each version (the last is the key's leaf).
    chains: Vec<digest::Bytes32>,
    /// The key's digest bucket.
    bucket: u16,
}

/// Per key, every version in chain order.
#[derive(Clone, Debug, Default)]
pub struct Index {
    /// Sharded, so that growing it never pauses the node for a whole-map rehash.
    keys: ShardedMap<String, Entry>,
    versions: usize,
    /// The digest, kept up to date key by key.
    digest: digest::DigestTree,
}

/// Two indexes are equal when they hold the same versions, however they got there.
impl PartialEq for Index {
    fn eq(&self, other: &Index) -> bool {
        self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .all(|(k, e)| other.keys.get(k).is_some_and(|o| o.versions == e.versions))
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
            let entry = match self.keys.get_mut(key.as_str()) {
                Some(entry) => entry,
                // Most keys keep one version: room for one, not the four a push makes.
                None => self.keys.get_or_insert_with(key.clone(), || Entry {
                    versions: Vec::with_capacity(1),
                    chains: Vec::with_capacity(1),
                    bucket: 0,
                }),
            };
            // The chain goes on from the key's last value, or starts from the key.
            let (prev, old) = match entry.chains.last() {
                Some(last) => (*last, Some(*last)),
                None => {
                    let start = digest::chain_start(key);
                    entry.bucket = digest::bucket(&start);
                    (start, None)
                }
            };
            let new = digest::chain(&prev, height, &version.tx_id, version.value.is_none());
            entry.versions.push(version);
            entry.chains.push(new);
            self.digest.swap(entry.bucket, old.as_ref(), Some(new));
            self.versions += 1;
        }
    }

    /// Removes the writes of `block`, which must be the last block applied.
    pub fn undo(&mut self, block: &Block) {
        for tx in block.txs.iter().rev() {
            let key = tx.op().key();
            let Some(entry) = self.keys.get_mut(key) else {
                continue;
            };
            let popped = entry.versions.pop();
            debug_assert_eq!(popped.map(|v| v.tx_id), Some(tx.id()));
            self.versions -= 1;
            let (bucket, old) = (entry.bucket, entry.chains.pop());
            if entry.versions.is_empty() {
                self.digest.swap(bucket, old.as_ref(), None);
                self.keys.remove(key);
            } else {
                let new = entry.chains.last().copied();
                self.digest.swap(bucket, old.as_ref(), new);
            }
        }
    }

    /// The digest of the whole index: equal on two nodes exactly when they hold the same
    /// versions (height, tx id, put or delete) of every key; the tx id commits to the
    /// author and the value. Kept up to date as the index changes (a Merkle tree over key
    /// buckets, each key a hash chain of its versions), so it costs work in proportion to
    /// the keys changed since it was last asked for.
    pub fn digest(&self) -> Hash {
        self.digest.root().0
    }

    /// Copies of at most `max` of the digest's buckets changed since it was last asked
    /// for: to hash with no lock held ([`Changed::hash`]) and hand back to
    /// [`Index::digest_settle`], so that a reader of a large, busy index does not hold
    /// the writer off for the whole rehash.
    pub fn digest_changed(&self, max: usize) -> Changed {
        self.digest.changed(max)
    }

    /// Takes bucket hashes made from [`Index::digest_changed`]'s copies; those of buckets
    /// that changed since are dropped and hashed again later.
    pub fn digest_settle(&self, hashed: &Hashed) {
        self.digest.settle(hashed)
    }

    /// Like [`Index::digest`], also saying how many hashes bringing it up to date took.
    pub fn digest_counted(&self) -> (Hash, usize) {
        self.digest.root()
    }

    /// The newest version of `key`, tombstone included.
    pub fn latest(&self, key: &str) -> Option<&Version> {
        self.keys.get(key).and_then(|e| e.versions.last())
    }

    /// Every version of `key` in chain order.
    pub fn history(&self, key: &str) -> &[Version] {
        self.keys.get(key).map_or(&[], |e| e.versions.as_slice())
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
        index.apply(&b);
        assert_ne!(index.digest(), one);
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

    /// The digest computed from nothing but the versions, the slow way: every key's chain
    /// and leaf, every bucket, every node of the full tree.
    fn from_scratch(index: &Index) -> Hash {
        let n = 1usize << digest::BUCKET_BITS;
        let mut buckets: Vec<Vec<digest::Bytes32>> = vec![Vec::new(); n];
        for (key, entry) in index.keys.iter() {
            let start = digest::chain_start(key);
            let mut c = start;
            for v in &entry.versions {
                c = digest::chain(&c, v.height, &v.tx_id, v.value.is_none());
            }
            buckets[usize::from(digest::bucket(&start))].push(c);
        }
        let mut level: Vec<digest::Bytes32> = buckets
            .iter_mut()
            .map(|l| {
                l.sort_unstable();
                digest::bucket_hash(l)
            })
            .collect();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|p| digest::node_hash(&p[0], &p[1]))
                .collect();
        }
        Hash(level[0])
    }

    /// `n` puts to keys `k{first}..`, each value naming its nonce.
    fn puts(first: u64, n: u64, nonce: u64) -> Vec<Tx> {
        (first..first + n)
            .map(|i| {
                put(
                    &format!("k{i}"),
                    &format!("v{nonce}"),
                    nonce * 1_000_000 + i,
                )
            })
            .collect()
    }

    #[test]
    fn the_kept_digest_equals_the_digest_computed_from_scratch() {
        let mut index = Index::new();
        assert_eq!(index.digest(), from_scratch(&index), "empty");
        let blocks = [
            block(1, puts(0, 50, 1)),
            block(2, puts(25, 50, 2)),
            block(3, vec![put("k3", "again", 7), put("k3", "and again", 8)]),
        ];
        for (i, b) in blocks.iter().enumerate() {
            index.apply(b);
            assert_eq!(
                index.digest(),
                from_scratch(&index),
                "after block {}",
                i + 1
            );
        }
        // Undone down to nothing, checked at every step, asked for or not in between.
        index.undo(&blocks[2]);
        index.undo(&blocks[1]);
        assert_eq!(index.digest(), from_scratch(&index), "after two undos");
        index.undo(&blocks[0]);
        assert_eq!(index.digest(), from_scratch(&index), "undone to empty");
        assert_eq!(index.digest(), Index::new().digest());
    }

    #[test]
    fn buckets_hashed_outside_the_lock_are_taken_only_if_unchanged() {
        let blocks: Vec<Block> = (1..=3)
            .map(|h| block(h, puts((h - 1) * 3_000, 3_000, h)))
            .collect();
        let fold = || Index::fold(&blocks);
        // Hashes handed back save exactly their buckets' rehash, and change nothing.
        let (plain, all_work) = fold().digest_counted();
        let settled = fold();
        let changed = settled.digest_changed(usize::MAX);
        settled.digest_settle(&changed.hash());
        let (digest, tree_work) = settled.digest_counted();
        assert_eq!(digest, plain);
        assert_eq!(all_work - tree_work, changed.len());

        // Buckets that change between the copy and the hand-back are hashed again.
        let mut index = fold();
        let hashed = index.digest_changed(usize::MAX).hash();
        index.apply(&block(4, puts(0, 500, 9)));
        index.digest_settle(&hashed);
        assert_eq!(
            index.digest(),
            from_scratch(&index),
            "changed after the copy"
        );

        // In rounds, as the store does, with a block taken back between copy and settle.
        let fifth = block(5, puts(10_000, 2_000, 5));
        index.apply(&fifth);
        let first = index.digest_changed(500).hash();
        index.undo(&fifth);
        index.digest_settle(&first);
        let second = index.digest_changed(500).hash();
        index.digest_settle(&second);
        assert_eq!(
            index.digest(),
            from_scratch(&index),
            "undone after the copy"
        );
    }

    #[test]
    fn a_digest_rehashes_only_what_changed_since_the_last() {
        // Far more keys than a change touches: the work must follow the change.
        let mut index = Index::new();
        for h in 1..=5 {
            index.apply(&block(h, puts((h - 1) * 2_000, 2_000, h)));
        }
        let (before, first) = index.digest_counted();
        assert!(
            first > 5_000,
            "the first digest hashes every bucket: {first}"
        );
        assert_eq!(index.digest_counted(), (before, 0), "nothing changed");
        index.apply(&block(6, vec![put("k1", "new", 9), put("k7", "new", 10)]));
        let (after, work) = index.digest_counted();
        assert_ne!(after, before);
        // Two buckets and at most 16 ancestors each.
        assert!(work <= 2 * 17, "rehashed {work} nodes for two changed keys");
        assert_eq!(after, from_scratch(&index));
    }
}
