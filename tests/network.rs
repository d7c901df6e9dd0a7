//! Several real nodes in one process over libp2p's memory transport: gossip spreads txs
//! and blocks, nodes converge on one tip and one index, a late node syncs the whole chain
//! (and mines only once it has caught up), and two halves that mined apart converge on the heavier chain without losing a write.

#[path = "support/swarm_net.rs"]
mod swarm_net;

use kvchain::chain::Params;
use kvchain::node::MiningPolicy;
use std::time::{Duration, Instant};
use swarm_net::*;

fn params(name: &str, bits: u32) -> Params {
    Params::new(name, bits).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_propagate_and_all_nodes_converge_on_one_index() {
    let p = params("net-converge", 10);
    let a = spawn(&p, MiningPolicy::Auto, vec![]).await;
    let b = spawn(&p, MiningPolicy::Auto, vec![a.addr.clone()]).await;
    let c = spawn(&p, MiningPolicy::Auto, vec![a.addr.clone()]).await;
    until("peers connected", || async { info(&a).await.peers == 2 }).await;
    let nodes = [&a, &b, &c];
    // A write on each node, at once.
    let mut receipts = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        receipts.push(
            n.handle
                .store()
                .put(format!("k{i}"), format!("v{i}"))
                .await
                .unwrap(),
        );
    }
    for r in &mut receipts {
        r.confirmed(LIMIT).await.unwrap();
    }
    converged(&nodes).await;
    for n in nodes {
        for (i, receipt) in receipts.iter().enumerate() {
            let v = n
                .handle
                .store()
                .retrieve(&format!("k{i}"))
                .expect("value everywhere");
            assert_eq!(v.value.as_deref(), Some(format!("v{i}").as_bytes()));
            assert_eq!(v.tx_id, receipt.id());
        }
    }
    // Same chain, block by block.
    let height = info(&a).await.height;
    for h in 1..=height {
        let want = a.handle.block_at(h).await.unwrap().hash();
        for n in [&b, &c] {
            assert_eq!(
                n.handle.block_at(h).await.unwrap().hash(),
                want,
                "height {h}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_node_syncs_the_whole_chain_in_batches() {
    let p = params("net-late", 4);
    let a = spawn(&p, MiningPolicy::Always, vec![]).await;
    a.handle.store().put("early", "bird").await.unwrap();
    // More than two sync batches (128 blocks each).
    until("a long chain", || async { info(&a).await.height >= 300 }).await;
    a.handle.set_mining(MiningPolicy::Off).await;
    let late = spawn(&p, MiningPolicy::Off, vec![a.addr.clone()]).await;
    // Compare with A's tip as it is now: a block found just before mining stopped may
    // still have arrived at A after mining was switched off.
    let tip = converged(&[&a, &late]).await;
    assert!(tip.height >= 300);
    assert_eq!(info(&late).await.height, info(&a).await.height);
    assert_eq!(
        late.handle
            .store()
            .retrieve("early")
            .unwrap()
            .value
            .as_deref(),
        Some(&b"bird"[..])
    );
    assert!(!info(&late).await.syncing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_far_behind_waits_until_it_has_caught_up() {
    let p = params("net-catch-up", 4);
    let a = spawn(&p, MiningPolicy::Always, vec![]).await;
    // Many full sync batches (128 blocks each): the late node is far behind for a while.
    until("a long chain", || async { info(&a).await.height >= 1_500 }).await;
    a.handle.set_mining(MiningPolicy::Off).await;
    let target = info(&a).await.height;
    let late = spawn(&p, MiningPolicy::Always, vec![a.addr.clone()]).await;
    // While full batches move its tip, a block on that tip would only be orphaned.
    let (mut paused_behind, deadline) = (false, Instant::now() + Duration::from_secs(60));
    loop {
        let i = info(&late).await;
        paused_behind |= i.syncing && i.height > 0 && i.height < target && !i.mining_active;
        if i.height >= target {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the late node never caught up: {i:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        paused_behind,
        "the late node mined on a tip it knew to be behind"
    );
    // The pause ends with the catch-up: the late node mines on the tip again.
    until("the late node to mine again", || async {
        let i = info(&late).await;
        i.mining_active && i.height > target
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halves_that_mined_apart_converge_on_the_heavier_chain_and_keep_every_write() {
    let p = params("net-partition", 6);
    // Two halves that do not know each other.
    let a1 = spawn(&p, MiningPolicy::Auto, vec![]).await;
    let a2 = spawn(&p, MiningPolicy::Auto, vec![a1.addr.clone()]).await;
    let b1 = spawn(&p, MiningPolicy::Auto, vec![]).await;
    until("half A connected", || async { info(&a1).await.peers == 1 }).await;

    // Half A writes and mines a long chain; half B writes and mines a short one.
    a1.handle
        .store()
        .put("side", "A")
        .await
        .unwrap()
        .confirmed(LIMIT)
        .await
        .unwrap();
    a1.handle.set_mining(MiningPolicy::Always).await;
    until("half A is heavy", || async { info(&a1).await.height >= 30 }).await;
    a1.handle.set_mining(MiningPolicy::Auto).await;
    let lost = b1.handle.store().put("side", "B").await.unwrap();
    let mut lost_receipt = lost.clone();
    lost_receipt.confirmed(LIMIT).await.unwrap();
    let a_tip = converged(&[&a1, &a2]).await;
    let b_tip = converged(&[&b1]).await;
    assert!(a_tip.total_work > b_tip.total_work);
    assert!(b_tip.height < 10);
    // Apart, the halves hold different versions, and their digests say so.
    let digest = |n: &TestNode| n.handle.store().digest();
    assert_eq!(digest(&a1), digest(&a2));
    assert_ne!(digest(&a1), digest(&b1));

    // Heal the partition.
    b1.net.dial(a1.addr.clone()).await.unwrap();
    let tip = converged(&[&a1, &a2, &b1]).await;
    assert!(
        tip.total_work > a_tip.total_work,
        "B's write was mined again on top"
    );
    // Healed, every node holds the same versions of every key: one digest.
    assert_eq!(digest(&a1), digest(&b1));
    assert_eq!(digest(&a2), digest(&b1));
    // B's write was orphaned with B's chain, went back to B's mempool, and was mined again
    // on the heavier chain: every node has both versions.
    for n in [&a1, &a2, &b1] {
        let history = n.handle.store().retrieve_all("side");
        let writers: Vec<_> = history.iter().map(|v| v.tx_id).collect();
        assert_eq!(writers.len(), 2, "both versions survive");
        assert!(writers.contains(&lost.id()));
        let height = n.handle.tx_height(lost.id()).await.expect("re-mined");
        assert!(height > b_tip.height);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_different_networks_never_mix() {
    let a = spawn(&params("net-mix", 6), MiningPolicy::Off, vec![]).await;
    let b = spawn(
        &params("net-mix", 7),
        MiningPolicy::Always,
        vec![a.addr.clone()],
    )
    .await;
    until("b mines", || async { info(&b).await.height >= 5 }).await;
    // A different difficulty is a different genesis and network id: no shared protocol,
    // so no peer relation forms and no block crosses over.
    let c = spawn(
        &params("net-mix", 6),
        MiningPolicy::Off,
        vec![a.addr.clone()],
    )
    .await;
    until("same-network peers meet", || async {
        info(&c).await.peers == 1
    })
    .await;
    assert_eq!(info(&a).await.height, 0);
    // The other network's node may redial (its bootstrap is a) and count for a moment,
    // until identify shows the mismatch and the connection is cut: it never stays.
    until("only the node of its own network stays", || async {
        info(&a).await.peers == 1
    })
    .await;
    assert_eq!(info(&a).await.height, 0);
    assert_ne!(info(&a).await.network_id, info(&b).await.network_id);
}
