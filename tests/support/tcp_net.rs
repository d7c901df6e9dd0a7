//! Nodes on real TCP loopback, and bare dialing peers for connection tests.
//!
//! [`spawn_tcp`] starts a kvchain node listening on `/ip4/127.0.0.1/tcp/0`, built as
//! `swarm_net::spawn_tuned` builds one on the memory transport. A [`Dialer`] is a bare
//! libp2p swarm (TCP or memory, with noise and yamux, speaking only gossipsub) run in a
//! task of its own: it dials on command and reports what became of each connection, so a
//! test can tell a dial the node admitted from one it refused.
//!
//! Included as `#[path = "support/tcp_net.rs"] mod tcp_net;` beside
//! `#[path = "support/swarm_net.rs"] mod swarm_net;`, whose `TestNode` and `LIMIT` it uses.
#![allow(dead_code)]

use crate::swarm_net::{TestNode, LIMIT};
use futures::StreamExt;
use kvchain::chain::Params;
use kvchain::net::{self, Limits, Names, NetClient, NetConfig, TransportKind};
use kvchain::node::{self, MiningPolicy, Network, NodeConfig};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{dial_opts::DialOpts, ConnectionId, SwarmEvent};
use libp2p::{gossipsub, identity, Multiaddr, PeerId, Swarm};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Starts a node on TCP loopback (an OS-chosen port) with `limits`; writes are confirmed
/// after 2 blocks.
pub async fn spawn_tcp(params: &Params, mining: MiningPolicy, limits: Limits) -> TestNode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let key = identity::Keypair::generate_ed25519();
    let (client, events) = net::spawn(
        NetConfig {
            network_id: params.network_id(),
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            bootstrap: vec![],
            mdns: false,
            transport: TransportKind::Tcp,
            limits,
        },
        key.clone(),
        None,
    )
    .unwrap();
    let mut config = NodeConfig::new(params.clone());
    config.keypair = net::signing_key(&key).unwrap();
    config.mining = mining;
    config.confirmations = 2;
    let network = Network {
        client: client.clone(),
        events,
    };
    let started = node::start_with_network(config, Some(network)).unwrap();
    let is_tcp = |a: &Multiaddr| {
        a.iter()
            .any(|p| matches!(p, Protocol::Tcp(port) if port != 0))
    };
    let mut addrs = client.listen_addrs();
    let listening = tokio::time::timeout(LIMIT, addrs.wait_for(|a| a.iter().any(is_tcp)))
        .await
        .expect("the node listens on TCP")
        .unwrap()
        .clone();
    let addr = listening.into_iter().find(is_tcp).unwrap();
    TestNode {
        handle: started.handle,
        net: client,
        addr,
    }
}

/// What became of a dial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The connection was established and the node lists the dialer among its peers.
    Admitted,
    /// The dial failed, or the connection closed before the node listed the dialer.
    Refused(String),
}

/// What the dialer's swarm saw of one of its connections.
#[derive(Debug)]
enum Seen {
    Established(ConnectionId),
    Ended(ConnectionId, String),
}

enum Cmd {
    Dial(Multiaddr, oneshot::Sender<Result<ConnectionId, String>>),
    HangUp(PeerId),
    Publish(Vec<u8>, oneshot::Sender<bool>),
}

/// A bare peer that dials a node and reports on its connections.
pub struct Dialer {
    /// Its peer id.
    pub id: PeerId,
    cmds: mpsc::UnboundedSender<Cmd>,
    seen: mpsc::UnboundedReceiver<Seen>,
    log: Vec<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Dialer {
    fn drop(&mut self) {
        // Dropping the swarm closes its connections.
        self.task.abort();
    }
}

impl Dialer {
    /// A fresh identity on `kind`, subscribed to the network's block topic.
    pub fn new(kind: TransportKind, names: &Names) -> Dialer {
        let key = identity::Keypair::generate_ed25519();
        let id = key.public().to_peer_id();
        let behaviour = crate::swarm_net::bare_gossipsub(names);
        let transport = net::transport::build(kind, &key).unwrap();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_other_transport(|_| transport)
            .unwrap()
            .with_behaviour(|_| behaviour)
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        let topic = gossipsub::IdentTopic::new(names.block_topic());
        swarm.behaviour_mut().subscribe(&topic).unwrap();
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(swarm, topic, cmd_rx, seen_tx));
        Dialer {
            id,
            cmds,
            seen,
            log: Vec::new(),
            task,
        }
    }

    /// Starts a dial of `addr`; returns its connection id.
    pub async fn dial(&self, addr: &Multiaddr) -> ConnectionId {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Dial(addr.clone(), tx)).unwrap();
        rx.await.unwrap().expect("the dial starts")
    }

    /// Waits until connection `conn` is admitted by `node` or refused, for at most LIMIT.
    pub async fn outcome(&mut self, conn: ConnectionId, node: &NetClient) -> Outcome {
        let deadline = Instant::now() + LIMIT;
        loop {
            while let Ok(seen) = self.seen.try_recv() {
                self.log.push(seen);
            }
            let mut established = false;
            for seen in &self.log {
                match seen {
                    Seen::Ended(c, why) if *c == conn => return Outcome::Refused(why.clone()),
                    Seen::Established(c) if *c == conn => established = true,
                    _ => {}
                }
            }
            if established && node.peers().await.iter().any(|p| p.id == self.id) {
                return Outcome::Admitted;
            }
            assert!(
                Instant::now() < deadline,
                "dial {conn:?} by {} neither admitted nor refused",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Dials `node` and waits for the outcome.
    pub async fn connect(&mut self, node: &TestNode) -> Outcome {
        let conn = self.dial(&node.addr).await;
        self.outcome(conn, &node.net).await
    }

    /// Closes every connection to `peer`.
    pub fn hang_up(&self, peer: PeerId) {
        self.cmds.send(Cmd::HangUp(peer)).unwrap();
    }

    /// Publishes `bytes` on the block topic; false while no peer is subscribed to it.
    pub async fn publish(&self, bytes: Vec<u8>) -> bool {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Publish(bytes, tx)).unwrap();
        rx.await.unwrap()
    }
}

async fn run(
    mut swarm: Swarm<gossipsub::Behaviour>,
    topic: gossipsub::IdentTopic,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    seen: mpsc::UnboundedSender<Seen>,
) {
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => break,
                Some(Cmd::Dial(addr, reply)) => {
                    let opts = DialOpts::from(addr);
                    let conn = opts.connection_id();
                    let _ = reply.send(swarm.dial(opts).map(|()| conn).map_err(|e| e.to_string()));
                }
                Some(Cmd::HangUp(peer)) => {
                    let _ = swarm.disconnect_peer_id(peer);
                }
                Some(Cmd::Publish(bytes, reply)) => {
                    let _ = reply.send(swarm.behaviour_mut().publish(topic.clone(), bytes).is_ok());
                }
            },
            event = swarm.select_next_some() => {
                let report = match event {
                    SwarmEvent::ConnectionEstablished { connection_id, .. } => {
                        Seen::Established(connection_id)
                    }
                    SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                        Seen::Ended(connection_id, format!("dial failed: {error}"))
                    }
                    SwarmEvent::ConnectionClosed { connection_id, cause, .. } => {
                        Seen::Ended(connection_id, format!("connection closed: {cause:?}"))
                    }
                    _ => continue,
                };
                let _ = seen.send(report);
            }
        }
    }
}
