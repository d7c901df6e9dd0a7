//! The chain state: the block tree, the KV index of the canonical chain, the mempool and
//! the block log, kept consistent by one owner. Blocks may arrive in any order; a heavier
//! branch causes a reorg that undoes and redoes the index block by block.

use super::block::{merkle_root, Block, Header, BLOCK_VERSION};
use super::crypto::{BlockHash, TxId};
pub use super::errors::{OpenError, SubmitError};
use super::index::Index;
use super::limits::{MAX_BLOCK_BYTES, MAX_BLOCK_TXS};
use super::log::FrameLog;
use super::mempool::{Mempool, MempoolLimits};
use super::now_ms;
use super::params::Params;
use super::sharded::ShardedMap;
use super::side::{self, Admission};
use super::sigcache::SigCache;
use super::tree::{BlockTree, Entry};
use super::tx::{Tx, VerifiedTx};
use super::validate::{check_standalone, BlockError};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

mod disk;
mod rules;

/// File name of the block log inside a data dir.
pub const BLOCK_LOG: &str = "blocks.log";
/// How long a side branch a sync is fetching is kept from pruning after its last batch.
const CLIMB_HOLD: Duration = Duration::from_secs(60);
/// Most such branches held at once (one per peer being synced from, in practice).
const MAX_CLIMBING: usize = 64;

/// How the canonical chain changed.
#[derive(Debug, Clone, Default)]
pub struct TipChange {
    /// Blocks removed from the canonical chain, tip first.
    pub disconnected: Vec<Arc<Block>>,
    /// Blocks added to the canonical chain, oldest first.
    pub connected: Vec<Arc<Block>>,
}

/// What accepting a block did.
#[derive(Debug, Clone, Default)]
pub struct Accepted {
    /// The block and any held blocks it released, in the order they were added.
    pub blocks: Vec<BlockHash>,
    /// Held descendants that turned out invalid, with why.
    pub rejected: Vec<(BlockHash, BlockError)>,
    /// The change of the canonical chain, if any.
    pub tip: Option<TipChange>,
}

/// The blockchain with its index and mempool.
#[derive(Debug)]
pub struct Chain {
    params: Params,
    tree: BlockTree,
    index: Arc<RwLock<Index>>,
    /// Sharded like the index, and for the same reason: it holds every tx of the chain.
    tx_heights: ShardedMap<TxId, u64>,
    mempool: Mempool,
    log: Option<FrameLog>,
    /// Blocks in the tree off the canonical chain.
    side: HashSet<BlockHash>,
    /// Blocks in the tree not yet in the block log (written when they join the chain).
    unlogged: HashSet<BlockHash>,
    /// Heads of side branches a sync is still fetching, kept from pruning for a while.
    climbing: HashMap<BlockHash, Instant>,
    /// Tx signatures checked lately, so that a block need not check them again.
    sigs: SigCache,
    /// Blocks written to the log so far (see [`Chain::log_generation`]).
    log_generation: u64,
}

impl Chain {
    /// A chain in memory only (tests, benchmarks, tools).
    pub fn new(params: Params) -> Chain {
        Chain {
            tree: BlockTree::new(params.genesis()),
            params,
            index: Arc::new(RwLock::new(Index::new())),
            tx_heights: ShardedMap::new(),
            mempool: Mempool::default(),
            log: None,
            side: HashSet::new(),
            unlogged: HashSet::new(),
            climbing: HashMap::new(),
            sigs: SigCache::default(),
            log_generation: 0,
        }
    }

    /// The consensus parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The shared read view of the index (readers lock it only to read).
    pub fn index(&self) -> Arc<RwLock<Index>> {
        self.index.clone()
    }

    /// The mempool.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// Sets the mempool's bounds and the key of this node's own writes; txs already
    /// pending (returned by a reorg while the log was read) are kept, in their order.
    pub fn set_mempool_limits(
        &mut self,
        limits: MempoolLimits,
        own: Option<crate::chain::AuthorKey>,
    ) {
        let old = std::mem::replace(&mut self.mempool, Mempool::with_limits(limits, own));
        for id in old.ids().iter().rev() {
            if let Some(tx) = old.get(id) {
                self.mempool.readd(tx.clone());
            }
        }
    }

    /// Drops remote txs that waited past the mempool's expiry; returns how many.
    pub fn expire_mempool(&mut self, now: std::time::Instant) -> usize {
        self.mempool.expire(now).len()
    }

    /// The block tree.
    pub fn tree(&self) -> &BlockTree {
        &self.tree
    }

    /// The canonical tip.
    pub fn tip(&self) -> &Entry {
        self.tree.tip()
    }

    /// The canonical tip's hash.
    pub fn tip_hash(&self) -> BlockHash {
        self.tree.tip().hash
    }

    /// Height of the canonical tip.
    pub fn height(&self) -> u64 {
        self.tree.tip().height
    }

    /// Cumulative work of the canonical chain.
    pub fn total_work(&self) -> u128 {
        self.tree.tip().work
    }

    /// Height of the canonical block holding `id`, if any.
    pub fn tx_height(&self, id: &TxId) -> Option<u64> {
        self.tx_heights.get(id).copied()
    }

    /// The canonical block at `height`.
    pub fn block_at(&self, height: u64) -> Option<Arc<Block>> {
        let hash = self.tree.canonical_at(height)?;
        self.tree.get(&hash).map(|e| e.block.clone())
    }

    /// Any known block by hash.
    pub fn block(&self, hash: &BlockHash) -> Option<Arc<Block>> {
        self.tree.get(hash).map(|e| e.block.clone())
    }

    /// The canonical chain from height 1 to the tip.
    pub fn canonical_blocks(&self) -> Vec<Arc<Block>> {
        self.tree
            .canonical()
            .iter()
            .filter_map(|h| self.tree.get(h).map(|e| e.block.clone()))
            .collect()
    }

    /// Verifies a new tx (unless its very signature was checked lately) and adds it to
    /// the mempool; `Ok(false)` if it was already there.
    pub fn submit_tx(&mut self, tx: Tx) -> Result<bool, SubmitError> {
        if let Some(known) = self.known_tx(&tx) {
            return known;
        }
        let tx = match VerifiedTx::checked_before(tx, &self.sigs) {
            Ok(checked) => checked,
            Err(tx) => VerifiedTx::check(tx)?,
        };
        self.submit_verified(tx)
    }

    /// Adds a tx whose signature is checked to the mempool; `Ok(false)` if it was there.
    pub fn submit_verified(&mut self, tx: VerifiedTx) -> Result<bool, SubmitError> {
        if let Some(known) = self.known_tx(tx.tx()) {
            return known;
        }
        self.sigs.insert(tx.tx().id(), tx.tx().signature());
        Ok(self.mempool.insert(tx.into_tx())?)
    }

    /// Remembers txs whose signatures were checked (for a block that will carry them).
    pub fn note_checked(&mut self, txs: impl IntoIterator<Item = VerifiedTx>) {
        for tx in txs {
            self.sigs.insert(tx.tx().id(), tx.tx().signature());
        }
    }

    /// Whether `tx`'s very signature was checked: it is in the mempool or checked lately.
    pub fn is_checked(&self, tx: &Tx) -> bool {
        self.sigs.contains(&tx.id(), &tx.signature())
            || self
                .mempool
                .get(&tx.id())
                .is_some_and(|m| m.signature() == tx.signature())
    }

    /// What submitting `tx` would answer without checking it, if that is known already:
    /// `Ok(false)` when the mempool holds it with the same signature, an error when the
    /// chain has it. `None`: it is new, its signature must be checked.
    pub fn known_tx(&self, tx: &Tx) -> Option<Result<bool, SubmitError>> {
        if let Some(h) = self.tx_height(&tx.id()) {
            return Some(Err(SubmitError::AlreadyInChain(h)));
        }
        let same = self.mempool.get(&tx.id())?.signature() == tx.signature();
        same.then_some(Ok(false))
    }

    /// A block template on the tip: pending txs within the limits, timestamp above the
    /// median time, nonce 0. Solve its header to get a valid block.
    pub fn template(&self) -> Block {
        let tip = self.tree.tip();
        let txs = self
            .mempool
            .template(MAX_BLOCK_TXS, MAX_BLOCK_BYTES - super::block::HEADER_LEN);
        let time = now_ms().max(self.tree.median_time(&tip.hash) + 1);
        Block {
            header: Header {
                version: BLOCK_VERSION,
                height: tip.height + 1,
                prev: tip.hash,
                merkle: merkle_root(&txs),
                time,
                bits: self.params.difficulty(),
                nonce: 0,
            },
            txs,
        }
    }

    /// Validates and adds a block from anywhere (a peer, the miner, a test); switches to
    /// the heaviest chain. A block with an unknown parent is held and reported as
    /// [`BlockError::UnknownParent`].
    pub fn process_block(&mut self, block: Block) -> Result<Accepted, BlockError> {
        self.accept_block(block, false, Admission::Any)
    }

    /// Like [`Chain::process_block`], for a block that came from `admission`: a gossiped
    /// side branch must be within reach of the tip (see [`side`]).
    pub fn process_block_as(
        &mut self,
        block: Block,
        admission: Admission,
    ) -> Result<Accepted, BlockError> {
        self.accept_block(block, false, admission)
    }

    /// Blocks held off the canonical chain.
    pub fn side_blocks(&self) -> usize {
        self.side.len()
    }

    fn accept_block(
        &mut self,
        block: Block,
        trusted: bool,
        admission: Admission,
    ) -> Result<Accepted, BlockError> {
        let hash = block.hash();
        if self.tree.get(&hash).is_some() {
            return Err(BlockError::AlreadyKnown(hash));
        }
        if self.tree.is_invalid(&hash) {
            return Err(BlockError::KnownInvalid(hash));
        }
        let now = (!trusted).then(now_ms);
        if let Err(e) = check_standalone(&block, &self.params, now) {
            return Err(self.rejected(hash, e));
        }
        let parent = block.header.prev;
        if self.tree.is_invalid(&parent) {
            return Err(self.rejected(hash, BlockError::InvalidParent(parent)));
        }
        if self.tree.get(&parent).is_none() {
            self.tree.orphans().add(Arc::new(block));
            return Err(BlockError::UnknownParent { parent });
        }
        let bits = block.header.bits;
        side::admit(&self.tree, &parent, bits, admission, self.side.len())?;
        let mut accepted = Accepted::default();
        if let Err(e) = self.connect_to_tree(Arc::new(block), trusted) {
            return Err(self.rejected(hash, e));
        }
        accepted.blocks.push(hash);
        // Release held descendants, breadth first.
        let mut queue = VecDeque::from([hash]);
        while let Some(parent) = queue.pop_front() {
            for child in self.tree.orphans().take_children(&parent) {
                let child_hash = child.hash();
                match self.connect_to_tree(child, trusted) {
                    Ok(()) => {
                        accepted.blocks.push(child_hash);
                        queue.push_back(child_hash);
                    }
                    Err(e) => {
                        let e = self.rejected(child_hash, e);
                        accepted.rejected.push((child_hash, e));
                    }
                }
            }
        }
        let best = self.tree.best_candidate(&accepted.blocks);
        if best != self.tip_hash() {
            accepted.tip = Some(self.adopt(best, bits)?);
        }
        Ok(accepted)
    }

    /// Writes the branch to `best` and makes it canonical. On a storage error the branch
    /// stays in the tree, unwritten, for [`Chain::retry_unwritten`].
    fn adopt(&mut self, best: BlockHash, bits: u32) -> Result<TipChange, BlockError> {
        self.write_branch(&best)?;
        let change = self.switch_to(best);
        let now = Instant::now();
        self.climbing
            .retain(|_, since| now.duration_since(*since) < CLIMB_HOLD);
        let keep: HashSet<BlockHash> = self.climbing.keys().copied().collect();
        for gone in side::prune(&mut self.tree, &mut self.side, bits, &keep) {
            self.unlogged.remove(&gone);
        }
        Ok(change)
    }

    /// Keeps the side branch ending at `head` from pruning for a while: a sync is still
    /// fetching it, and the next batch builds on `head`.
    pub fn hold_branch(&mut self, head: BlockHash) {
        if self.climbing.len() >= MAX_CLIMBING {
            if let Some(oldest) = self
                .climbing
                .iter()
                .min_by_key(|(_, since)| **since)
                .map(|(h, _)| *h)
            {
                self.climbing.remove(&oldest);
            }
        }
        self.climbing.insert(head, Instant::now());
    }

    /// After a storage error: makes the best branch that could not be written canonical,
    /// if the disk now takes it. `None` if no such branch waits.
    pub fn retry_unwritten(&mut self) -> Option<Result<TipChange, BlockError>> {
        let waiting: Vec<BlockHash> = self.unlogged.iter().copied().collect();
        let best = self.tree.best_candidate(&waiting);
        if best == self.tip_hash() {
            return None;
        }
        let bits = self.tree.get(&best)?.block.header.bits;
        Some(self.adopt(best, bits))
    }

    /// Runs the rules that need the parent's chain, then stores the block in the tree, as
    /// a side block until it joins the canonical chain (and is written to the log then).
    /// The parent must be in the tree.
    fn connect_to_tree(&mut self, block: Arc<Block>, trusted: bool) -> Result<(), BlockError> {
        self.check_in_context(&block, trusted)?;
        if !trusted {
            for tx in &block.txs {
                self.sigs.insert(tx.id(), tx.signature());
            }
        }
        let hash = block.hash();
        self.tree.insert(block);
        self.side.insert(hash);
        if !trusted && self.log.is_some() {
            self.unlogged.insert(hash);
        }
        Ok(())
    }

    /// Records a rejection: a block that can never be valid is remembered as invalid, and
    /// so are its held descendants, which leave the orphan pool.
    fn rejected(&mut self, root: BlockHash, error: BlockError) -> BlockError {
        if !error.is_permanent() {
            return error;
        }
        let mut queue = VecDeque::from([root]);
        while let Some(h) = queue.pop_front() {
            self.tree.mark_invalid(h);
            for child in self.tree.orphans().take_children(&h) {
                queue.push_back(child.hash());
            }
        }
        error
    }

    /// Makes `new_tip` the canonical tip: disconnects back to the fork point, returning
    /// their txs to the mempool, then connects the new branch. All blocks in the tree are
    /// fully validated, so connecting cannot fail.
    fn switch_to(&mut self, new_tip: BlockHash) -> TipChange {
        let (fork, branch) = self.tree.branch_to(&new_tip);
        let mut change = TipChange::default();
        let index = self.index.clone();
        // One write lock for the whole switch: readers see the old chain or the new one.
        let mut index = index.write().unwrap_or_else(|e| e.into_inner());
        while self.height() > fork {
            let tip = self.tree.tip().clone();
            index.undo(&tip.block);
            // Blocks leave newest first and each tx goes to the mempool's front, so walk
            // each block backwards to keep the txs in chain order.
            for tx in tip.block.txs.iter().rev() {
                self.tx_heights.remove(&tx.id());
                self.mempool.readd(tx.clone());
            }
            self.tree.set_best(tip.height - 1, &[]);
            self.side.insert(tip.hash);
            change.disconnected.push(tip.block);
        }
        for hash in &branch {
            let Some(entry) = self.tree.get(hash).cloned() else {
                break;
            };
            index.apply(&entry.block);
            for tx in &entry.block.txs {
                self.tx_heights.insert(tx.id(), entry.height);
                self.mempool.remove(&tx.id());
            }
            self.tree.set_best(entry.height - 1, &[entry.hash]);
            self.side.remove(&entry.hash);
            change.connected.push(entry.block);
        }
        if !change.disconnected.is_empty() {
            tracing::info!(
                depth = change.disconnected.len(),
                fork_height = fork,
                new_height = self.height(),
                "reorg"
            );
        }
        change
    }
}
