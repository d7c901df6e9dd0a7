//! Side branches: which blocks off the canonical chain are kept, and for how long, so that
//! a flood of valid low-work forks bounds memory and never reaches the disk.
//!
//! A block that extends the tip is always taken. A side-branch block that arrived by
//! gossip is taken only while its branch could still win: its cumulative work is at most
//! [`SIDE_WINDOW_BLOCKS`] blocks' work behind the tip, and fewer than
//! [`MAX_SIDE_BLOCKS`] side blocks are held. A branch fetched by sync from a peer that
//! claims more work than our tip may climb toward the tip outside the window (the claim
//! is charged if the peer then delivers less). Side blocks are held in memory only: a
//! block is written to the block log when it joins the canonical chain, and side blocks
//! whose branch fell out of the window are dropped.

use super::crypto::BlockHash;
use super::pow;
use super::tree::BlockTree;
use super::validate::BlockError;
use std::collections::HashSet;

/// How far behind the tip (in blocks of work) a gossiped side branch may be.
pub const SIDE_WINDOW_BLOCKS: u128 = 64;
/// Most side-branch blocks held at once.
pub const MAX_SIDE_BLOCKS: usize = 256;

/// How a block reached the chain, which decides whether a side branch may grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// From gossip or a by-hash fetch: side branches only within the window and budget.
    Gossip,
    /// From sync with a peer that claims more work than our tip, or from a local caller
    /// (the miner, a tool, a test): no window.
    Any,
}

/// The work `blocks` blocks carry at `bits` of difficulty.
pub fn window_work(bits: u32) -> u128 {
    pow::work(bits).saturating_mul(SIDE_WINDOW_BLOCKS)
}

/// Whether a block with parent `parent` and `bits` may join the tree under `admission`,
/// given the side blocks held now.
pub fn admit(
    tree: &BlockTree,
    parent: &BlockHash,
    bits: u32,
    admission: Admission,
    side_blocks: usize,
) -> Result<(), BlockError> {
    let tip = tree.tip();
    if admission == Admission::Any || *parent == tip.hash {
        return Ok(());
    }
    let Some(parent) = tree.get(parent) else {
        return Ok(()); // held as an orphan instead, in its own bounded pool
    };
    let work = parent.work.saturating_add(pow::work(bits));
    if work.saturating_add(window_work(bits)) < tip.work {
        return Err(BlockError::SideBranchTooWeak);
    }
    if side_blocks >= MAX_SIDE_BLOCKS {
        return Err(BlockError::SideBranchesFull);
    }
    Ok(())
}

/// Side blocks that can be dropped: leaves (no side block builds on them) whose work is
/// more than the window behind the tip, except the heads in `keep` (branches a sync is
/// still fetching). Drops them from the tree and from `side`, again and again until none
/// is left; returns the hashes that went.
pub fn prune(
    tree: &mut BlockTree,
    side: &mut HashSet<BlockHash>,
    bits: u32,
    keep: &HashSet<BlockHash>,
) -> Vec<BlockHash> {
    let floor = tree.tip().work.saturating_sub(window_work(bits));
    let mut dropped = Vec::new();
    loop {
        let parents: HashSet<BlockHash> = side
            .iter()
            .filter_map(|h| tree.get(h))
            .map(|e| e.block.header.prev)
            .collect();
        let gone: Vec<BlockHash> = side
            .iter()
            .filter(|h| !parents.contains(h) && !keep.contains(h))
            .filter(|h| tree.get(h).is_some_and(|e| e.work < floor))
            .copied()
            .collect();
        if gone.is_empty() {
            return dropped;
        }
        for h in gone {
            side.remove(&h);
            tree.remove_side(&h);
            dropped.push(h);
        }
    }
}
