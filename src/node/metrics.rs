//! The node's Prometheus metrics: counters and histograms updated as things happen, and
//! gauges set from a status snapshot when `/metrics` is scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// A rejection reason, as a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Short machine name of the reason, e.g. `bad_signature`.
    pub reason: &'static str,
}

/// Everything the node measures about its chain.
#[derive(Debug)]
pub struct NodeMetrics {
    /// Blocks added to the tree.
    pub blocks_accepted: Counter,
    /// Blocks refused, by reason.
    pub blocks_rejected: Family<Reason, Counter>,
    /// Txs added to the mempool.
    pub txs_accepted: Counter,
    /// Txs refused, by reason.
    pub txs_rejected: Family<Reason, Counter>,
    /// Signatures of peers' txs checked off the node task (gossiped alone or in a block).
    pub signatures_checked: Counter,
    /// Reorgs (tip changes that disconnected blocks).
    pub reorgs: Counter,
    /// Blocks disconnected per reorg.
    pub reorg_depth: Histogram,
    /// Seconds from a put to its confirmation.
    pub put_to_confirmed: Histogram,
    /// Canonical height.
    pub height: Gauge,
    /// Cumulative work of the canonical chain.
    pub total_work: Gauge<f64, AtomicU64>,
    /// Txs in the mempool.
    pub mempool: Gauge,
    /// Blocks waiting for a parent.
    pub orphans: Gauge,
    /// Recent hashes per second.
    pub hashrate: Gauge,
    /// Connected peers.
    pub peers: Gauge,
    /// 1 while fetching blocks from a peer.
    pub syncing: Gauge,
    /// Highest height a peer has reported.
    pub sync_target: Gauge,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            blocks_accepted: Counter::default(),
            blocks_rejected: Family::default(),
            txs_accepted: Counter::default(),
            signatures_checked: Counter::default(),
            txs_rejected: Family::default(),
            reorgs: Counter::default(),
            reorg_depth: Histogram::new([1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 50.0, 100.0]),
            put_to_confirmed: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            height: Gauge::default(),
            total_work: Gauge::default(),
            mempool: Gauge::default(),
            orphans: Gauge::default(),
            hashrate: Gauge::default(),
            peers: Gauge::default(),
            syncing: Gauge::default(),
            sync_target: Gauge::default(),
        }
    }
}

impl NodeMetrics {
    /// New metrics, registered under `kvchain_` in `registry`.
    pub fn register(registry: &mut Registry) -> NodeMetrics {
        let m = NodeMetrics::default();
        let r = registry.sub_registry_with_prefix("kvchain");
        r.register(
            "blocks_accepted",
            "Blocks added to the block tree",
            m.blocks_accepted.clone(),
        );
        r.register(
            "blocks_rejected",
            "Blocks refused, by reason",
            m.blocks_rejected.clone(),
        );
        r.register(
            "txs_accepted",
            "Transactions added to the mempool",
            m.txs_accepted.clone(),
        );
        r.register(
            "signatures_checked",
            "Signatures of peers' txs checked (gossiped alone or in a block)",
            m.signatures_checked.clone(),
        );
        r.register(
            "txs_rejected",
            "Transactions refused, by reason",
            m.txs_rejected.clone(),
        );
        r.register(
            "reorgs",
            "Tip changes that disconnected blocks",
            m.reorgs.clone(),
        );
        r.register(
            "reorg_depth",
            "Blocks disconnected per reorg",
            m.reorg_depth.clone(),
        );
        r.register(
            "put_to_confirmed_seconds",
            "Seconds from a write to its confirmation",
            m.put_to_confirmed.clone(),
        );
        r.register("height", "Height of the canonical tip", m.height.clone());
        r.register(
            "total_work",
            "Cumulative work of the canonical chain",
            m.total_work.clone(),
        );
        r.register(
            "mempool_txs",
            "Transactions in the mempool",
            m.mempool.clone(),
        );
        r.register(
            "orphan_blocks",
            "Blocks waiting for their parent",
            m.orphans.clone(),
        );
        r.register(
            "hashrate",
            "Hashes per second of the miner",
            m.hashrate.clone(),
        );
        r.register("peers", "Connected peers", m.peers.clone());
        r.register(
            "syncing",
            "1 while blocks are fetched from a peer",
            m.syncing.clone(),
        );
        r.register(
            "sync_target_height",
            "Highest height a peer reported",
            m.sync_target.clone(),
        );
        m
    }

    /// Sets the gauges from a status snapshot.
    pub fn observe(&self, info: &super::ChainInfo) {
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.height.set(int(info.height));
        self.total_work.set(info.total_work as f64);
        self.mempool.set(int(info.mempool as u64));
        self.orphans.set(int(info.orphans as u64));
        self.hashrate.set(int(info.hashrate));
        self.peers.set(int(info.peers as u64));
        self.syncing.set(i64::from(info.syncing));
        self.sync_target.set(int(info.sync_target));
    }
}
