//! The libp2p behaviour: gossipsub, Kademlia, mDNS, identify, ping, block sync, the gate
//! (bans, per-address caps) and connection limits, each configured for a LAN network of 2
//! to 50 nodes.

use super::gate::Gate;
use super::metered::Metered;
use super::protocol::{Names, SyncCodec};
use super::Limits;
use crate::codec::MAX_MESSAGE_BYTES;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{connection_limits, gossipsub, identify, identity, kad, mdns, ping, request_response};
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Everything a kvchain node speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Refuses banned peers and addresses, caps connections per address.
    pub gate: Gate,
    /// Caps connections in all, pending, and per peer.
    pub limits: connection_limits::Behaviour,
    /// Gossip of txs and blocks.
    pub gossipsub: gossipsub::Behaviour,
    /// Peer discovery beyond the LAN, each peer's requests metered.
    pub kad: Metered<kad::Behaviour<kad::store::MemoryStore>>,
    /// Peer discovery on the LAN (off with `--no-mdns`).
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Exchange of listen addresses and network ids, each peer's pushes metered.
    pub identify: Metered<identify::Behaviour>,
    /// Liveness.
    pub ping: ping::Behaviour,
    /// Block sync.
    pub sync: request_response::Behaviour<SyncCodec>,
}

/// Why the behaviour could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Gossipsub refused its configuration.
    #[error("gossipsub: {0}")]
    Gossipsub(String),
    /// mDNS could not start (no multicast socket).
    #[error("mdns: {0}")]
    Mdns(#[from] std::io::Error),
}

impl Behaviour {
    /// Builds the behaviour for `key` on the network named by `names`; gossipsub registers
    /// its per-topic metrics in `registry` when given.
    pub fn new(
        key: &identity::Keypair,
        names: &Names,
        mdns_on: bool,
        limits: &Limits,
        registry: Option<&mut Registry>,
    ) -> Result<Behaviour, BuildError> {
        let peer_id = key.public().to_peer_id();
        // Connections are capped, so the peers metered at once are too.
        let metered_peers = limits.max_connections as usize + limits.max_pending as usize;
        Ok(Behaviour {
            gate: Gate::new(
                limits.ban_duration,
                limits.max_inbound_per_ip,
                limits.limit_loopback,
            ),
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established(Some(limits.max_connections))
                    .with_max_pending_incoming(Some(limits.max_pending))
                    .with_max_pending_outgoing(Some(limits.max_pending))
                    .with_max_established_per_peer(Some(limits.max_per_peer)),
            ),
            gossipsub: gossipsub_behaviour(names, limits.limit_loopback, registry)?,
            kad: {
                let mut cfg = kad::Config::new(names.kad());
                cfg.set_query_timeout(Duration::from_secs(30));
                let mut kad = kad::Behaviour::with_config(
                    peer_id,
                    kad::store::MemoryStore::new(peer_id),
                    cfg,
                );
                kad.set_mode(Some(kad::Mode::Server));
                Metered::new(kad, limits.discovery_rate, metered_peers)
            },
            mdns: Toggle::from(if mdns_on {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    peer_id,
                )?)
            } else {
                None
            }),
            identify: Metered::new(
                identify::Behaviour::new(
                    identify::Config::new(names.identify_version(), key.public())
                        .with_agent_version(format!("kvchain/{}", env!("CARGO_PKG_VERSION")))
                        .with_push_listen_addr_updates(true),
                ),
                limits.discovery_rate,
                metered_peers,
            ),
            ping: ping::Behaviour::default(),
            sync: request_response::Behaviour::with_codec(
                SyncCodec,
                [(names.sync(), request_response::ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(limits.sync_timeout)
                    .with_max_concurrent_streams(32),
            ),
        })
    }
}

fn gossipsub_behaviour(
    names: &Names,
    limit_loopback: bool,
    registry: Option<&mut Registry>,
) -> Result<gossipsub::Behaviour, BuildError> {
    let err = |e: &dyn std::fmt::Display| BuildError::Gossipsub(e.to_string());
    let config = gossipsub::ConfigBuilder::default()
        .protocol_id_prefix(names.gossipsub_prefix())
        // Content-addressed ids: the same tx or block is one message, whoever sends it.
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::from(Sha256::digest(&m.data).to_vec())
        })
        // The node validates every message before it is relayed.
        .validate_messages()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .max_transmit_size(MAX_MESSAGE_BYTES + 64 * 1024)
        // A small network: a mesh of up to 6, kept with as few as 2, and a fast heartbeat
        // so that a new node joins the mesh within a second.
        .mesh_n(6)
        .mesh_n_low(2)
        .mesh_n_high(12)
        .mesh_outbound_min(1)
        .heartbeat_interval(Duration::from_millis(500))
        .flood_publish(true)
        .build()
        .map_err(|e| err(&e))?;
    // Unsigned messages: every tx carries its author's signature and every block its
    // proof of work, so a publisher's signature would prove nothing more, and checking it
    // cost a node a third of its CPU under load. Peers are judged by who relayed.
    let mut gs = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config)
        .map_err(|e| err(&e))?;
    gs.with_peer_score(
        score_params(names, limit_loopback),
        gossipsub::PeerScoreThresholds::default(),
    )
    .map_err(|e| err(&e))?;
    // Messages and bytes sent and received per topic (duplicates too), IWANTs, mesh
    // sizes: `gossipsub_*` in /metrics. Labels are bounded: only the node's two topics
    // (it subscribes to both before any peer can name another).
    if let Some(registry) = registry {
        let metrics = gossipsub::MetricsConfig {
            max_topics: 2,
            max_never_subscribed_topics: 0,
            ..Default::default()
        };
        gs = gs.with_metrics(registry.sub_registry_with_prefix("gossipsub"), metrics);
    }
    Ok(gs)
}

/// Peer scoring: every message the node rejects costs its sender, and a peer far below
/// zero is no longer gossiped with. Unless `limit_loopback`, peers on loopback are exempt
/// from the IP colocation penalty, as they are from the gate's per-IP cap: on a
/// one-machine network every peer shares 127.0.0.1, and past 10 of them the penalty
/// ((peers - 10)^2 x -5) put each one below the graylist threshold, so a node of a
/// 16-node testnet stopped publishing to, relaying for and hearing from all its peers.
fn score_params(names: &Names, limit_loopback: bool) -> gossipsub::PeerScoreParams {
    let mut params = gossipsub::PeerScoreParams::default();
    for topic in [names.tx_topic(), names.block_topic()] {
        let hash = gossipsub::IdentTopic::new(topic).hash();
        let topic_params = gossipsub::TopicScoreParams {
            invalid_message_deliveries_weight: -100.0,
            invalid_message_deliveries_decay: 0.9,
            ..Default::default()
        };
        params.topics.insert(hash, topic_params);
    }
    if !limit_loopback {
        params.ip_colocation_factor_whitelist.extend([
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]);
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_peers_escape_the_colocation_penalty_unless_limited() {
        let names = Names::new("score-test");
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let lan: IpAddr = "10.0.0.7".parse().unwrap();
        let open = score_params(&names, false);
        assert!(open.ip_colocation_factor_whitelist.contains(&local));
        assert!(!open.ip_colocation_factor_whitelist.contains(&lan));
        assert!(
            open.ip_colocation_factor_weight < 0.0,
            "other IPs are still penalized"
        );
        let limited = score_params(&names, true);
        assert!(limited.ip_colocation_factor_whitelist.is_empty());
        // Both are parameters gossipsub accepts.
        for params in [open, limited] {
            params.validate().unwrap();
        }
    }
}
