//! The block tree: every valid block with its cumulative work, the canonical chain chosen
//! by most work (first seen wins a tie), and the pool of blocks waiting for their parent.

use super::block::Block;
use super::crypto::BlockHash;
use super::limits::MEDIAN_TIME_SPAN;
use super::pow;
use super::validate::median;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Most blocks held while their parent is missing.
pub const MAX_ORPHANS: usize = 1024;
/// Most bytes of blocks held while their parent is missing.
pub const MAX_ORPHAN_BYTES: usize = 64 * 1024 * 1024;
/// Most hashes remembered as invalid.
pub const MAX_INVALID: usize = 16 * 1024;

/// A valid block in the tree.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The block.
    pub block: Arc<Block>,
    /// Its hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: u64,
    /// Cumulative work from genesis up to and including this block.
    pub work: u128,
    /// Arrival order, for first-seen tie breaks.
    pub seq: u64,
}

/// All known valid blocks and the canonical chain through them.
#[derive(Debug)]
pub struct BlockTree {
    entries: HashMap<BlockHash, Entry>,
    best: Vec<BlockHash>,
    next_seq: u64,
    orphans: Orphans,
    invalid: HashSet<BlockHash>,
    invalid_order: VecDeque<BlockHash>,
}

impl BlockTree {
    /// A tree holding only `genesis`.
    pub fn new(genesis: &Block) -> BlockTree {
        let hash = genesis.hash();
        let entry = Entry {
            block: Arc::new(genesis.clone()),
            hash,
            height: 0,
            work: pow::work(genesis.header.bits),
            seq: 0,
        };
        BlockTree {
            entries: HashMap::from([(hash, entry)]),
            best: vec![hash],
            next_seq: 1,
            orphans: Orphans::default(),
            invalid: HashSet::new(),
            invalid_order: VecDeque::new(),
        }
    }

    /// The entry for `hash`, if the block is in the tree.
    pub fn get(&self, hash: &BlockHash) -> Option<&Entry> {
        self.entries.get(hash)
    }

    /// Number of blocks in the tree (all branches).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tree holds only genesis.
    pub fn is_empty(&self) -> bool {
        self.entries.len() <= 1
    }

    /// The tip of the canonical chain.
    pub fn tip(&self) -> &Entry {
        let tip = self.best.last().and_then(|h| self.entries.get(h));
        // `best` always holds at least genesis, and every hash in it is in `entries`.
        tip.unwrap_or_else(|| unreachable!("canonical chain is never empty"))
    }

    /// The canonical block hash at `height`.
    pub fn canonical_at(&self, height: u64) -> Option<BlockHash> {
        usize::try_from(height)
            .ok()
            .and_then(|h| self.best.get(h))
            .copied()
    }

    /// Whether `hash` is on the canonical chain.
    pub fn is_canonical(&self, hash: &BlockHash) -> bool {
        self.entries
            .get(hash)
            .is_some_and(|e| self.canonical_at(e.height) == Some(*hash))
    }

    /// Adds a validated block whose parent is in the tree; returns its entry.
    pub fn insert(&mut self, block: Arc<Block>) -> Option<&Entry> {
        let hash = block.hash();
        let parent_work = self.entries.get(&block.header.prev)?.work;
        let entry = Entry {
            hash,
            height: block.header.height,
            work: parent_work.saturating_add(pow::work(block.header.bits)),
            seq: self.next_seq,
            block,
        };
        self.next_seq += 1;
        Some(self.entries.entry(hash).or_insert(entry))
    }

    /// Drops a block that is not on the canonical chain (a side block out of the window);
    /// false if it is canonical or unknown.
    pub fn remove_side(&mut self, hash: &BlockHash) -> bool {
        if self.is_canonical(hash) {
            return false;
        }
        self.entries.remove(hash).is_some()
    }

    /// Median timestamp of up to the last 11 blocks ending at `hash`.
    pub fn median_time(&self, hash: &BlockHash) -> u64 {
        let times = self
            .ancestors(hash)
            .take(MEDIAN_TIME_SPAN)
            .map(|e| e.block.header.time)
            .collect();
        median(times)
    }

    /// `hash` and its ancestors back to genesis, newest first.
    pub fn ancestors<'a>(&'a self, hash: &BlockHash) -> impl Iterator<Item = &'a Entry> + 'a {
        let mut next = self.entries.get(hash);
        std::iter::from_fn(move || {
            let e = next?;
            next = if e.height == 0 {
                None
            } else {
                self.entries.get(&e.block.header.prev)
            };
            Some(e)
        })
    }

    /// The entry with the most work (first seen on a tie) among the tip and `candidates`.
    pub fn best_candidate(&self, candidates: &[BlockHash]) -> BlockHash {
        let mut best = self.tip();
        for e in candidates.iter().filter_map(|h| self.entries.get(h)) {
            if e.work > best.work || (e.work == best.work && e.seq < best.seq) {
                best = e;
            }
        }
        best.hash
    }

    /// For a new tip: the height of the fork point with the canonical chain and the new
    /// branch's hashes above it, oldest first.
    pub fn branch_to(&self, new_tip: &BlockHash) -> (u64, Vec<BlockHash>) {
        let mut branch = Vec::new();
        for e in self.ancestors(new_tip) {
            if self.canonical_at(e.height) == Some(e.hash) {
                branch.reverse();
                return (e.height, branch);
            }
            branch.push(e.hash);
        }
        branch.reverse();
        (0, branch)
    }

    /// Makes the chain `best[..=fork]` followed by `branch` canonical.
    pub fn set_best(&mut self, fork: u64, branch: &[BlockHash]) {
        self.best.truncate(fork as usize + 1);
        self.best.extend_from_slice(branch);
    }

    /// The canonical hashes from height 1 to the tip.
    pub fn canonical(&self) -> &[BlockHash] {
        &self.best[1..]
    }

    /// Remembers `hash` as invalid (bounded; the oldest are forgotten first).
    pub fn mark_invalid(&mut self, hash: BlockHash) {
        if self.invalid.insert(hash) {
            self.invalid_order.push_back(hash);
            if self.invalid_order.len() > MAX_INVALID {
                if let Some(old) = self.invalid_order.pop_front() {
                    self.invalid.remove(&old);
                }
            }
        }
    }

    /// Whether `hash` is remembered as invalid.
    pub fn is_invalid(&self, hash: &BlockHash) -> bool {
        self.invalid.contains(hash)
    }

    /// The pool of blocks waiting for their parent.
    pub fn orphans(&mut self) -> &mut Orphans {
        &mut self.orphans
    }

    /// Number of blocks waiting for their parent.
    pub fn orphan_count(&self) -> usize {
        self.orphans.blocks.len()
    }
}

/// Blocks whose parent has not arrived yet, bounded in count and bytes (oldest evicted).
#[derive(Debug, Default)]
pub struct Orphans {
    blocks: HashMap<BlockHash, Arc<Block>>,
    by_parent: HashMap<BlockHash, Vec<BlockHash>>,
    order: VecDeque<BlockHash>,
    bytes: usize,
}

impl Orphans {
    /// Holds `block` until its parent arrives.
    pub fn add(&mut self, block: Arc<Block>) {
        let hash = block.hash();
        if self.blocks.contains_key(&hash) {
            return;
        }
        self.bytes += block.size();
        self.by_parent
            .entry(block.header.prev)
            .or_default()
            .push(hash);
        self.blocks.insert(hash, block);
        self.order.push_back(hash);
        while self.blocks.len() > MAX_ORPHANS || self.bytes > MAX_ORPHAN_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.remove(&old);
        }
    }

    /// Whether `hash` is held here.
    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.blocks.contains_key(hash)
    }

    /// Takes out every held block whose parent is `parent`.
    pub fn take_children(&mut self, parent: &BlockHash) -> Vec<Arc<Block>> {
        let hashes = self.by_parent.remove(parent).unwrap_or_default();
        hashes.iter().filter_map(|h| self.remove(h)).collect()
    }

    fn remove(&mut self, hash: &BlockHash) -> Option<Arc<Block>> {
        let block = self.blocks.remove(hash)?;
        self.bytes -= block.size();
        if let Some(siblings) = self.by_parent.get_mut(&block.header.prev) {
            siblings.retain(|h| h != hash);
            if siblings.is_empty() {
                self.by_parent.remove(&block.header.prev);
            }
        }
        self.order.retain(|h| h != hash);
        Some(block)
    }
}
