//! The network: libp2p discovery (mDNS, Kademlia), gossip of txs and blocks, block sync,
//! and penalties for hostile peers.
//!
//! [`spawn`] starts a service task that owns the swarm and returns a [`NetClient`] (a
//! cloneable handle that sends [`NetCommand`]s) and a stream of [`NetEvent`]s for the node.
//! The service decodes peer bytes and keeps connections; the node judges every message.

pub mod behaviour;
pub mod gate;
pub mod metered;
pub mod peers;
pub mod protocol;
pub mod ratelimit;
mod requests;
mod service;
pub mod transport;

use crate::chain::{Block, Tx};
use libp2p::{gossipsub::MessageId, identity, Multiaddr, PeerId};
pub use peers::{BanInfo, Offence};
pub use protocol::{ChainStatus, Names, SyncRequest, SyncResponse};
use ratelimit::Rate;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Which transport the swarm uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// TCP with noise and yamux: real nodes.
    Tcp,
    /// libp2p's in-process memory transport with noise and yamux: multi-node tests.
    Memory,
}

/// How to run the network.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Network id (from the genesis); part of every protocol name and topic.
    pub network_id: String,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start and seed Kademlia with (each ending in `/p2p/<peer id>`).
    pub bootstrap: Vec<Multiaddr>,
    /// Whether to discover peers with mDNS.
    pub mdns: bool,
    /// The transport.
    pub transport: TransportKind,
    /// Caps on connections and requests, and the ban duration.
    pub limits: Limits,
}

/// What one peer, or all of them together, may take of a node.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Established connections in all.
    pub max_connections: u32,
    /// Connections being set up, each way.
    pub max_pending: u32,
    /// Connections to one peer.
    pub max_per_peer: u32,
    /// Inbound connections from one IP address.
    pub max_inbound_per_ip: usize,
    /// Whether the per-IP cap applies to loopback too (a one-machine network shares it).
    pub limit_loopback: bool,
    /// How long a ban lasts.
    pub ban_duration: Duration,
    /// How long a sync request may take, either way, before it fails.
    pub sync_timeout: Duration,
    /// Sync requests one peer may make.
    pub sync_rate: Rate,
    /// Gossip messages one peer may forward to us.
    pub gossip_rate: Rate,
    /// Txs of one author we take from gossip.
    pub author_rate: Rate,
    /// Kademlia and identify events (requests, pushes, answers) one peer may cause, each.
    pub discovery_rate: Rate,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 128,
            max_pending: 32,
            max_per_peer: 2,
            max_inbound_per_ip: 8,
            limit_loopback: false,
            ban_duration: peers::DEFAULT_BAN_DURATION,
            sync_timeout: Duration::from_secs(15),
            sync_rate: Rate {
                per_second: 20.0,
                burst: 40.0,
            },
            gossip_rate: Rate {
                per_second: 20_000.0,
                burst: 40_000.0,
            },
            author_rate: Rate {
                per_second: 10_000.0,
                burst: 20_000.0,
            },
            discovery_rate: Rate {
                per_second: 10.0,
                burst: 100.0,
            },
        }
    }
}

/// A message carried by gossip.
#[derive(Clone, Debug)]
pub enum Gossip {
    /// Transactions, one to [`protocol::MAX_GOSSIP_TXS`] of them: a node gossips its
    /// writes in batches, as one message per batch costs far less than one per tx.
    Txs(Vec<Tx>),
    /// A block.
    Block(Block),
}

/// The node's verdict on a gossiped message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid and new: relay it.
    Accept,
    /// Invalid: drop it and penalise the sender.
    Reject(String),
    /// Not relayed, not penalised (duplicate, or parent unknown yet).
    Ignore,
}

/// A peer as the `peers` command shows it.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// Its id.
    pub id: PeerId,
    /// Addresses of its open connections.
    pub addrs: Vec<Multiaddr>,
    /// Misbehaviour points it has now (they decay; a ban comes at 100).
    pub penalty: u32,
}

/// A request to the network service.
#[derive(Debug)]
pub enum NetCommand {
    /// Publishes a tx or block on its topic (kept and retried if nobody listens yet).
    Publish(Gossip),
    /// Reports the node's verdict on a gossiped message.
    Validate {
        /// The message.
        id: MessageId,
        /// The peer it came from.
        source: PeerId,
        /// The verdict.
        verdict: Verdict,
    },
    /// Sends a sync request.
    Request {
        /// To whom.
        peer: PeerId,
        /// What.
        request: SyncRequest,
    },
    /// Answers an inbound sync request.
    Respond {
        /// The id from [`NetEvent::Request`].
        id: u64,
        /// The answer.
        response: SyncResponse,
    },
    /// Charges a peer for something it provably did wrong.
    Penalize {
        /// The peer.
        peer: PeerId,
        /// What it did.
        offence: Offence,
        /// Why, for the log and the ban list.
        reason: String,
    },
    /// Lifts a ban; answers whether the peer was banned.
    Unban(PeerId, oneshot::Sender<bool>),
    /// Lists the bans in force.
    Bans(oneshot::Sender<Vec<BanInfo>>),
    /// Dials an address.
    Dial(Multiaddr, oneshot::Sender<Result<(), String>>),
    /// Lists connected peers.
    Peers(oneshot::Sender<Vec<PeerInfo>>),
}

/// Something the network service reports to the node.
#[derive(Debug)]
pub enum NetEvent {
    /// A decoded gossip message awaiting the node's verdict.
    Gossip {
        /// The peer that forwarded it.
        source: PeerId,
        /// Its message id.
        id: MessageId,
        /// Its content.
        message: Gossip,
    },
    /// The first connection to a peer opened.
    PeerConnected(PeerId),
    /// The last connection to a peer closed.
    PeerDisconnected(PeerId),
    /// A peer asks something; answer with [`NetCommand::Respond`].
    Request {
        /// Who asks.
        peer: PeerId,
        /// Id to answer with.
        id: u64,
        /// The request.
        request: SyncRequest,
    },
    /// A peer answered our request (with the kind of answer the request asks for).
    Response {
        /// Who answered.
        peer: PeerId,
        /// What we asked.
        request: SyncRequest,
        /// The answer.
        response: SyncResponse,
    },
    /// Our request to a peer failed (timed out, garbage, connection lost); a failure the
    /// peer is to blame for has already been charged to it.
    RequestFailed {
        /// The peer.
        peer: PeerId,
        /// What we asked.
        request: SyncRequest,
        /// Why.
        error: String,
    },
}

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The behaviour could not be built.
    #[error(transparent)]
    Behaviour(#[from] behaviour::BuildError),
    /// The transport could not be built.
    #[error("transport: {0}")]
    Transport(String),
    /// A listen address was refused.
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        error: String,
    },
}

/// A cloneable handle on the network service.
#[derive(Clone, Debug)]
pub struct NetClient {
    commands: mpsc::Sender<NetCommand>,
    peer_id: PeerId,
    listening: watch::Receiver<Vec<Multiaddr>>,
}

impl NetClient {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Sends a command; false if the service has stopped.
    pub async fn send(&self, cmd: NetCommand) -> bool {
        self.commands.send(cmd).await.is_ok()
    }

    /// Sends a command without waiting; false if the service stopped or is overloaded.
    pub fn try_send(&self, cmd: NetCommand) -> bool {
        self.commands.try_send(cmd).is_ok()
    }

    /// Dials `addr` and waits until the dial is under way (or refused).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        if !self.send(NetCommand::Dial(addr, tx)).await {
            return Err("network stopped".into());
        }
        rx.await.unwrap_or_else(|_| Err("network stopped".into()))
    }

    /// The connected peers.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        let (tx, rx) = oneshot::channel();
        if !self.send(NetCommand::Peers(tx)).await {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The bans in force, soonest to end first.
    pub async fn bans(&self) -> Vec<BanInfo> {
        let (tx, rx) = oneshot::channel();
        if !self.send(NetCommand::Bans(tx)).await {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Lifts the ban on `peer`; false if it was not banned (or the network stopped).
    pub async fn unban(&self, peer: PeerId) -> bool {
        let (tx, rx) = oneshot::channel();
        if !self.send(NetCommand::Unban(peer, tx)).await {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// This node's listen addresses, dialable (each ending in `/p2p/<peer id>`), as they
    /// change: they appear once the transport has bound its sockets.
    pub fn listen_addrs(&self) -> watch::Receiver<Vec<Multiaddr>> {
        self.listening.clone()
    }
}

/// The chain signing key for a libp2p identity: the same ed25519 key, so a node's writes
/// are signed by its peer identity. `None` for a non-ed25519 identity.
pub fn signing_key(key: &identity::Keypair) -> Option<crate::chain::Keypair> {
    let ed = key.clone().try_into_ed25519().ok()?;
    let seed: [u8; 32] = ed.secret().as_ref().try_into().ok()?;
    Some(crate::chain::Keypair::from_seed(seed))
}

/// Builds the swarm, starts listening and spawns the service task on the current runtime.
/// With a `registry`, the network's metrics go there: libp2p's swarm and protocol events
/// (`libp2p_*`, with `libp2p_bandwidth_bytes`, every byte of every stream by direction)
/// and gossipsub's messages and bytes per topic (`gossipsub_*`).
pub fn spawn(
    config: NetConfig,
    key: identity::Keypair,
    registry: Option<&mut prometheus_client::registry::Registry>,
) -> Result<(NetClient, mpsc::Receiver<NetEvent>), NetError> {
    let peer_id = key.public().to_peer_id();
    let (cmd_tx, cmd_rx) = mpsc::channel(4096);
    let (event_tx, event_rx) = mpsc::channel(4096);
    let (listen_tx, listening) = watch::channel(Vec::new());
    let service = service::Service::new(config, key, event_tx, listen_tx, registry)?;
    tokio::spawn(service.run(cmd_rx));
    Ok((
        NetClient {
            commands: cmd_tx,
            peer_id,
            listening,
        },
        event_rx,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signing_key_is_the_peer_key() {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let signing = super::signing_key(&key).unwrap();
        let public = key.public().try_into_ed25519().unwrap().to_bytes();
        assert_eq!(signing.public().0, public);
    }
}
