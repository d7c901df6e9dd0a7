//! Hostile blocks against live nodes (in-process, real libp2p over the memory transport),
//! in the style of Bitcoin Core's p2p_invalid_block and p2p_mutated_blocks: a scripted
//! peer sends what no honest node sends, and each test asserts who is charged, what the
//! honest nodes keep, and that no honest peer is ever penalised.

mod common;
#[path = "support/hostile_peer.rs"]
mod hostile_peer;
#[path = "support/mutations.rs"]
mod mutations;
#[path = "support/swarm_net.rs"]
mod swarm_net;

use common::{block_on, key, params, put};
use hostile_peer::*;
use kvchain::chain::{limits::MAX_FUTURE_DRIFT_MS, now_ms, pow, Block, Params, Signature};

use kvchain::codec;
use kvchain::net::Names;
use kvchain::node::MiningPolicy;
use swarm_net::*;

async fn pair(params: &Params) -> (TestNode, TestNode) {
    let a = spawn(params, MiningPolicy::Off, vec![]).await;
    let b = spawn(params, MiningPolicy::Off, vec![a.addr.clone()]).await;
    until("a and b connect", || async {
        info(&a).await.peers == 1 && info(&b).await.peers == 1
    })
    .await;
    (a, b)
}

fn txs(seed: u8, n: u64) -> Vec<kvchain::chain::Tx> {
    (0..n)
        .map(|i| put(&key(seed), &format!("k{seed}-{i}"), "v", i))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_copies_first_then_the_real_block_is_accepted_and_no_honest_peer_is_penalised() {
    let params = params();
    let (a, b) = pair(&params).await;
    let mut m = Hostile::new(&Names::new(&params.network_id()));
    let mut answer = quiet(&params);
    m.join(&b.addr, b.net.peer_id(), &mut answer).await;
    let real = block_on(&params.genesis().header, txs(2, 4), 0);
    let before = HonestState::of(&b.handle).await;
    for (_, copy) in mutations::mutations(&real) {
        m.publish(true, codec::encode(&copy));
    }
    let charged = m.until_banned(&b.net, LIMIT, &mut answer).await;
    assert!(charged);
    before
        .assert_unchanged(&b.handle, "no mutated copy was taken")
        .await;
    // The real block, from an honest peer, is taken everywhere.
    a.handle.submit_block(real.clone()).await.unwrap().unwrap();
    until("b takes the real block", || async {
        info(&b).await.tip == real.hash()
    })
    .await;
    assert_eq!(
        points(&b.net, a.net.peer_id()).await,
        0,
        "honest a was charged"
    );
    assert_eq!(
        points(&a.net, b.net.peer_id()).await,
        0,
        "honest b was charged"
    );
    assert_eq!(
        HonestState::of(&a.handle).await,
        HonestState::of(&b.handle).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_of_three_with_an_attacker_at_the_middle_still_gets_every_block() {
    let params = params();
    let a = spawn(&params, MiningPolicy::Off, vec![]).await;
    let b = spawn(&params, MiningPolicy::Off, vec![a.addr.clone()]).await;
    let c = spawn(&params, MiningPolicy::Off, vec![b.addr.clone()]).await;
    until("the line connects", || async { info(&b).await.peers == 2 }).await;
    let mut parent = params.genesis().header;
    let mut attackers = Vec::new();
    for i in 0..8u8 {
        let real = block_on(&parent, txs(10 + i, 4), 0);
        // A fresh attacker identity each time (one mutated copy gets it banned), whose
        // copy reaches the middle node first.
        let mut m = Hostile::new(&Names::new(&params.network_id()));
        let mut answer = quiet(&params);
        m.join(&b.addr, b.net.peer_id(), &mut answer).await;
        let (_, copy) = mutations::mutations(&real).swap_remove(usize::from(i) % 5);
        m.publish(true, codec::encode(&copy));
        let charged = m.until_banned(&b.net, LIMIT, &mut answer).await;
        assert!(charged, "block {i}");
        attackers.push(m.id());
        a.handle.submit_block(real.clone()).await.unwrap().unwrap();
        parent = real.header;
    }
    let want = parent.hash();
    for (name, n) in [("a", &a), ("b", &b), ("c", &c)] {
        until(&format!("{name} reaches the last block"), || async {
            info(n).await.tip == want
        })
        .await;
    }
    assert_eq!(info(&c).await.height, 8);
    let state = HonestState::of(&a.handle).await;
    for n in [&b, &c] {
        state
            .assert_unchanged(&n.handle, "all three hold one index")
            .await;
    }
    for (x, y) in [(&a, &b), (&b, &a), (&b, &c), (&c, &b)] {
        assert_eq!(
            points(&x.net, y.net.peer_id()).await,
            0,
            "an honest peer was charged"
        );
    }
    assert_eq!(b.net.bans().await.len(), attackers.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_ahead_of_the_clock_is_ignored_and_its_sender_not_charged() {
    let params = params();
    let b = spawn(&params, MiningPolicy::Off, vec![]).await;
    let mut m = Hostile::new(&Names::new(&params.network_id()));
    let mut answer = quiet(&params);
    m.join(&b.addr, b.net.peer_id(), &mut answer).await;
    let mut header = common::header_on(
        &params.genesis().header,
        &[],
        now_ms() + MAX_FUTURE_DRIFT_MS + 60_000,
    );
    header = pow::solve(header);
    let early = Block {
        header,
        txs: vec![],
    };
    let before = HonestState::of(&b.handle).await;
    m.publish(true, codec::encode(&early));
    // Then a valid tx: once it is pending, the block before it was judged.
    let op = kvchain::chain::Op::Put {
        key: "x".into(),
        value: b"y".to_vec(),
    };
    let marker = kvchain::chain::Tx::new(&key(3), op, 0, now_ms()).unwrap();
    m.publish_txs(std::slice::from_ref(&marker));
    let bb = b.handle.clone();
    let id = marker.id();
    let judged = m
        .run_until(LIMIT, &mut answer, async move {
            until("b takes the marker tx", || async {
                bb.tx(id).await.is_some()
            })
            .await
        })
        .await;
    assert!(judged);
    assert_eq!(
        points(&b.net, m.id()).await,
        0,
        "a block ahead of the clock was charged"
    );
    // Only the marker tx was taken.
    let expected = HonestState {
        mempool: before.mempool + 1,
        ..before
    };
    expected
        .assert_unchanged(&b.handle, "the early block was ignored")
        .await;
    assert!(b.handle.block_by_hash(early.hash()).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_with_an_unknown_parent_is_held_its_sender_asked_and_not_charged() {
    let params = params();
    let b = spawn(&params, MiningPolicy::Off, vec![]).await;
    let mut m = Hostile::new(&Names::new(&params.network_id()));
    let parent = block_on(&params.genesis().header, txs(4, 1), 0);
    let child = block_on(&parent.header, txs(5, 1), 0);
    let served = parent.clone();
    let mut answer = {
        let mut quiet = quiet(&params);
        move |r: &kvchain::net::SyncRequest| match r {
            kvchain::net::SyncRequest::Blocks { .. } => {
                Answer::Send(Raw::of(&kvchain::net::SyncResponse::Blocks(vec![
                    served.clone()
                ])))
            }
            other => quiet(other),
        }
    };
    m.join(&b.addr, b.net.peer_id(), &mut answer).await;
    m.publish(true, codec::encode(&child));
    let bb = b.handle.clone();
    let want = child.hash();
    let got = m
        .run_until(LIMIT, &mut answer, async move {
            until("b fetches the parent and connects the child", || async {
                bb.info().await.is_some_and(|i| i.tip == want)
            })
            .await
        })
        .await;
    assert!(got);
    assert_eq!(points(&b.net, m.id()).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_block_whose_body_matches_is_remembered_and_each_sending_charged() {
    let params = params();
    let b = spawn(&params, MiningPolicy::Off, vec![]).await;
    let mut m = Hostile::new(&Names::new(&params.network_id()));
    let mut answer = quiet(&params);
    m.join(&b.addr, b.net.peer_id(), &mut answer).await;
    let forged = put(&key(6), "f", "1", 0).with_signature(Signature([1; 64]));
    let bad = block_on(&params.genesis().header, vec![forged], 0);
    let child = block_on(&bad.header, vec![], 0);
    let before = HonestState::of(&b.handle).await;
    m.publish(true, codec::encode(&bad));
    let charged = m.until_banned(&b.net, LIMIT, &mut answer).await;
    assert!(charged);
    // Its descendant is refused as well, from whoever sends it.
    let mut m2 = Hostile::new(&Names::new(&params.network_id()));
    m2.join(&b.addr, b.net.peer_id(), &mut answer).await;
    m2.publish(true, codec::encode(&child));
    let charged = m2.until_banned(&b.net, LIMIT, &mut answer).await;
    assert!(charged);
    before
        .assert_unchanged(&b.handle, "both were refused")
        .await;
    assert_eq!(info(&b).await.orphans, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_valid_side_blocks_stays_within_the_side_budget_and_is_not_charged() {
    use kvchain::chain::side::MAX_SIDE_BLOCKS;
    let params = params();
    let b = spawn(&params, MiningPolicy::Off, vec![]).await;
    let mut parent = params.genesis().header;
    for i in 0..3 {
        let blk = block_on(&parent, vec![], i);
        b.handle.submit_block(blk.clone()).await.unwrap().unwrap();
        parent = blk.header;
    }
    let before = HonestState::of(&b.handle).await;
    let fork = b.handle.block_at(1).await.unwrap().header;
    let mut m = Hostile::new(&Names::new(&params.network_id()));
    let mut answer = quiet(&params);
    m.join(&b.addr, b.net.peer_id(), &mut answer).await;
    let flood = 2 * MAX_SIDE_BLOCKS as u64;
    for salt in 0..flood {
        // Valid proof of work, each a sibling of the canonical block at height 2.
        let side = block_on(&fork, vec![], 50_000 + salt);
        while !m.publish(true, codec::encode(&side)) {
            m.run_for(std::time::Duration::from_millis(5), &mut answer)
                .await;
        }
        if salt % 64 == 0 {
            m.run_for(std::time::Duration::from_millis(5), &mut answer)
                .await;
        }
    }
    let bh = b.handle.clone();
    let full = m
        .run_until(LIMIT, &mut answer, async move {
            until("the side budget fills", || async {
                bh.info()
                    .await
                    .is_some_and(|i| i.side_blocks == MAX_SIDE_BLOCKS)
            })
            .await
        })
        .await;
    assert!(full);
    m.run_for(std::time::Duration::from_millis(500), &mut answer)
        .await;
    before
        .assert_unchanged(&b.handle, "the side blocks stay off the chain")
        .await;
    assert_eq!(info(&b).await.side_blocks, MAX_SIDE_BLOCKS);
    assert_eq!(points(&b.net, m.id()).await, 0, "valid blocks were charged");
}
