//! Side branches stay bounded (in the style of Bitcoin Core's p2p_dos_header_tree): a
//! gossiped side block must be within reach of the tip and within the side budget, side
//! blocks that fall out of the window are dropped, and only blocks that join the
//! canonical chain reach the block log, so a flood of valid low-work forks grows neither
//! memory past the bound nor the disk at all.

mod common;

use common::*;
use kvchain::chain::side::{Admission, MAX_SIDE_BLOCKS, SIDE_WINDOW_BLOCKS};
use kvchain::chain::state::BLOCK_LOG;
use kvchain::chain::{BlockError, Chain, Header};

fn grow(chain: &mut Chain, n: u64) {
    for _ in 0..n {
        extend(chain, vec![]);
    }
}

fn header_at(chain: &Chain, height: u64) -> Header {
    chain.block_at(height).expect("canonical block").header
}

#[test]
fn a_gossiped_side_block_too_far_behind_is_refused_without_blame() {
    let mut chain = Chain::new(params());
    grow(&mut chain, SIDE_WINDOW_BLOCKS as u64 + 5);
    let old = block_on(&header_at(&chain, 1), vec![], 77);
    let err = chain
        .process_block_as(old.clone(), Admission::Gossip)
        .unwrap_err();
    assert_eq!(err, BlockError::SideBranchTooWeak);
    assert!(!err.sender_at_fault() && !err.is_permanent());
    assert!(!chain.tree().is_invalid(&old.hash()));
    // Within the window it is kept, and from a peer proving more work it always is.
    let recent = block_on(&header_at(&chain, chain.height() - 3), vec![], 77);
    chain.process_block_as(recent, Admission::Gossip).unwrap();
    chain.process_block_as(old, Admission::Any).unwrap();
    assert_eq!(chain.side_blocks(), 2);
}

#[test]
fn side_blocks_beyond_the_budget_are_refused() {
    let mut chain = Chain::new(params());
    grow(&mut chain, 3);
    let parent = header_at(&chain, 2);
    for salt in 0..MAX_SIDE_BLOCKS as u64 {
        let b = block_on(&parent, vec![], 1000 + salt);
        chain.process_block_as(b, Admission::Gossip).unwrap();
    }
    assert_eq!(chain.side_blocks(), MAX_SIDE_BLOCKS);
    let one_more = block_on(&parent, vec![], 5);
    let err = chain
        .process_block_as(one_more, Admission::Gossip)
        .unwrap_err();
    assert_eq!(err, BlockError::SideBranchesFull);
    assert!(!err.sender_at_fault());
    // The canonical chain still grows.
    let tip = chain.tip_hash();
    extend(&mut chain, vec![]);
    assert_ne!(chain.tip_hash(), tip);
}

#[test]
fn a_branch_a_sync_is_still_fetching_is_not_pruned_as_the_tip_moves() {
    let mut chain = Chain::new(params());
    grow(&mut chain, 4);
    // A branch from height 1, as a sync from a peer with more work delivers it (its
    // first three blocks tie with our tip, so they stay on the side).
    let mut head = header_at(&chain, 1);
    for salt in 0..3 {
        let b = block_on(&head, vec![], 3000 + salt);
        chain.process_block_as(b.clone(), Admission::Any).unwrap();
        head = b.header;
    }
    chain.hold_branch(head.hash());
    grow(&mut chain, SIDE_WINDOW_BLOCKS as u64 + 2);
    assert_eq!(chain.side_blocks(), 3, "the held branch was pruned");
    // The next batch still connects.
    let next = block_on(&head, vec![], 0);
    chain.process_block_as(next, Admission::Any).unwrap();
    assert_eq!(chain.side_blocks(), 4);
}

#[test]
fn side_blocks_out_of_the_window_are_dropped_as_the_tip_moves() {
    let mut chain = Chain::new(params());
    grow(&mut chain, 3);
    let parent = header_at(&chain, 2);
    for salt in 0..50 {
        let b = block_on(&parent, vec![], 2000 + salt);
        chain.process_block_as(b, Admission::Gossip).unwrap();
    }
    assert_eq!(chain.side_blocks(), 50);
    grow(&mut chain, SIDE_WINDOW_BLOCKS as u64 + 2);
    assert_eq!(
        chain.side_blocks(),
        0,
        "out-of-window side blocks stay held"
    );
}

#[test]
fn a_flood_of_forks_never_reaches_the_disk_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (mut chain, _) = Chain::open(params(), dir.path()).unwrap();
    grow(&mut chain, 10);
    let log = dir.path().join(BLOCK_LOG);
    let before = std::fs::metadata(&log).unwrap().len();
    let mut refused = 0;
    for salt in 0..3 * MAX_SIDE_BLOCKS as u64 {
        let at = 1 + salt % 9;
        let b = block_on(&header_at(&chain, at), vec![], 10_000 + salt);
        if chain.process_block_as(b, Admission::Gossip).is_err() {
            refused += 1;
        }
        assert!(chain.side_blocks() <= MAX_SIDE_BLOCKS);
    }
    assert!(refused >= 2 * MAX_SIDE_BLOCKS as u64);
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        before,
        "side blocks were written"
    );
    drop(chain);
    let (chain, _) = Chain::open(params(), dir.path()).unwrap();
    assert_eq!((chain.height(), chain.side_blocks()), (10, 0));
}

#[test]
fn a_side_branch_that_wins_is_written_when_it_joins_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (mut chain, _) = Chain::open(params(), dir.path()).unwrap();
    grow(&mut chain, 3);
    // A heavier branch from height 1, delivered before it is heavier.
    let mut parent = header_at(&chain, 1);
    let mut last = None;
    for salt in 0..4 {
        let b = block_on(&parent, vec![put(&key(4), "fork", "v", salt)], 30 + salt);
        parent = b.header;
        last = Some(b.hash());
        chain.process_block_as(b, Admission::Gossip).unwrap();
    }
    let want = last.unwrap();
    assert_eq!(chain.tip_hash(), want);
    assert_eq!(chain.side_blocks(), 2, "the old branch is now the side");
    drop(chain);
    let (chain, _) = Chain::open(params(), dir.path()).unwrap();
    assert_eq!(chain.tip_hash(), want, "the winning branch was not written");
    assert_eq!(chain.height(), 5);
}
