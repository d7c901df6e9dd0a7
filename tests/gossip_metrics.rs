//! What the broadcast experiment reads from a node: a gossiped batch of txs shows in the
//! sender's and the receiver's gossipsub counters (messages and bytes on the tx topic) and
//! in the transport's byte counters, and each node's mempool says when it took the tx.
//! Two real nodes in one process over libp2p's memory transport.

#[path = "support/swarm_net.rs"]
mod swarm_net;

use kvchain::chain::Params;
use kvchain::node::{MiningPolicy, NodeMetrics};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use swarm_net::*;

/// The sum of every sample of `name` whose labels contain `label` (all samples for "").
fn sample(registry: &Registry, name: &str, label: &str) -> f64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossiped_batch_is_counted_and_its_arrival_timed() {
    let p = Params::new("gossip-metrics", 10).unwrap();
    let (mut reg_a, mut reg_b) = (Registry::default(), Registry::default());
    let metrics = || Arc::new(NodeMetrics::default());
    let a = spawn_with(
        &p,
        MiningPolicy::Off,
        vec![],
        2,
        Some(&mut reg_a),
        metrics(),
    )
    .await;
    let b = spawn_with(
        &p,
        MiningPolicy::Off,
        vec![a.addr.clone()],
        2,
        Some(&mut reg_b),
        metrics(),
    )
    .await;
    until("peers connected", || async { info(&a).await.peers == 1 }).await;
    let names = kvchain::net::Names::new(&p.network_id());
    let txs = names.tx_topic();
    assert_eq!(
        sample(&reg_b, "gossipsub_topic_msg_recv_counts_total", &txs),
        0.0
    );

    // A write on a reaches b (publishes wait for b's subscription, so no sleep is needed).
    let receipt = a.handle.store().put("k", "v").await.unwrap();
    let id = receipt.id();
    until("the tx in b's mempool", || async {
        b.handle.tx(id).await.is_some()
    })
    .await;

    let sent_at_a = a.handle.tx(id).await.unwrap().received_us.unwrap();
    let got_at_b = b.handle.tx(id).await.unwrap().received_us.unwrap();
    assert!(
        got_at_b >= sent_at_a,
        "b took it after a: {sent_at_a} {got_at_b}"
    );
    assert!(got_at_b - sent_at_a < LIMIT.as_micros() as u64);

    // One message on the tx topic, counted with its bytes on both sides.
    let sent = sample(&reg_a, "gossipsub_topic_msg_sent_counts_total", &txs);
    let sent_bytes = sample(&reg_a, "gossipsub_topic_msg_sent_bytes_total", &txs);
    let recv = sample(&reg_b, "gossipsub_topic_msg_recv_counts_total", &txs);
    let recv_bytes = sample(&reg_b, "gossipsub_topic_msg_recv_bytes_total", &txs);
    assert!(sent >= 1.0 && recv >= 1.0, "sent {sent}, received {recv}");
    assert!(sent_bytes > 0.0 && recv_bytes > 0.0);
    // Nothing was ever sent on the block topic, and only our two topics are labels.
    let blocks = names.block_topic();
    assert_eq!(
        sample(&reg_b, "gossipsub_topic_msg_recv_counts_total", &blocks),
        0.0
    );
    // The transport counted at least the gossiped bytes, each way.
    let inbound = sample(&reg_b, "libp2p_bandwidth_bytes_total", "Inbound");
    let outbound = sample(&reg_a, "libp2p_bandwidth_bytes_total", "Outbound");
    assert!(inbound >= recv_bytes, "inbound {inbound} < {recv_bytes}");
    assert!(outbound >= sent_bytes, "outbound {outbound} < {sent_bytes}");
}
