//! Hostile sync peers against a live node (in the style of Bitcoin Core's
//! p2p_invalid_messages and p2p_dos_header_tree): a scripted peer claims more work than
//! the node has, so the node asks it for blocks, and then answers with nothing, garbage,
//! the wrong message, blocks that do not connect, too many blocks, or never. Each test
//! asserts the charge the liar gets and that the node still syncs from an honest peer.

mod common;
#[path = "support/hostile_peer.rs"]
mod hostile_peer;
#[path = "support/mutations.rs"]
mod mutations;
#[path = "support/swarm_net.rs"]
mod swarm_net;

use common::{block_on, key, params, put};
use hostile_peer::*;
use kvchain::chain::{BlockHash, Params};
use kvchain::codec;
use kvchain::net::{ChainStatus, Limits, Names, SyncRequest, SyncResponse};
use kvchain::node::MiningPolicy;
use std::time::Duration;
use swarm_net::*;

/// An honest node with a chain of `n` blocks.
async fn honest_with_chain(params: &Params, n: u64) -> TestNode {
    let a = spawn(params, MiningPolicy::Off, vec![]).await;
    let mut parent = params.genesis().header;
    for i in 0..n {
        let b = block_on(&parent, vec![put(&key(1), &format!("k{i}"), "v", i)], 0);
        a.handle.submit_block(b.clone()).await.unwrap().unwrap();
        parent = b.header;
    }
    a
}

/// A node that asks quickly and gives up quickly.
async fn fresh_node(params: &Params) -> TestNode {
    let limits = Limits {
        sync_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let tuning = Tuning {
        limits,
        ..Tuning::default()
    };
    spawn_tuned(params, MiningPolicy::Off, vec![], tuning).await
}

/// A liar that claims far more work than anyone has and answers block requests with
/// `blocks`.
fn liar(
    params: &Params,
    mut blocks: impl FnMut(&SyncRequest) -> Answer,
) -> impl FnMut(&SyncRequest) -> Answer {
    let genesis = params.genesis_hash();
    move |request| match request {
        SyncRequest::Status => Answer::Send(Raw::of(&SyncResponse::Status(ChainStatus {
            genesis,
            tip: BlockHash::digest(b"a tip nobody has"),
            height: 1_000_000,
            total_work: (u128::MAX / 2).to_be_bytes(),
        }))),
        other => blocks(other),
    }
}

/// Runs the scenario: the node meets the liar first, then the honest peer; waits until
/// the node has the honest chain and `charged` holds for the liar; returns the liar's
/// points and whether it is banned.
async fn scenario(
    answer: impl FnMut(&SyncRequest) -> Answer,
    charged: fn(u32) -> bool,
) -> (u32, bool) {
    let params = params();
    let a = honest_with_chain(&params, 20).await;
    let b = fresh_node(&params).await;
    let mut m = Hostile::new(&Names::new(&params.network_id()));
    let mut answer = liar(&params, answer);
    m.join(&b.addr, b.net.peer_id(), &mut answer).await;
    b.net.dial(a.addr.clone()).await.unwrap();
    let want = info(&a).await.tip;
    let (bh, bn, mid) = (b.handle.clone(), b.net.clone(), m.id());
    let done = m
        .run_until(LIMIT, &mut answer, async move {
            until(
                "the node syncs from the honest peer and charges the liar",
                || async {
                    let synced = bh.info().await.is_some_and(|i| i.tip == want);
                    synced && charged(points(&bn, mid).await)
                },
            )
            .await
        })
        .await;
    assert!(done);
    assert_eq!(
        points(&b.net, a.net.peer_id()).await,
        0,
        "the honest peer was charged"
    );
    // The node holds the honest chain and index, and nothing of the liar's.
    HonestState::of(&a.handle)
        .await
        .assert_unchanged(&b.handle, "the synced node matches the honest one")
        .await;
    (points(&b.net, m.id()).await, banned(&b.net, m.id()).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_claiming_huge_work_and_delivering_nothing_is_charged() {
    let answer = |_: &SyncRequest| Answer::Send(Raw::of(&SyncResponse::Blocks(vec![])));
    let (points, banned) = scenario(answer, |p| p > 0).await;
    assert!(points >= 10 && !banned, "points {points}, banned {banned}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_sync_answer_bans_its_sender() {
    let answer = |_: &SyncRequest| Answer::Send(Raw(b"\xff\x00 this is not cbor".to_vec()));
    let (_, banned) = scenario(answer, |p| p >= 100).await;
    assert!(banned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sync_answer_times_out_and_is_charged_while_sync_goes_on() {
    let answer = |_: &SyncRequest| Answer::Stall;
    let (points, banned) = scenario(answer, |p| p > 0).await;
    assert!(points >= 10 && !banned, "points {points}, banned {banned}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_kind_of_answer_bans_its_sender() {
    let genesis = params().genesis_hash();
    let answer = move |_: &SyncRequest| {
        Answer::Send(Raw::of(&SyncResponse::Status(ChainStatus {
            genesis,
            tip: genesis,
            height: 0,
            total_work: [0; 16],
        })))
    };
    let (_, banned) = scenario(answer, |p| p >= 100).await;
    assert!(banned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_blocks_that_do_not_connect_ban_their_sender() {
    let p = params();
    let stray_parent = block_on(&p.genesis().header, vec![put(&key(9), "s", "1", 0)], 5);
    let stray = block_on(&stray_parent.header, vec![], 0);
    let answer =
        move |_: &SyncRequest| Answer::Send(Raw::of(&SyncResponse::Blocks(vec![stray.clone()])));
    let (_, banned) = scenario(answer, |p| p >= 100).await;
    assert!(banned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_the_limit_bans_its_sender() {
    let p = params();
    let mut parent = p.genesis().header;
    let mut blocks = Vec::new();
    for i in 0..=kvchain::net::protocol::MAX_SYNC_BLOCKS {
        let b = block_on(&parent, vec![], u64::from(i) + 100);
        parent = b.header;
        blocks.push(b);
    }
    let answer =
        move |_: &SyncRequest| Answer::Send(Raw::of(&SyncResponse::Blocks(blocks.clone())));
    let (_, banned) = scenario(answer, |p| p >= 100).await;
    assert!(banned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sync_requests_is_throttled_and_charged_and_honest_peers_still_served() {
    let params = params();
    let a = honest_with_chain(&params, 5).await;
    let mut m = Hostile::new(&Names::new(&params.network_id()));
    let mut answer = quiet(&params);
    m.join(&a.addr, a.net.peer_id(), &mut answer).await;
    let before = HonestState::of(&a.handle).await;
    for _ in 0..400 {
        m.request(&a.net.peer_id(), SyncRequest::Status);
    }
    let (an, mid) = (a.net.clone(), m.id());
    let charged = m
        .run_until(LIMIT, &mut answer, async move {
            until("the flood is charged", || async {
                points(&an, mid).await > 0
            })
            .await
        })
        .await;
    assert!(charged);
    before
        .assert_unchanged(&a.handle, "the flood changed nothing")
        .await;
    // An honest newcomer still syncs from the flooded node.
    let c = spawn(&params, MiningPolicy::Off, vec![a.addr.clone()]).await;
    let want = info(&a).await.tip;
    until("the newcomer syncs", || async {
        info(&c).await.tip == want
    })
    .await;
}

/// A block asked for by hash after a mutated copy: a liar's second mutated copy bans it,
/// an honest answer is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_asked_for_by_hash_is_checked_like_any_other() {
    let params = params();
    let b = fresh_node(&params).await;
    let real = block_on(
        &params.genesis().header,
        (0..4).map(|i| put(&key(7), "h", "v", i)).collect(),
        0,
    );
    let copies = mutations::mutations(&real);
    let before = HonestState::of(&b.handle).await;
    // The responder first answers with a mutated copy, then (a new identity) with the real.
    for (honest_answer, name) in [(false, "liar"), (true, "honest")] {
        let mut responder = Hostile::new(&Names::new(&params.network_id()));
        let served = if honest_answer {
            real.clone()
        } else {
            copies[0].1.clone()
        };
        let mut answer = {
            let mut quiet = quiet(&params);
            move |r: &SyncRequest| match r {
                SyncRequest::Block(_) => {
                    Answer::Send(Raw::of(&SyncResponse::Block(Some(served.clone()))))
                }
                other => quiet(other),
            }
        };
        responder.join(&b.addr, b.net.peer_id(), &mut answer).await;
        // A sender of a mutated copy makes the node ask others by hash.
        let mut sender = Hostile::new(&Names::new(&params.network_id()));
        let mut quiet_answer = quiet(&params);
        sender
            .join(&b.addr, b.net.peer_id(), &mut quiet_answer)
            .await;
        sender.publish(
            true,
            codec::encode(&copies[1 + usize::from(honest_answer)].1),
        );
        let (bn, bh, rid) = (b.net.clone(), b.handle.clone(), responder.id());
        let want = real.hash();
        let ok = async move {
            until(&format!("the {name} responder's answer is judged"), || {
                let (bn, bh) = (bn.clone(), bh.clone());
                async move {
                    if honest_answer {
                        bh.info().await.is_some_and(|i| i.tip == want)
                    } else {
                        banned(&bn, rid).await
                    }
                }
            })
            .await;
        };
        let drive_sender = sender.run_for(Duration::from_secs(1), &mut quiet_answer);
        let (done, _) = tokio::join!(responder.run_until(LIMIT, &mut answer, ok), drive_sender);
        assert!(done, "{name}");
        if !honest_answer {
            before
                .assert_unchanged(&b.handle, "the liar's copy was refused")
                .await;
        }
    }
    assert_eq!(info(&b).await.tip, real.hash());
}

/// A peer claiming exactly our work on a tip nobody has: it is asked for its branch,
/// charged when it has none, and never keeps an auto-mining node mining empty blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_up_tie_is_charged_and_does_not_keep_the_node_mining() {
    let params = params();
    let node = spawn(&params, MiningPolicy::Auto, vec![]).await;
    let work = info(&node).await.total_work;
    let before = HonestState::of(&node.handle).await;
    let genesis = params.genesis_hash();
    let mut answer = move |r: &SyncRequest| match r {
        SyncRequest::Status => Answer::Send(Raw::of(&SyncResponse::Status(ChainStatus {
            genesis,
            tip: BlockHash::digest(b"a made-up tip of equal work"),
            height: 0,
            total_work: work.to_be_bytes(),
        }))),
        SyncRequest::Blocks { .. } => Answer::Send(Raw::of(&SyncResponse::Blocks(vec![]))),
        SyncRequest::Block(_) => Answer::Send(Raw::of(&SyncResponse::Block(None))),
    };
    let mut m = Hostile::new(&Names::new(&params.network_id()));
    m.join(&node.addr, node.net.peer_id(), &mut answer).await;
    let (nn, mid) = (node.net.clone(), m.id());
    let charged = m
        .run_until(LIMIT, &mut answer, async move {
            until("the liar is charged", || async {
                points(&nn, mid).await > 0
            })
            .await
        })
        .await;
    assert!(charged);
    assert!(!info(&node).await.mining_active, "the made-up tie is mined");
    before
        .assert_unchanged(&node.handle, "the made-up tie was mined")
        .await;
}
