//! The gate: a libp2p behaviour that refuses connections from banned peers and banned
//! addresses, caps inbound connections per IP address, and closes every connection of a
//! peer the moment it is banned. Totals and pending dials are capped by libp2p's
//! connection-limits behaviour beside it; this adds what that one cannot know.

use super::peers::{Ban, BanInfo, Misbehaviour, Offence};
use libp2p::core::{transport::PortUse, Endpoint};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, CloseConnection, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Why the gate refused a connection.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The peer is banned.
    #[error("peer {0} is banned")]
    BannedPeer(PeerId),
    /// The address is banned.
    #[error("address {0} is banned")]
    BannedAddress(IpAddr),
    /// The address already has as many inbound connections as allowed.
    #[error("too many connections from {0}")]
    TooManyFromAddress(IpAddr),
}

/// The IP address in a multiaddr, if it has one.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(a) => Some(IpAddr::V4(a)),
        Protocol::Ip6(a) => Some(IpAddr::V6(a)),
        _ => None,
    })
}

/// Bans and per-address limits, enforced on every connection.
#[derive(Debug)]
pub struct Gate {
    book: Misbehaviour,
    max_inbound_per_ip: usize,
    limit_loopback: bool,
    /// Inbound connections (pending or established) by id, with their address.
    inbound: HashMap<ConnectionId, IpAddr>,
    /// Addresses of each peer's established connections: noted when the swarm reports a
    /// connection established, not when the gate accepts one, because a behaviour beside
    /// the gate (the connection limits) may still deny it, and a denied connection is
    /// never reported closed.
    peer_ips: HashMap<PeerId, HashMap<ConnectionId, IpAddr>>,
    close: VecDeque<PeerId>,
    waker: Option<Waker>,
}

impl Gate {
    /// A gate whose bans last `ban_duration` and that lets at most `max_inbound_per_ip`
    /// inbound connections in from one address (loopback too only if `limit_loopback`).
    pub fn new(ban_duration: Duration, max_inbound_per_ip: usize, limit_loopback: bool) -> Gate {
        Gate {
            book: Misbehaviour::new(ban_duration),
            max_inbound_per_ip,
            limit_loopback,
            inbound: HashMap::new(),
            peer_ips: HashMap::new(),
            close: VecDeque::new(),
            waker: None,
        }
    }

    /// Charges an offence to `peer`; if that bans it, its connections are closed and the
    /// ban is returned.
    pub fn penalize(&mut self, peer: PeerId, offence: Offence, reason: &str) -> Option<Ban> {
        let ips: Vec<IpAddr> = self
            .peer_ips
            .get(&peer)
            .map(|m| m.values().copied().collect())
            .unwrap_or_default();
        let ban = self
            .book
            .penalize(peer, offence, reason, &ips, Instant::now())?;
        self.close.push_back(peer);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
        Some(ban)
    }

    /// A peer's misbehaviour points now.
    pub fn score(&self, peer: &PeerId) -> f64 {
        self.book.score(peer, Instant::now())
    }

    /// Lifts a ban; false if the peer was not banned.
    pub fn unban(&mut self, peer: &PeerId) -> bool {
        self.book.unban(peer)
    }

    /// Lifts bans that ran out; returns their peers.
    pub fn expire(&mut self) -> Vec<PeerId> {
        self.book.expire(Instant::now())
    }

    /// The bans in force.
    pub fn bans(&self) -> Vec<BanInfo> {
        self.book.bans(Instant::now())
    }

    /// Whether `peer` is banned now.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.book.is_banned(peer, Instant::now())
    }

    fn check_peer(&self, peer: &PeerId) -> Result<(), ConnectionDenied> {
        if self.is_banned(peer) {
            return Err(ConnectionDenied::new(Refused::BannedPeer(*peer)));
        }
        Ok(())
    }

    fn note_established(&mut self, peer: PeerId, id: ConnectionId, addr: &Multiaddr) {
        if let Some(ip) = ip_of(addr) {
            self.peer_ips.entry(peer).or_default().insert(id, ip);
        }
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_of(remote) else {
            return Ok(());
        };
        if self.book.is_ip_banned(&ip, Instant::now()) {
            return Err(ConnectionDenied::new(Refused::BannedAddress(ip)));
        }
        if self.limit_loopback || !ip.is_loopback() {
            let from_ip = self.inbound.values().filter(|i| **i == ip).count();
            if from_ip >= self.max_inbound_per_ip {
                return Err(ConnectionDenied::new(Refused::TooManyFromAddress(ip)));
            }
        }
        self.inbound.insert(id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _id: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check_peer(&peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _id: ConnectionId,
        peer: Option<PeerId>,
        _addrs: &[Multiaddr],
        _role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if let Some(peer) = peer {
            self.check_peer(&peer)?;
        }
        Ok(vec![])
    }

    fn handle_established_outbound_connection(
        &mut self,
        _id: ConnectionId,
        peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check_peer(&peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(c) => {
                self.note_established(c.peer_id, c.connection_id, c.endpoint.get_remote_address());
            }
            FromSwarm::ListenFailure(f) => {
                self.inbound.remove(&f.connection_id);
            }
            FromSwarm::ConnectionClosed(c) => {
                self.inbound.remove(&c.connection_id);
                if let Some(m) = self.peer_ips.get_mut(&c.peer_id) {
                    m.remove(&c.connection_id);
                    if m.is_empty() {
                        self.peer_ips.remove(&c.peer_id);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        if let Some(peer) = self.close.pop_front() {
            return Poll::Ready(ToSwarm::CloseConnection {
                peer_id: peer,
                connection: CloseConnection::All,
            });
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::core::ConnectedPoint;
    use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished, ListenFailure};
    use libp2p::swarm::{DialError, DialFailure, ListenError};

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    fn denied() -> ConnectionDenied {
        ConnectionDenied::new(std::io::Error::other("over the connection limits"))
    }

    #[test]
    fn connections_another_behaviour_denies_are_not_remembered() {
        let mut gate = Gate::new(Duration::from_secs(60), 8, false);
        let (local, remote) = (
            addr("/ip4/10.0.0.1/tcp/4001"),
            addr("/ip4/192.0.2.7/tcp/5555"),
        );
        let peer = PeerId::random();
        // Inbound: the gate lets it through both stages, then the connection limits beside
        // it deny it, so the swarm reports a listen failure and never a close.
        let id = ConnectionId::new_unchecked(1);
        gate.handle_pending_inbound_connection(id, &local, &remote)
            .unwrap();
        gate.handle_established_inbound_connection(id, peer, &local, &remote)
            .unwrap();
        let error = ListenError::Denied { cause: denied() };
        gate.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
            local_addr: &local,
            send_back_addr: &remote,
            error: &error,
            connection_id: id,
            peer_id: Some(peer),
        }));
        // Outbound, the same: a dial failure and never a close.
        let out = ConnectionId::new_unchecked(2);
        let dialed = addr("/ip4/198.51.100.9/tcp/4001");
        gate.handle_pending_outbound_connection(out, Some(peer), &[], Endpoint::Dialer)
            .unwrap();
        gate.handle_established_outbound_connection(
            out,
            peer,
            &dialed,
            Endpoint::Dialer,
            PortUse::New,
        )
        .unwrap();
        let error = DialError::Denied { cause: denied() };
        gate.on_swarm_event(FromSwarm::DialFailure(DialFailure {
            peer_id: Some(peer),
            error: &error,
            connection_id: out,
        }));
        assert!(gate.inbound.is_empty(), "{:?}", gate.inbound);
        assert!(gate.peer_ips.is_empty(), "{:?}", gate.peer_ips);
        // Banned later, it is banned by id: not from addresses it was never let in from.
        let ban = gate.penalize(peer, Offence::Invalid, "bad block").unwrap();
        assert!(ban.ips.is_empty(), "{:?}", ban.ips);
    }

    #[test]
    fn a_ban_covers_the_addresses_of_open_connections_only() {
        let mut gate = Gate::new(Duration::from_secs(60), 8, false);
        let local = addr("/ip4/10.0.0.1/tcp/4001");
        let (first, second) = (addr("/ip4/192.0.2.7/tcp/1"), addr("/ip4/203.0.113.5/tcp/2"));
        let peer = PeerId::random();
        for (n, remote) in [(1, &first), (2, &second)] {
            let id = ConnectionId::new_unchecked(n);
            let endpoint = ConnectedPoint::Listener {
                local_addr: local.clone(),
                send_back_addr: remote.clone(),
            };
            gate.handle_pending_inbound_connection(id, &local, remote)
                .unwrap();
            gate.handle_established_inbound_connection(id, peer, &local, remote)
                .unwrap();
            gate.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id: peer,
                connection_id: id,
                endpoint: &endpoint,
                failed_addresses: &[],
                other_established: n - 1,
            }));
        }
        // The first connection closes; the second is open when the peer is banned.
        let endpoint = ConnectedPoint::Listener {
            local_addr: local.clone(),
            send_back_addr: first.clone(),
        };
        gate.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: peer,
            connection_id: ConnectionId::new_unchecked(1),
            endpoint: &endpoint,
            cause: None,
            remaining_established: 1,
        }));
        let ban = gate.penalize(peer, Offence::Invalid, "bad block").unwrap();
        assert_eq!(ban.ips, vec![ip_of(&second).unwrap()]);
        assert!(gate
            .book
            .is_ip_banned(&ip_of(&second).unwrap(), Instant::now()));
        assert!(!gate
            .book
            .is_ip_banned(&ip_of(&first).unwrap(), Instant::now()));
        // The ban refuses the address at once, whoever dials from it.
        let again = ConnectionId::new_unchecked(3);
        assert!(gate
            .handle_pending_inbound_connection(again, &local, &second)
            .is_err());
        assert!(gate
            .handle_pending_inbound_connection(again, &local, &first)
            .is_ok());
    }
}
