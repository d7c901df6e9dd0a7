//! A behaviour wrapper that meters what each peer makes a protocol do: every event a
//! connection handler reports (an inbound request, a push, an answer) costs the peer one
//! token. Over its rate a peer's events are dropped, so its requests go unanswered (it is
//! throttled), and at most once a second the wrapper reports it so the service can charge
//! it. Used for Kademlia and identify, whose inbound requests the swarm otherwise answers
//! without the node ever seeing who asked.

use super::ratelimit::{Limiter, Rate};
use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A peer over its rate is reported at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Most reports waiting for the swarm to poll them.
const MAX_REPORTS: usize = 1024;

/// What a metered behaviour reports.
#[derive(Debug)]
pub enum MeteredEvent<E> {
    /// An event of the wrapped behaviour.
    Inner(E),
    /// `peer` went over its rate: its events are being dropped.
    Flood {
        /// The peer.
        peer: PeerId,
    },
}

/// `B`, with every peer's handler events limited to a rate.
pub struct Metered<B> {
    inner: B,
    rate: Limiter<PeerId>,
    reports: VecDeque<PeerId>,
}

impl<B> Metered<B> {
    /// Wraps `inner`; each peer may cause `rate` events, for at most `max_peers` peers at once.
    pub fn new(inner: B, rate: Rate, max_peers: usize) -> Metered<B> {
        Metered {
            inner,
            rate: Limiter::new(rate, max_peers),
            reports: VecDeque::new(),
        }
    }

    /// Whether `peer` may cause one more event now; queues a report when it may not.
    fn admit(&mut self, peer: PeerId) -> bool {
        let now = Instant::now();
        if self.rate.allow(&peer, now) {
            return true;
        }
        if self.rate.should_charge(&peer, now, REPORT_EVERY) && self.reports.len() < MAX_REPORTS {
            self.reports.push_back(peer);
        }
        false
    }
}

impl<B> Deref for Metered<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.inner
    }
}

impl<B> DerefMut for Metered<B> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for Metered<B> {
    type ConnectionHandler = B::ConnectionHandler;
    type ToSwarm = MeteredEvent<B::ToSwarm>;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_inbound_connection(id, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner
            .handle_pending_outbound_connection(id, peer, addresses, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_outbound_connection(id, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // Buckets outlive connections, so reconnecting does not refill one.
        self.inner.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        if self.admit(peer) {
            self.inner.on_connection_handler_event(peer, id, event)
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Some(peer) = self.reports.pop_front() {
            return Poll::Ready(ToSwarm::GenerateEvent(MeteredEvent::Flood { peer }));
        }
        self.inner.poll(cx).map(|e| e.map_out(MeteredEvent::Inner))
    }
}
