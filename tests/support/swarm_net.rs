//! In-process test networks: real kvchain nodes over libp2p's memory transport, and
//! bounded waits on their state.
#![allow(dead_code)]

use kvchain::chain::Params;
use kvchain::net::{self, NetClient, NetConfig, TransportKind};
use kvchain::node::{self, ChainInfo, MiningPolicy, Network, NodeConfig, NodeHandle, NodeMetrics};
use libp2p::{identity, Multiaddr};
use prometheus_client::registry::Registry;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long any wait in these tests may take.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A node with its network client and dialable address.
pub struct TestNode {
    pub handle: NodeHandle,
    pub net: NetClient,
    pub addr: Multiaddr,
}

/// Starts a node listening on a fresh memory address, dialing `bootstrap`.
pub async fn spawn(params: &Params, mining: MiningPolicy, bootstrap: Vec<Multiaddr>) -> TestNode {
    spawn_with(
        params,
        mining,
        bootstrap,
        2,
        None,
        Arc::new(NodeMetrics::default()),
    )
    .await
}

/// Like [`spawn`], with the confirmations, the registry for the network's metrics and
/// the node's metrics to record into.
pub async fn spawn_with(
    params: &Params,
    mining: MiningPolicy,
    bootstrap: Vec<Multiaddr>,
    confirmations: u64,
    registry: Option<&mut Registry>,
    metrics: Arc<NodeMetrics>,
) -> TestNode {
    let tuning = Tuning {
        confirmations,
        metrics,
        ..Tuning::default()
    };
    spawn_registered(params, mining, bootstrap, tuning, registry).await
}

/// What a test may set on a node beyond its params and mining.
pub struct Tuning {
    pub confirmations: u64,
    pub metrics: Arc<NodeMetrics>,
    pub limits: net::Limits,
    pub mempool: kvchain::chain::mempool::MempoolLimits,
    pub max_hashrate: Option<std::num::NonZeroU64>,
    pub attacker: bool,
    /// The CPU priority of the node's mining threads.
    pub miner_priority: kvchain::chain::MinerPriority,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            confirmations: 2,
            metrics: Arc::new(NodeMetrics::default()),
            limits: net::Limits::default(),
            mempool: Default::default(),
            max_hashrate: None,
            attacker: false,
            miner_priority: Default::default(),
        }
    }
}

/// Like [`spawn`], with everything a test may tune.
pub async fn spawn_tuned(
    params: &Params,
    mining: MiningPolicy,
    bootstrap: Vec<Multiaddr>,
    tuning: Tuning,
) -> TestNode {
    spawn_registered(params, mining, bootstrap, tuning, None).await
}

/// Like [`spawn_tuned`], the network's metrics going to `registry` when given.
pub async fn spawn_registered(
    params: &Params,
    mining: MiningPolicy,
    bootstrap: Vec<Multiaddr>,
    tuning: Tuning,
    registry: Option<&mut Registry>,
) -> TestNode {
    let Tuning {
        confirmations,
        metrics,
        limits,
        mempool,
        max_hashrate,
        attacker,
        miner_priority,
    } = tuning;
    // Logs through the test harness: shown for failing tests, filtered by RUST_LOG.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let key = identity::Keypair::generate_ed25519();
    let listen: Multiaddr = format!("/memory/{}", rand_port()).parse().unwrap();
    let (client, events) = net::spawn(
        NetConfig {
            network_id: params.network_id(),
            listen: vec![listen],
            bootstrap,
            mdns: false,
            transport: TransportKind::Memory,
            limits,
        },
        key.clone(),
        registry,
    )
    .unwrap();
    let mut config = NodeConfig::new(params.clone());
    config.keypair = net::signing_key(&key).unwrap();
    config.mining = mining;
    config.confirmations = confirmations;
    config.metrics = metrics;
    config.mempool = mempool;
    config.max_hashrate = max_hashrate;
    config.attacker = attacker;
    config.miner_priority = miner_priority;
    let network = Network {
        client: client.clone(),
        events,
    };
    let started = node::start_with_network(config, Some(network)).unwrap();
    let mut addrs = client.listen_addrs();
    let addr = tokio::time::timeout(LIMIT, addrs.wait_for(|a| !a.is_empty()))
        .await
        .expect("listening")
        .unwrap()[0]
        .clone();
    TestNode {
        handle: started.handle,
        net: client,
        addr,
    }
}

fn rand_port() -> u64 {
    // Memory ports are process-wide: draw them at random so parallel tests never clash.
    let mut b = [0u8; 8];
    let k = kvchain::chain::Keypair::generate();
    b.copy_from_slice(&k.public().0[..8]);
    u64::from_le_bytes(b) | 1
}

/// Polls `f` every 20 ms until it returns true, for at most LIMIT.
pub async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + LIMIT;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The node's status.
pub async fn info(n: &TestNode) -> ChainInfo {
    n.handle.info().await.expect("node running")
}

/// Waits until every node has the same tip and none is mining or holds pending txs, on
/// two polls in a row (a block found just as mining stopped may still land in between).
pub async fn converged(nodes: &[&TestNode]) -> ChainInfo {
    let deadline = Instant::now() + LIMIT;
    let mut previous: Option<ChainInfo> = None;
    loop {
        let mut infos = Vec::new();
        for n in nodes {
            infos.push(info(n).await);
        }
        let same = infos.iter().all(|i| i.tip == infos[0].tip);
        let idle = infos.iter().all(|i| !i.mining_active && i.mempool == 0);
        if same && idle {
            let now = infos.swap_remove(0);
            if previous.as_ref().is_some_and(|p| p.tip == now.tip) {
                return now;
            }
            previous = Some(now);
        } else {
            previous = None;
            assert!(
                Instant::now() < deadline,
                "nodes did not converge: {infos:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A bare peer's gossipsub, speaking the network's protocol as a kvchain node does
/// (unsigned messages, content-addressed ids) but taking whatever it is sent.
pub fn bare_gossipsub(names: &net::Names) -> libp2p::gossipsub::Behaviour {
    use libp2p::gossipsub;
    let config = gossipsub::ConfigBuilder::default()
        .protocol_id_prefix(names.gossipsub_prefix())
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::from(kvchain::chain::Hash::digest(&m.data).0.to_vec())
        })
        .max_transmit_size(4 << 20)
        .heartbeat_interval(Duration::from_millis(200))
        .validation_mode(gossipsub::ValidationMode::Permissive)
        .build()
        .expect("a valid gossipsub config");
    gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config)
        .expect("an anonymous gossipsub")
}
