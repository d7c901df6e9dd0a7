//! The network service: the task that owns the swarm. It turns swarm events into
//! [`NetEvent`]s for the node, carries out [`NetCommand`]s, and bans peers that keep
//! sending invalid data.

use super::behaviour::{Behaviour, BehaviourEvent};
use super::protocol::{Names, SyncResponse};
use super::{Gossip, NetCommand, NetConfig, NetError, NetEvent, PeerInfo, TransportKind, Verdict};
use crate::chain::{Block, Tx};
use crate::codec::{self, MAX_MESSAGE_BYTES};
use futures::StreamExt;
use libp2p::core::transport::{Boxed, MemoryTransport};
use libp2p::core::{muxing::StreamMuxerBox, upgrade::Version};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::{dial_opts::DialOpts, SwarmEvent};
use libp2p::{
    gossipsub, identify, identity, kad, mdns, noise, tcp, yamux, Multiaddr, PeerId, Swarm,
    Transport,
};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Misbehaviour points for one invalid message or response.
const PENALTY: u32 = 10;
/// Points at which a peer is banned (disconnected and refused).
pub const BAN_POINTS: u32 = 30;
/// Publishes kept while no peer listens on their topic.
const MAX_PENDING_PUBLISH: usize = 1024;
/// Inbound sync requests waiting for the node's answer.
const MAX_INBOUND: usize = 256;
/// An idle connection is kept this long: connections stay up between blocks.
const IDLE_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

pub(crate) struct Service {
    swarm: Swarm<Behaviour>,
    names: Names,
    tx_topic: gossipsub::IdentTopic,
    block_topic: gossipsub::IdentTopic,
    events: mpsc::Sender<NetEvent>,
    listening: watch::Sender<Vec<Multiaddr>>,
    pending_publish: VecDeque<(gossipsub::TopicHash, Vec<u8>)>,
    inbound: HashMap<u64, ResponseChannel<SyncResponse>>,
    next_inbound: u64,
    penalties: HashMap<PeerId, u32>,
    peer_addrs: HashMap<PeerId, Vec<Multiaddr>>,
    metrics: Option<libp2p::metrics::Metrics>,
}

fn transport(
    kind: TransportKind,
    key: &identity::Keypair,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, NetError> {
    let noise = noise::Config::new(key).map_err(|e| NetError::Transport(e.to_string()))?;
    Ok(match kind {
        TransportKind::Tcp => tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .upgrade(Version::V1)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .boxed(),
        TransportKind::Memory => MemoryTransport::default()
            .upgrade(Version::V1)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .boxed(),
    })
}

/// Fails if a fixed TCP port in `addr` is already taken. libp2p's TCP transport listens
/// with SO_REUSEPORT, so a second node on the same port would start without an error and
/// silently receive part of the first one's connections.
fn port_is_free(addr: &Multiaddr) -> Result<(), String> {
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) if port != 0 => std::net::TcpListener::bind((ip, port))
            .map(drop)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AddrInUse => format!("port {port} is already in use"),
                _ => e.to_string(),
            }),
        _ => Ok(()),
    }
}

/// Splits a trailing `/p2p/<peer id>` off an address.
fn split_peer(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut base = addr.clone();
    match base.pop() {
        Some(Protocol::P2p(peer)) => Some((peer, base)),
        _ => None,
    }
}

impl Service {
    pub(crate) fn new(
        config: NetConfig,
        key: identity::Keypair,
        events: mpsc::Sender<NetEvent>,
        listening: watch::Sender<Vec<Multiaddr>>,
        metrics: Option<libp2p::metrics::Metrics>,
    ) -> Result<Service, NetError> {
        let names = Names::new(&config.network_id);
        let transport = transport(config.transport, &key)?;
        let behaviour = Behaviour::new(&key, &names, config.mdns)?;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_other_transport(|_| transport)
            .map_err(|e| NetError::Transport(e.to_string()))?
            .with_behaviour(|_| behaviour)
            .map_err(|e| NetError::Transport(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
            .build();
        let tx_topic = gossipsub::IdentTopic::new(names.tx_topic());
        let block_topic = gossipsub::IdentTopic::new(names.block_topic());
        for topic in [&tx_topic, &block_topic] {
            // Subscribing fails only for an over-long topic name, which ours never are.
            if let Err(e) = swarm.behaviour_mut().gossipsub.subscribe(topic) {
                return Err(NetError::Transport(format!("subscribe {topic}: {e}")));
            }
        }
        for addr in &config.listen {
            let refused = |error: String| NetError::Listen {
                addr: addr.clone(),
                error,
            };
            if config.transport == TransportKind::Tcp {
                port_is_free(addr).map_err(refused)?;
            }
            swarm.listen_on(addr.clone()).map_err(|e| {
                refused(match e {
                    libp2p::TransportError::Other(inner) => inner.to_string(),
                    libp2p::TransportError::MultiaddrNotSupported(_) => {
                        "unsupported address".into()
                    }
                })
            })?;
        }
        let mut service = Service {
            swarm,
            names,
            tx_topic,
            block_topic,
            events,
            listening,
            pending_publish: VecDeque::new(),
            inbound: HashMap::new(),
            next_inbound: 0,
            penalties: HashMap::new(),
            peer_addrs: HashMap::new(),
            metrics,
        };
        for addr in &config.bootstrap {
            if let Err(e) = service.dial(addr.clone()) {
                tracing::warn!(%addr, error = %e, "cannot dial bootstrap address");
            }
        }
        Ok(service)
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<NetCommand>) {
        let mut kad_tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = kad_tick.tick() => {
                    // Refreshes the routing table; fails harmlessly while it is empty.
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
            }
        }
        tracing::debug!("network service stopped");
    }

    fn dial(&mut self, addr: Multiaddr) -> Result<(), String> {
        if let Some((peer, base)) = split_peer(&addr) {
            if peer == *self.swarm.local_peer_id() {
                return Err("that is this node's own address".into());
            }
            self.swarm.behaviour_mut().kad.add_address(&peer, base);
        }
        self.swarm.dial(addr).map_err(|e| e.to_string())
    }

    fn emit(&self, event: NetEvent) -> bool {
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!("node is not keeping up with the network; event dropped");
                false
            }
            // The node has stopped; the service follows once its handles are dropped.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn penalize(&mut self, peer: PeerId, reason: &str) {
        let points = self.penalties.entry(peer).or_default();
        *points += PENALTY;
        let points = *points;
        tracing::warn!(%peer, reason, points, "peer sent invalid data");
        if points >= BAN_POINTS && self.swarm.behaviour_mut().blocked.block_peer(peer) {
            self.swarm.behaviour_mut().gossipsub.blacklist_peer(&peer);
            tracing::warn!(%peer, points, "banned peer: disconnected and refused from now on");
        }
    }

    fn publish(&mut self, topic: gossipsub::TopicHash, bytes: Vec<u8>) {
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic.clone(), bytes.clone())
        {
            Ok(_) | Err(gossipsub::PublishError::Duplicate) => {}
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic)
            | Err(gossipsub::PublishError::AllQueuesFull(_)) => {
                // Of blocks only the newest is worth sending later: a peer that gets it
                // fetches its ancestors by sync. Every tx is kept.
                if topic == self.block_topic.hash() {
                    self.pending_publish.retain(|(t, _)| *t != topic);
                }
                if self.pending_publish.len() >= MAX_PENDING_PUBLISH {
                    self.pending_publish.pop_front();
                    tracing::warn!("too many unsent publishes; dropped the oldest");
                }
                self.pending_publish.push_back((topic, bytes));
            }
            Err(e) => tracing::warn!(error = %e, "publish failed"),
        }
    }

    fn retry_publishes(&mut self, topic: &gossipsub::TopicHash) {
        let (retry, keep): (VecDeque<_>, VecDeque<_>) = self
            .pending_publish
            .drain(..)
            .partition(|(t, _)| t == topic);
        self.pending_publish = keep;
        for (topic, bytes) in retry {
            self.publish(topic, bytes);
        }
    }

    fn on_command(&mut self, cmd: NetCommand) {
        match cmd {
            NetCommand::Publish(message) => {
                let (topic, bytes) = match &message {
                    Gossip::Tx(tx) => (self.tx_topic.hash(), codec::encode(tx)),
                    Gossip::Block(block) => (self.block_topic.hash(), codec::encode(block)),
                };
                self.publish(topic, bytes);
            }
            NetCommand::Validate {
                id,
                source,
                verdict,
            } => {
                let acceptance = match &verdict {
                    Verdict::Accept => gossipsub::MessageAcceptance::Accept,
                    Verdict::Ignore => gossipsub::MessageAcceptance::Ignore,
                    Verdict::Reject(_) => gossipsub::MessageAcceptance::Reject,
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, acceptance);
                if let Verdict::Reject(reason) = verdict {
                    self.penalize(source, &reason);
                }
            }
            NetCommand::Request { peer, request } => {
                self.swarm.behaviour_mut().sync.send_request(&peer, request);
            }
            NetCommand::Respond { id, response } => {
                if let Some(channel) = self.inbound.remove(&id) {
                    // Fails only if the peer has gone or timed out meanwhile.
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response);
                }
            }
            NetCommand::Penalize { peer, reason } => self.penalize(peer, &reason),
            NetCommand::Dial(addr, reply) => {
                let _ = reply.send(self.dial(addr));
            }
            NetCommand::Peers(reply) => {
                let peers = self
                    .swarm
                    .connected_peers()
                    .map(|id| PeerInfo {
                        id: *id,
                        addrs: self.peer_addrs.get(id).cloned().unwrap_or_default(),
                        penalty: self.penalties.get(id).copied().unwrap_or(0),
                    })
                    .collect();
                let _ = reply.send(peers);
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        if let Some(m) = &self.metrics {
            use libp2p::metrics::Recorder;
            m.record(&event);
            if let SwarmEvent::Behaviour(b) = &event {
                match b {
                    BehaviourEvent::Gossipsub(e) => m.record(e),
                    BehaviourEvent::Kad(e) => m.record(e),
                    BehaviourEvent::Identify(e) => m.record(e),
                    BehaviourEvent::Ping(e) => m.record(e),
                    _ => {}
                }
            }
        }
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address.with(Protocol::P2p(*self.swarm.local_peer_id()));
                tracing::info!(addr = %full, "listening");
                self.listening.send_modify(|addrs| addrs.push(full));
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                let full = address.with(Protocol::P2p(*self.swarm.local_peer_id()));
                self.listening
                    .send_modify(|addrs| addrs.retain(|a| *a != full));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                endpoint,
                ..
            } => {
                self.peer_addrs
                    .entry(peer_id)
                    .or_default()
                    .push(endpoint.get_remote_address().clone());
                if num_established.get() == 1 {
                    tracing::info!(peer = %peer_id, addr = %endpoint.get_remote_address(), "peer connected");
                    self.emit(NetEvent::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                endpoint,
                ..
            } => {
                if let Some(addrs) = self.peer_addrs.get_mut(&peer_id) {
                    addrs.retain(|a| a != endpoint.get_remote_address());
                }
                if num_established == 0 {
                    self.peer_addrs.remove(&peer_id);
                    tracing::info!(peer = %peer_id, "peer disconnected");
                    self.emit(NetEvent::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, %error, "dial failed");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => self.on_gossip(propagation_source, message_id, message),
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { topic, .. }) => {
                self.retry_publishes(&topic)
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if info.protocol_version != self.names.identify_version() {
                    tracing::warn!(
                        peer = %peer_id,
                        theirs = %info.protocol_version,
                        ours = %self.names.identify_version(),
                        "peer is on another network (different name or difficulty); disconnecting"
                    );
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    tracing::debug!(%peer, %addr, "mdns discovered a peer");
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    if !self.swarm.is_connected(&peer) {
                        let _ = self
                            .swarm
                            .dial(DialOpts::peer_id(peer).addresses(vec![addr]).build());
                    }
                }
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. })
                if !self.swarm.is_connected(&peer) && peer != *self.swarm.local_peer_id() =>
            {
                let _ = self.swarm.dial(peer);
            }
            BehaviourEvent::Sync(event) => self.on_sync_event(event),
            _ => {}
        }
    }

    fn on_gossip(&mut self, source: PeerId, id: gossipsub::MessageId, message: gossipsub::Message) {
        let decoded = if message.topic == self.tx_topic.hash() {
            codec::decode::<Tx>(&message.data, MAX_MESSAGE_BYTES).map(Gossip::Tx)
        } else if message.topic == self.block_topic.hash() {
            codec::decode::<Block>(&message.data, MAX_MESSAGE_BYTES).map(Gossip::Block)
        } else {
            Err(codec::CodecError::Malformed("unknown topic".into()))
        };
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        match decoded {
            Ok(message) => {
                if !self.emit(NetEvent::Gossip {
                    source,
                    id: id.clone(),
                    message,
                }) {
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &id,
                            &source,
                            gossipsub::MessageAcceptance::Ignore,
                        );
                }
            }
            Err(e) => {
                gossipsub.report_message_validation_result(
                    &id,
                    &source,
                    gossipsub::MessageAcceptance::Reject,
                );
                self.penalize(source, &format!("undecodable gossip: {e}"));
            }
        }
    }

    fn on_sync_event(&mut self, event: request_response::Event<super::SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    if self.inbound.len() >= MAX_INBOUND {
                        tracing::debug!(%peer, "too many sync requests in flight; refused one");
                        return;
                    }
                    let id = self.next_inbound;
                    self.next_inbound += 1;
                    self.inbound.insert(id, channel);
                    if !self.emit(NetEvent::Request { peer, id, request }) {
                        self.inbound.remove(&id);
                    }
                }
                request_response::Message::Response { response, .. } => {
                    self.emit(NetEvent::Response { peer, response });
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                self.emit(NetEvent::RequestFailed {
                    peer,
                    error: error.to_string(),
                });
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound sync request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
