//! Hostile and unlucky txs against a live node (in the style of Bitcoin Core's
//! p2p_invalid_tx and mempool_limit): txs stamped far from our clock and replays are
//! ignored without charging the relayer; a flood of valid txs keeps the mempool within
//! its bounds while the node's own writes still go through.

mod common;
#[path = "support/hostile_peer.rs"]
mod hostile_peer;
#[path = "support/swarm_net.rs"]
mod swarm_net;

use common::{block_on, key, params};
use hostile_peer::*;
use kvchain::chain::mempool::{MempoolLimits, MAX_TX_AGE_MS, MAX_TX_FUTURE_MS};
use kvchain::chain::{now_ms, Keypair, Op, Tx};
use kvchain::net::Names;
use kvchain::node::{MiningPolicy, NodeMetrics};
use std::sync::Arc;
use std::time::Duration;
use swarm_net::*;

fn tx_at(kp: &Keypair, key: &str, nonce: u64, timestamp: u64) -> Tx {
    let op = Op::Put {
        key: key.into(),
        value: b"v".to_vec(),
    };
    Tx::new(kp, op, nonce, timestamp).unwrap()
}

/// Publishes `first`, then a valid marker tx; once the marker is pending, `first` has
/// been judged. Returns the hostile peer's points and whether `first` is pending.
async fn judged(node: &TestNode, first: &Tx) -> (u32, bool) {
    let params = params();
    let mut m = Hostile::new(&Names::new(&params.network_id()));
    let mut answer = quiet(&params);
    m.join(&node.addr, node.net.peer_id(), &mut answer).await;
    let before = HonestState::of(&node.handle).await;
    m.publish_txs(std::slice::from_ref(first));
    let marker = tx_at(&key(50), "marker", rand_nonce(), now_ms());
    m.publish_txs(std::slice::from_ref(&marker));
    let (h, id) = (node.handle.clone(), marker.id());
    let ok = m
        .run_until(LIMIT, &mut answer, async move {
            until("the marker is pending", || async {
                h.tx(id).await.is_some()
            })
            .await
        })
        .await;
    assert!(ok);
    let pending = node
        .handle
        .tx(first.id())
        .await
        .is_some_and(|t| t.height.is_none());
    // The chain and index are as they were; the mempool holds at most the two txs.
    let after = HonestState::of(&node.handle).await;
    assert_eq!((after.tip, after.digest), (before.tip, before.digest));
    assert_eq!(after.mempool, before.mempool + 1 + usize::from(pending));
    (points(&node.net, m.id()).await, pending)
}

fn rand_nonce() -> u64 {
    u64::from_le_bytes(Keypair::generate().public().0[..8].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tx_stamped_ahead_of_the_clock_is_ignored_and_not_charged() {
    let node = spawn(&params(), MiningPolicy::Off, vec![]).await;
    let ahead = tx_at(&key(1), "a", 0, now_ms() + MAX_TX_FUTURE_MS + 60_000);
    assert_eq!(judged(&node, &ahead).await, (0, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tx_stamped_long_ago_is_ignored_and_not_charged() {
    let node = spawn(&params(), MiningPolicy::Off, vec![]).await;
    let old = tx_at(&key(1), "a", 0, now_ms() - MAX_TX_AGE_MS - 60_000);
    assert_eq!(judged(&node, &old).await, (0, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tx_already_in_the_chain_is_ignored_and_not_charged() {
    let node = spawn(&params(), MiningPolicy::Auto, vec![]).await;
    let tx = tx_at(&key(1), "a", 0, now_ms());
    node.handle.submit_tx(tx.clone()).await.unwrap().unwrap();
    until("the tx is mined", || async {
        node.handle.tx_height(tx.id()).await.is_some()
    })
    .await;
    // Stopped, so that the marker stays pending and the chain as it is.
    node.handle.set_mining(MiningPolicy::Off).await;
    until("the miner stops", || async {
        !info(&node).await.mining_active
    })
    .await;
    assert_eq!(judged(&node, &tx).await, (0, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_valid_txs_keeps_the_mempool_bounded_and_own_writes_go_through() {
    const FLOOD: u64 = 100_000;
    const AUTHORS: u64 = 1_000;
    let limits = MempoolLimits {
        max_txs: 10_000,
        max_per_author: 50,
        ..MempoolLimits::default()
    };
    let tuning = Tuning {
        mempool: limits,
        ..Tuning::default()
    };
    let params = params();
    let node = spawn_tuned(&params, MiningPolicy::Off, vec![], tuning).await;
    let mut m = Hostile::new(&Names::new(&params.network_id()));
    let mut answer = quiet(&params);
    m.join(&node.addr, node.net.peer_id(), &mut answer).await;
    let before = HonestState::of(&node.handle).await;
    let authors: Vec<Keypair> = (0..AUTHORS).map(|_| Keypair::generate()).collect();
    let now = now_ms();
    let mut most = 0;
    let mut sent = 0;
    // In messages of 100 txs, as nodes gossip them: valid txs within every rate, so that
    // only the mempool's bounds stand in their way (more messages a second than
    // `Limits::gossip_rate` allows would be charged as a flood).
    for chunk in 0..FLOOD / 500 {
        for batch in 0..5 {
            let first = chunk * 500 + batch * 100;
            let txs: Vec<Tx> = (first..first + 100)
                .map(|n| tx_at(&authors[(n % AUTHORS) as usize], "flood", n, now))
                .collect();
            let deadline = std::time::Instant::now() + LIMIT;
            while !m.publish_txs(&txs) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "could not publish txs from {first} within {LIMIT:?}"
                );
                m.run_for(Duration::from_millis(5), &mut answer).await;
            }
            sent += txs.len();
        }
        m.run_for(Duration::from_millis(2), &mut answer).await;
        // The node answers while flooded, and its mempool stays within its bounds.
        let i = tokio::time::timeout(Duration::from_secs(10), node.handle.info())
            .await
            .expect("the node answers while flooded")
            .unwrap();
        assert!(
            i.mempool <= limits.max_txs,
            "mempool {} after {sent}",
            i.mempool
        );
        most = most.max(i.mempool);
    }
    let (nh, limit) = (node.handle.clone(), limits.max_txs);
    m.run_until(Duration::from_secs(30), &mut answer, async move {
        until("the flood is in", || async {
            nh.info().await.is_some_and(|i| i.mempool >= limit)
        })
        .await
    })
    .await;
    let after = HonestState::of(&node.handle).await;
    assert!(after.mempool <= limits.max_txs);
    assert_eq!((after.tip, after.digest), (before.tip, before.digest));
    assert!(
        most > limits.max_txs / 2,
        "the flood reached the node ({most})"
    );
    // The node's own writes find room, and are confirmed.
    let store = node.handle.store().clone();
    let mut receipt = store.put("mine", "kept").await.unwrap();
    node.handle.set_mining(MiningPolicy::Always).await;
    receipt.confirmed(LIMIT).await.unwrap();
    assert_eq!(
        store.retrieve("mine").unwrap().value.as_deref(),
        Some(&b"kept"[..])
    );
    // Valid txs, however many: nobody is charged for them.
    assert_eq!(points(&node.net, m.id()).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_gossip_messages_than_the_peer_rate_allows_are_charged() {
    // A low rate (50 messages a second, bursts of 100), so that a few hundred messages
    // of valid txs overrun it: the messages themselves are fine, their number is not.
    let tuning = Tuning {
        limits: kvchain::net::Limits {
            gossip_rate: kvchain::net::ratelimit::Rate {
                per_second: 50.0,
                burst: 100.0,
            },
            ..kvchain::net::Limits::default()
        },
        ..Tuning::default()
    };
    let params = params();
    let node = spawn_tuned(&params, MiningPolicy::Off, vec![], tuning).await;
    let mut m = Hostile::new(&Names::new(&params.network_id()));
    let mut answer = quiet(&params);
    m.join(&node.addr, node.net.peer_id(), &mut answer).await;
    let before = HonestState::of(&node.handle).await;
    let author = key(7);
    let now = now_ms();
    for n in 0..600 {
        // Publishing may fail once the node stops taking our messages: that is the point.
        let _ = m.publish_txs(&[tx_at(&author, "rate", n, now)]);
    }
    let (net, me) = (node.net.clone(), m.id());
    let charged = m
        .run_until(LIMIT, &mut answer, async move {
            until("the flooding peer is charged", || async {
                points(&net, me).await > 0
            })
            .await
        })
        .await;
    assert!(
        charged,
        "a peer over the gossip rate is charged within {LIMIT:?}"
    );
    // The chain and index are untouched, and far fewer txs than were sent got in.
    let after = HonestState::of(&node.handle).await;
    assert_eq!((after.tip, after.digest), (before.tip, before.digest));
    assert!(
        after.mempool < 600,
        "the rate held: {} txs taken",
        after.mempool
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tx_checked_in_a_side_block_is_taken_from_gossip_without_a_second_check() {
    let params = params();
    let metrics = Arc::new(NodeMetrics::default());
    let tuning = Tuning {
        metrics: metrics.clone(),
        ..Tuning::default()
    };
    let node = spawn_tuned(&params, MiningPolicy::Off, vec![], tuning).await;
    let (seen, fresh) = (
        tx_at(&key(1), "seen", 1, now_ms()),
        tx_at(&key(2), "fresh", 2, now_ms()),
    );
    // The tip, then a competing block at the same height carrying `seen`: it stays a
    // side block (the first seen wins a tie), its signature checked, its tx not pending.
    let genesis = params.genesis().header;
    let tip = block_on(&genesis, vec![], 0);
    node.handle
        .submit_block(tip.clone())
        .await
        .unwrap()
        .unwrap();
    node.handle
        .submit_block(block_on(&genesis, vec![seen.clone()], 1))
        .await
        .unwrap()
        .unwrap();
    let state = info(&node).await;
    assert_eq!((state.tip, state.side_blocks), (tip.hash(), 1));
    assert!(node.handle.tx(seen.id()).await.is_none());

    let mut m = Hostile::new(&Names::new(&params.network_id()));
    let mut answer = quiet(&params);
    m.join(&node.addr, node.net.peer_id(), &mut answer).await;
    let before = metrics.signatures_checked.get();
    for tx in [&seen, &fresh] {
        m.publish_txs(std::slice::from_ref(tx));
        let (h, id) = (node.handle.clone(), tx.id());
        let pending = m
            .run_until(LIMIT, &mut answer, async move {
                until("the gossiped tx is pending", || async {
                    h.tx(id).await.is_some()
                })
                .await
            })
            .await;
        assert!(pending);
    }
    // Only `fresh` went to the verifier; `seen` was taken on the side block's check.
    assert_eq!(metrics.signatures_checked.get(), before + 1);
    assert_eq!(points(&node.net, m.id()).await, 0);
}
