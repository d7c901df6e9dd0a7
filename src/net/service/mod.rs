//! The network service: the task that owns the swarm. It turns swarm events into
//! [`NetEvent`]s for the node, carries out [`NetCommand`]s, keeps every peer within its
//! rate limits, and charges peers for what they provably did wrong (banning them at the
//! threshold, through the gate).

use super::behaviour::{Behaviour, BehaviourEvent};
use super::metered::MeteredEvent;
use super::peers::Offence;
use super::protocol::Names;
use super::ratelimit::Limiter;
use super::requests::Requests;
use super::transport::{self, port_is_free, split_peer};
use super::{
    Gossip, Limits, NetCommand, NetConfig, NetError, NetEvent, PeerInfo, TransportKind, Verdict,
};
use crate::chain::AuthorKey;
use crate::codec;
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{dial_opts::DialOpts, SwarmEvent};
use libp2p::{gossipsub, identify, identity, kad, mdns, Multiaddr, PeerId, Swarm};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

mod inbound;
mod unsent;

use unsent::Unsent;

/// An idle connection is kept this long: connections stay up between blocks.
const IDLE_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);
/// How often expired bans are lifted and unanswered inbound requests dropped.
const SWEEP: Duration = Duration::from_secs(1);
/// A peer over a rate limit is charged at most this often.
const FLOOD_CHARGE_EVERY: Duration = Duration::from_secs(1);
/// Most authors whose gossip rate is tracked.
const MAX_AUTHORS: usize = 16 * 1024;

pub(crate) struct Service {
    swarm: Swarm<Behaviour>,
    names: Names,
    tx_topic: gossipsub::IdentTopic,
    block_topic: gossipsub::IdentTopic,
    events: mpsc::Sender<NetEvent>,
    listening: watch::Sender<Vec<Multiaddr>>,
    /// Gossip published while no peer listened, to publish again.
    unsent: Unsent,
    requests: Requests,
    peer_addrs: HashMap<PeerId, Vec<Multiaddr>>,
    sync_rate: Limiter<PeerId>,
    gossip_rate: Limiter<PeerId>,
    author_rate: Limiter<AuthorKey>,
    metrics: Option<libp2p::metrics::Metrics>,
}

impl Service {
    pub(crate) fn new(
        config: NetConfig,
        key: identity::Keypair,
        events: mpsc::Sender<NetEvent>,
        listening: watch::Sender<Vec<Multiaddr>>,
        mut registry: Option<&mut Registry>,
    ) -> Result<Service, NetError> {
        let names = Names::new(&config.network_id);
        let metrics = registry.as_deref_mut().map(libp2p::metrics::Metrics::new);
        let mut transport = transport::build(config.transport, &key)?;
        if let Some(registry) = registry.as_deref_mut() {
            transport = transport::count_bytes(transport, registry);
        }
        let behaviour = Behaviour::new(&key, &names, config.mdns, &config.limits, registry)?;
        let limits: &Limits = &config.limits;
        // Rate buckets per peer: connections are capped, so the maps are too.
        let peers_cap = limits.max_connections as usize + limits.max_pending as usize;
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
            unsent: Unsent::default(),
            requests: Requests::new(limits.sync_timeout),
            peer_addrs: HashMap::new(),
            sync_rate: Limiter::new(limits.sync_rate, peers_cap),
            gossip_rate: Limiter::new(limits.gossip_rate, peers_cap),
            author_rate: Limiter::new(limits.author_rate, MAX_AUTHORS),
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
        let mut sweep = tokio::time::interval(SWEEP);
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = sweep.tick() => self.sweep(),
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

    /// Charges `peer` for `offence`; at the threshold the gate bans it (closing its
    /// connections and refusing new ones) and gossipsub stops talking to it.
    fn penalize(&mut self, peer: PeerId, offence: Offence, reason: &str) {
        let ban = self
            .swarm
            .behaviour_mut()
            .gate
            .penalize(peer, offence, reason);
        let points = self.swarm.behaviour().gate.score(&peer);
        tracing::warn!(%peer, reason, ?offence, points, "peer misbehaved");
        if let Some(ban) = ban {
            self.swarm.behaviour_mut().gossipsub.blacklist_peer(&peer);
            let secs = ban
                .until
                .saturating_duration_since(Instant::now())
                .as_secs();
            tracing::warn!(%peer, reason, secs, ips = ?ban.ips, "banned peer");
        }
    }

    /// Lifts bans that ran out and drops inbound requests the node never answered.
    fn sweep(&mut self) {
        for peer in self.swarm.behaviour_mut().gate.expire() {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .remove_blacklisted_peer(&peer);
            tracing::info!(%peer, "ban expired");
        }
        let dropped = self.requests.expire(Instant::now());
        if dropped > 0 {
            tracing::debug!(
                dropped,
                "dropped sync requests the node did not answer in time"
            );
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
                let newest_only = topic == self.block_topic.hash();
                self.unsent.hold(topic, bytes, newest_only);
            }
            Err(e) => tracing::warn!(error = %e, "publish failed"),
        }
    }

    fn retry_publishes(&mut self, topic: &gossipsub::TopicHash) {
        for (topic, bytes) in self.unsent.take(topic) {
            self.publish(topic, bytes);
        }
    }

    fn on_command(&mut self, cmd: NetCommand) {
        match cmd {
            NetCommand::Publish(message) => {
                let (topic, bytes) = match &message {
                    Gossip::Txs(txs) => (self.tx_topic.hash(), codec::encode(txs)),
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
                    self.penalize(source, Offence::Invalid, &reason);
                }
            }
            NetCommand::Request { peer, request } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, request.clone());
                self.requests.sent(id, peer, request);
            }
            NetCommand::Respond { id, response } => {
                if let Some(channel) = self.requests.answer(id) {
                    // Fails only if the peer has gone or timed out meanwhile.
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response);
                }
            }
            NetCommand::Penalize {
                peer,
                offence,
                reason,
            } => self.penalize(peer, offence, &reason),
            NetCommand::Unban(peer, reply) => {
                let was = self.swarm.behaviour_mut().gate.unban(&peer);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .remove_blacklisted_peer(&peer);
                if was {
                    tracing::info!(%peer, "ban lifted by the operator");
                }
                let _ = reply.send(was);
            }
            NetCommand::Bans(reply) => {
                let _ = reply.send(self.swarm.behaviour().gate.bans());
            }
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
                        penalty: self.swarm.behaviour().gate.score(id).round() as u32,
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
                    BehaviourEvent::Kad(MeteredEvent::Inner(e)) => m.record(e),
                    BehaviourEvent::Identify(MeteredEvent::Inner(e)) => m.record(e),
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
                    self.requests.forget_peer(&peer_id);
                    self.sync_rate.remove(&peer_id);
                    self.gossip_rate.remove(&peer_id);
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
            BehaviourEvent::Kad(MeteredEvent::Flood { peer }) => {
                self.penalize(peer, Offence::Flood, "over the Kademlia rate limit")
            }
            BehaviourEvent::Identify(MeteredEvent::Flood { peer }) => {
                self.penalize(peer, Offence::Flood, "over the identify rate limit")
            }
            BehaviourEvent::Identify(MeteredEvent::Inner(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
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
            BehaviourEvent::Kad(MeteredEvent::Inner(kad::Event::RoutingUpdated {
                peer, ..
            })) if !self.swarm.is_connected(&peer) && peer != *self.swarm.local_peer_id() => {
                let _ = self.swarm.dial(peer);
            }
            BehaviourEvent::Sync(event) => self.on_sync_event(event),
            _ => {}
        }
    }

    fn report(
        &mut self,
        id: &gossipsub::MessageId,
        source: &PeerId,
        verdict: gossipsub::MessageAcceptance,
    ) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, source, verdict);
    }
}

/// Which per-peer rate a message counts against.
#[derive(Clone, Copy, Debug)]
enum RateKind {
    Sync,
    Gossip,
}
