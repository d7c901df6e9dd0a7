//! The transports (TCP or memory, each with noise and yamux) and address helpers.

use super::{NetError, TransportKind};
use libp2p::core::transport::{Boxed, MemoryTransport};
use libp2p::core::{muxing::StreamMuxerBox, upgrade::Version};
use libp2p::metrics::BandwidthTransport;
use libp2p::multiaddr::Protocol;
use libp2p::{identity, noise, tcp, yamux, Multiaddr, PeerId, Transport};
use prometheus_client::registry::Registry;

/// The transport of `kind`, authenticated with `key`.
pub fn build(
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

/// `transport`, counting the bytes of every stream in `registry`
/// (`libp2p_bandwidth_bytes_total`, by direction).
pub fn count_bytes(
    transport: Boxed<(PeerId, StreamMuxerBox)>,
    registry: &mut Registry,
) -> Boxed<(PeerId, StreamMuxerBox)> {
    BandwidthTransport::new(transport, registry)
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed()
}

/// Fails if a fixed TCP port in `addr` is already taken. libp2p's TCP transport listens
/// with SO_REUSEPORT, so a second node on the same port would start without an error and
/// silently receive part of the first one's connections.
pub(crate) fn port_is_free(addr: &Multiaddr) -> Result<(), String> {
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
pub(crate) fn split_peer(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut base = addr.clone();
    match base.pop() {
        Some(Protocol::P2p(peer)) => Some((peer, base)),
        _ => None,
    }
}
