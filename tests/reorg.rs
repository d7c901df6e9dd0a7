//! Fork choice and reorgs: the heavier branch wins, a tie keeps the first seen, the index
//! is undone and redone, orphaned writes go back to the mempool, and receipts follow.

mod common;

use common::*;
use kvchain::chain::{Block, BlockHash, Chain, Header, Index};
use kvchain::node::{self, MiningPolicy, NodeConfig};
use kvchain::TxStatus;
use std::time::Duration;

/// Builds `n` empty blocks on `parent`, salted so they differ from other branches.
fn branch(parent: &Header, n: usize, salt: u64) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    let mut p = *parent;
    for _ in 0..n {
        let b = block_on(&p, vec![], salt);
        p = b.header;
        out.push(b);
    }
    out
}

fn folded(chain: &Chain) -> Index {
    Index::fold(chain.canonical_blocks().iter().map(|b| b.as_ref()))
}

fn index_of(chain: &Chain) -> Index {
    chain.index().read().unwrap().clone()
}

#[test]
fn a_heavier_branch_replaces_the_tip() {
    let mut chain = Chain::new(params());
    let genesis = chain.params().genesis().header;
    let a = branch(&genesis, 2, 1);
    let b = branch(&genesis, 3, 2);
    for blk in &a {
        chain.process_block(blk.clone()).unwrap();
    }
    assert_eq!(chain.tip_hash(), a[1].hash());
    // b1 and b2 are lighter or equal: no switch yet.
    for blk in &b[..2] {
        let acc = chain.process_block(blk.clone()).unwrap();
        assert!(acc.tip.is_none());
    }
    assert_eq!(chain.tip_hash(), a[1].hash());
    let acc = chain.process_block(b[2].clone()).unwrap();
    let change = acc.tip.expect("reorg");
    let gone: Vec<BlockHash> = change.disconnected.iter().map(|b| b.hash()).collect();
    let came: Vec<BlockHash> = change.connected.iter().map(|b| b.hash()).collect();
    assert_eq!(gone, vec![a[1].hash(), a[0].hash()]);
    assert_eq!(came, b.iter().map(Block::hash).collect::<Vec<_>>());
    assert_eq!(chain.tip_hash(), b[2].hash());
    assert_eq!(chain.height(), 3);
}

#[test]
fn a_tie_keeps_the_first_seen_tip() {
    let mut chain = Chain::new(params());
    let genesis = chain.params().genesis().header;
    let a = branch(&genesis, 2, 1);
    let b = branch(&genesis, 2, 2);
    for blk in a.iter().chain(&b) {
        chain.process_block(blk.clone()).unwrap();
    }
    assert_eq!(chain.tip_hash(), a[1].hash());
    // The tie is broken by arrival, not by hash: swap the order and the other wins.
    let mut other = Chain::new(params());
    for blk in b.iter().chain(&a) {
        other.process_block(blk.clone()).unwrap();
    }
    assert_eq!(other.tip_hash(), b[1].hash());
}

#[test]
fn a_version_written_only_on_the_losing_branch_disappears() {
    let mut chain = Chain::new(params());
    let kp = key(1);
    let base = put(&kp, "color", "red", 0);
    extend(&mut chain, vec![base.clone()]);
    let fork = chain.tip().block.header;
    let lost = put(&kp, "color", "blue", 1);
    let lost_only = put(&kp, "shape", "round", 2);
    let kept = put(&kp, "size", "big", 3);
    chain.submit_tx(lost.clone()).unwrap();
    extend(
        &mut chain,
        vec![lost.clone(), lost_only.clone(), kept.clone()],
    );
    assert!(chain.mempool().is_empty());
    {
        let index = chain.index();
        let index = index.read().unwrap();
        assert_eq!(index.history("color").len(), 2);
        assert_eq!(index.latest("color").unwrap().tx_id, lost.id());
    }
    // A heavier branch from the fork that has `kept` but not the others.
    let b1 = block_on(&fork, vec![kept.clone()], 9);
    let b2 = block_on(&b1.header, vec![], 9);
    chain.process_block(b1).unwrap();
    let acc = chain.process_block(b2.clone()).unwrap();
    assert_eq!(acc.tip.unwrap().disconnected.len(), 1);
    assert_eq!(chain.tip_hash(), b2.hash());
    let index = index_of(&chain);
    let color: Vec<_> = index.history("color").iter().map(|v| v.tx_id).collect();
    assert_eq!(color, vec![base.id()], "blue was only on the losing branch");
    assert!(index.history("shape").is_empty());
    assert_eq!(index.latest("size").unwrap().height, 2);
    assert_eq!(index, folded(&chain));
    // Orphaned writes are back in the mempool, oldest first; `kept` is not (it is mined).
    assert_eq!(chain.mempool().ids(), vec![lost.id(), lost_only.id()]);
    assert_eq!(chain.tx_height(&kept.id()), Some(2));
    assert_eq!(chain.tx_height(&lost.id()), None);
    // Re-mined on the new tip, they come back.
    let txs = chain.template().txs;
    extend(&mut chain, txs);
    assert!(chain.mempool().is_empty());
    assert_eq!(index_of(&chain).latest("color").unwrap().tx_id, lost.id());
    assert_eq!(index_of(&chain), folded(&chain));
}

#[test]
fn a_reorg_back_and_forth_restores_each_index() {
    let mut chain = Chain::new(params());
    let kp = key(1);
    let genesis = chain.params().genesis().header;
    let a1 = block_on(&genesis, vec![put(&kp, "k", "a", 0)], 1);
    let b1 = block_on(&genesis, vec![put(&kp, "k", "b", 1), del(&kp, "k", 2)], 2);
    let b2 = block_on(&b1.header, vec![], 2);
    let a2 = block_on(&a1.header, vec![put(&kp, "j", "a", 3)], 1);
    let a3 = block_on(&a2.header, vec![], 1);
    chain.process_block(a1).unwrap();
    let index_a1 = index_of(&chain);
    chain.process_block(b1).unwrap();
    assert_eq!(index_of(&chain), index_a1, "tie: the first seen stays");
    chain.process_block(b2).unwrap();
    let index = index_of(&chain);
    assert_eq!(index.history("k").len(), 2);
    assert_eq!(
        index.latest("k").unwrap().value,
        None,
        "a delete is a tombstone"
    );
    assert_eq!(index, folded(&chain));
    chain.process_block(a2).unwrap();
    chain.process_block(a3.clone()).unwrap();
    assert_eq!(chain.tip_hash(), a3.hash());
    assert_eq!(index_of(&chain), folded(&chain));
    assert_eq!(index_of(&chain).history("k").len(), 1);
    // The b-branch writes went back to the mempool.
    assert_eq!(chain.mempool().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_goes_included_pending_included() {
    let limit = Duration::from_secs(30);
    let mut config = NodeConfig::new(params());
    config.confirmations = 1_000;
    let started = node::start(config).unwrap();
    let node = started.handle;
    let store = node.store().clone();
    let mut receipt = store.put("color", "red").await.unwrap();
    let first = receipt.included(limit).await.unwrap();
    assert!(matches!(receipt.status(), TxStatus::Included { height } if height == first));
    assert_eq!(
        store.retrieve("color").unwrap().value.as_deref(),
        Some(&b"red"[..])
    );

    // Stop mining, then replace the block holding the write with a longer empty branch.
    node.set_mining(MiningPolicy::Off).await;
    let fork = node.block_at(first - 1).await.unwrap().header;
    let height = node.info().await.unwrap().height;
    // A block found just before mining stopped may still arrive: add a margin.
    let rival = branch(&fork, (height - fork.height) as usize + 3, 77);
    for b in rival {
        node.submit_block(b).await.unwrap().unwrap();
    }
    let status = receipt
        .wait_for(limit, |s| *s == TxStatus::Pending)
        .await
        .unwrap();
    assert_eq!(status, TxStatus::Pending);
    assert_eq!(store.retrieve("color"), None);
    assert!(store.retrieve_all("color").is_empty());
    assert_eq!(
        node.info().await.unwrap().mempool,
        1,
        "the write is back in the mempool"
    );

    // Mining again puts it back into a block, on the new branch.
    node.set_mining(MiningPolicy::Auto).await;
    let again = receipt.included(limit).await.unwrap();
    assert!(again > first, "re-mined above the fork: {again} vs {first}");
    assert_eq!(node.tx_height(receipt.id()).await, Some(again));
    assert_eq!(store.retrieve("color").unwrap().height, again);
}
