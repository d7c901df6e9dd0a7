//! The index digest, kept up to date as the index changes, so that asking for it costs
//! work in proportion to what changed since the last time, never to the size of the index.
//!
//! Shape (the same on every node, whatever order the writes arrived in):
//! - each version extends its key's **chain**: `c_i = H(c_{i-1}, height, tx id, delete?)`,
//!   starting from `c_0 = H(key)`, so a key's last chain value, its **leaf**, commits to
//!   the key and its whole history;
//! - each key falls in one of 2^16 **buckets** by the first bytes of `c_0`; a bucket's
//!   hash covers its leaves in byte order;
//! - a binary **Merkle tree** over the buckets gives the digest (its root).
//!
//! A change to a key swaps one leaf in one bucket and marks the bucket dirty; the digest
//! rehashes the dirty buckets and their 16 ancestors each. Empty subtrees are not stored:
//! their hashes are the same at every level and computed once. Every hash is SHA-256 with
//! its own domain tag, and nothing is a sum of hashes (sums of many chosen hashes collide
//! far more cheaply than SHA-256 does).

use super::super::crypto::Hash;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Bits of the bucket number: 2^16 buckets, 16 levels of tree above them.
pub const BUCKET_BITS: u32 = 16;
/// Number of buckets.
const BUCKETS: u32 = 1 << BUCKET_BITS;

/// A SHA-256 output.
pub type Bytes32 = [u8; 32];

/// The chain value after `prev` of a version at `height` written by `tx_id`.
pub fn chain(prev: &Bytes32, height: u64, tx_id: &Hash, delete: bool) -> Bytes32 {
    let mut h = Sha256::new();
    h.update(b"kvchain/index/version\0");
    h.update(prev);
    h.update(height.to_le_bytes());
    h.update(tx_id.0);
    h.update([u8::from(delete)]);
    h.finalize().into()
}

/// Where `key`'s chain starts: a hash of the key alone, so that every chain value commits
/// to its key; its first two bytes pick the key's bucket.
pub fn chain_start(key: &str) -> Bytes32 {
    Sha256::new()
        .chain_update(b"kvchain/index/key\0")
        .chain_update(key.as_bytes())
        .finalize()
        .into()
}

/// The bucket of the key whose chain starts at `start`.
pub fn bucket(start: &Bytes32) -> u16 {
    u16::from_le_bytes([start[0], start[1]])
}

/// The hash of a bucket holding `leaves` (sorted).
pub fn bucket_hash(leaves: &[Bytes32]) -> Bytes32 {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update((leaves.len() as u64).to_le_bytes());
    for l in leaves {
        h.update(l);
    }
    h.finalize().into()
}

/// The hash of a tree node from its two children.
pub fn node_hash(left: &Bytes32, right: &Bytes32) -> Bytes32 {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Hashes of empty subtrees, by level (0 is the root, [`BUCKET_BITS`] a bucket).
fn empty_hashes() -> Vec<Bytes32> {
    let mut levels = vec![bucket_hash(&[]); BUCKET_BITS as usize + 1];
    for level in (0..BUCKET_BITS as usize).rev() {
        levels[level] = node_hash(&levels[level + 1], &levels[level + 1]);
    }
    levels
}

/// Keeps `h` as node `at`'s hash, or drops the node when `h` is its level's empty hash
/// (empty subtrees are not stored).
fn set_node(nodes: &mut HashMap<u32, Bytes32>, at: u32, h: Bytes32, empty: &Bytes32) {
    if h == *empty {
        nodes.remove(&at);
    } else {
        nodes.insert(at, h);
    }
}

/// The tree above the buckets, brought up to date when the digest is asked for.
#[derive(Clone, Debug, Default)]
struct Tree {
    /// Non-empty nodes by heap position: 1 is the root, `BUCKETS + b` is bucket `b`.
    nodes: HashMap<u32, Bytes32>,
    /// Empty-subtree hashes by level; computed on first use.
    empty: Vec<Bytes32>,
    /// Buckets changed since the tree was last brought up to date.
    dirty: HashSet<u16>,
    /// Buckets hashed again (see [`DigestTree::settle`]) whose ancestors are not yet.
    settled: HashSet<u16>,
}

/// One bucket's leaves, sorted, and when they last changed.
#[derive(Clone, Debug, Default)]
struct Bucket {
    leaves: Vec<Bytes32>,
    /// The tree's change count at this bucket's last change.
    stamp: u64,
}

/// The leaves of every bucket and the Merkle tree over them.
#[derive(Debug, Default)]
pub struct DigestTree {
    /// Non-empty buckets.
    buckets: HashMap<u16, Bucket>,
    /// Changes so far: stamps a bucket's leaves, so that a copy hashed later can tell
    /// whether they are still the bucket's.
    changes: u64,
    /// Behind a lock so that the digest can be brought up to date through `&self`, by
    /// readers that share the index.
    tree: Mutex<Tree>,
}

/// Copies of changed buckets' leaves with their stamps, to hash with no lock held.
#[derive(Debug, Default)]
pub struct Changed(Vec<(u16, u64, Vec<Bytes32>)>);

/// Hashes of buckets as they were when copied, with their stamps.
#[derive(Debug, Default)]
pub struct Hashed(Vec<(u16, u64, Bytes32)>);

impl Changed {
    /// Number of buckets copied.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no bucket was copied.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each bucket's hash: the costly part of a digest, which needs no lock.
    pub fn hash(&self) -> Hashed {
        Hashed(
            self.0
                .iter()
                .map(|(b, stamp, leaves)| (*b, *stamp, bucket_hash(leaves)))
                .collect(),
        )
    }
}

impl Clone for DigestTree {
    fn clone(&self) -> DigestTree {
        let tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        DigestTree {
            buckets: self.buckets.clone(),
            changes: self.changes,
            tree: Mutex::new(tree.clone()),
        }
    }
}

impl DigestTree {
    /// Replaces leaf `old` of bucket `b` by `new` (either may be absent).
    pub fn swap(&mut self, b: u16, old: Option<&Bytes32>, new: Option<Bytes32>) {
        self.changes += 1;
        let bucket = self.buckets.entry(b).or_default();
        bucket.stamp = self.changes;
        let leaves = &mut bucket.leaves;
        if let Some(old) = old {
            if let Ok(i) = leaves.binary_search(old) {
                leaves.remove(i);
            }
        }
        if let Some(new) = new {
            if let Err(i) = leaves.binary_search(&new) {
                leaves.insert(i, new);
            }
        }
        if leaves.is_empty() {
            self.buckets.remove(&b);
        }
        // Through `&mut self` the lock is ours without locking.
        let tree = self.tree.get_mut().unwrap_or_else(|e| e.into_inner());
        tree.dirty.insert(b);
    }

    /// The stamp of bucket `b` (0 for an empty one: every empty bucket hashes alike).
    fn stamp(&self, b: u16) -> u64 {
        self.buckets.get(&b).map_or(0, |bucket| bucket.stamp)
    }

    /// Copies of at most `max` of the buckets changed since the digest was last brought
    /// up to date, to hash with no lock held and hand back to [`DigestTree::settle`].
    pub fn changed(&self, max: usize) -> Changed {
        let tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        Changed(
            tree.dirty
                .iter()
                .take(max)
                .map(|&b| match self.buckets.get(&b) {
                    Some(bucket) => (b, bucket.stamp, bucket.leaves.clone()),
                    None => (b, 0, Vec::new()),
                })
                .collect(),
        )
    }

    /// Takes the hashes of buckets that have not changed since they were copied; a
    /// bucket that has stays changed, to be hashed again.
    pub fn settle(&self, hashed: &Hashed) {
        let mut tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        let empty = bucket_hash(&[]);
        for &(b, stamp, h) in &hashed.0 {
            if stamp != self.stamp(b) || !tree.dirty.remove(&b) {
                continue;
            }
            set_node(&mut tree.nodes, BUCKETS + u32::from(b), h, &empty);
            tree.settled.insert(b);
        }
    }

    /// The root, after rehashing the changed buckets and the ancestors of those and of
    /// the settled ones. Returns how many hashes that took, for tests and benchmarks.
    pub fn root(&self) -> (Hash, usize) {
        let mut tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        if tree.empty.is_empty() {
            tree.empty = empty_hashes();
        }
        let Tree {
            nodes,
            empty,
            dirty,
            settled,
        } = &mut *tree;
        let mut hashes = 0;
        let mut level: Vec<u32> = Vec::new();
        for b in dirty.drain() {
            let h = self
                .buckets
                .get(&b)
                .map_or(empty[BUCKET_BITS as usize], |bucket| {
                    bucket_hash(&bucket.leaves)
                });
            hashes += 1;
            let at = BUCKETS + u32::from(b);
            set_node(nodes, at, h, &empty[BUCKET_BITS as usize]);
            level.push(at / 2);
        }
        level.extend(settled.drain().map(|b| (BUCKETS + u32::from(b)) / 2));
        for depth in (0..BUCKET_BITS as usize).rev() {
            level.sort_unstable();
            level.dedup();
            for &at in &level {
                let child = |i: u32| nodes.get(&i).copied().unwrap_or(empty[depth + 1]);
                let h = node_hash(&child(2 * at), &child(2 * at + 1));
                hashes += 1;
                set_node(nodes, at, h, &empty[depth]);
            }
            for at in &mut level {
                *at /= 2;
            }
        }
        let root = nodes.get(&1).copied().unwrap_or(empty[0]);
        (Hash(root), hashes)
    }
}
