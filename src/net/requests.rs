//! Sync requests in flight, both ways: inbound ones waiting for the node's answer (each
//! with a deadline, so a lost answer never leaks a slot; at most a few per peer), and our
//! outbound ones (so that an answer is matched with the question it answers).

use super::protocol::{SyncRequest, SyncResponse};
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Inbound sync requests waiting for the node's answer, across all peers.
pub const MAX_INBOUND: usize = 256;
/// Inbound sync requests one peer may have waiting at once.
pub const MAX_INBOUND_PER_PEER: usize = 4;

/// Why an inbound request was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This peer already has as many requests waiting as it may.
    PeerBusy,
    /// The node has as many requests waiting as it may.
    NodeBusy,
}

struct Inbound {
    peer: PeerId,
    channel: ResponseChannel<SyncResponse>,
    deadline: Instant,
}

/// Requests in flight.
pub(crate) struct Requests {
    inbound: HashMap<u64, Inbound>,
    next_inbound: u64,
    outbound: HashMap<OutboundRequestId, (PeerId, SyncRequest)>,
    timeout: Duration,
}

impl Requests {
    /// Empty; inbound requests are dropped after `timeout` without an answer.
    pub(crate) fn new(timeout: Duration) -> Requests {
        Requests {
            inbound: HashMap::new(),
            next_inbound: 0,
            outbound: HashMap::new(),
            timeout,
        }
    }

    /// Takes an inbound request; returns the id the node answers with.
    pub(crate) fn take_inbound(
        &mut self,
        peer: PeerId,
        channel: ResponseChannel<SyncResponse>,
        now: Instant,
    ) -> Result<u64, Refusal> {
        if self.inbound.len() >= MAX_INBOUND {
            return Err(Refusal::NodeBusy);
        }
        if self.inbound.values().filter(|i| i.peer == peer).count() >= MAX_INBOUND_PER_PEER {
            return Err(Refusal::PeerBusy);
        }
        let id = self.next_inbound;
        self.next_inbound += 1;
        self.inbound.insert(
            id,
            Inbound {
                peer,
                channel,
                deadline: now + self.timeout,
            },
        );
        Ok(id)
    }

    /// The channel to answer inbound request `id` on, if it is still waiting.
    pub(crate) fn answer(&mut self, id: u64) -> Option<ResponseChannel<SyncResponse>> {
        self.inbound.remove(&id).map(|i| i.channel)
    }

    /// Drops inbound requests past their deadline (the peer sees its request fail);
    /// returns how many.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let before = self.inbound.len();
        self.inbound.retain(|_, i| i.deadline > now);
        before - self.inbound.len()
    }

    /// Drops everything waiting for or from `peer` (it disconnected).
    pub(crate) fn forget_peer(&mut self, peer: &PeerId) {
        self.inbound.retain(|_, i| i.peer != *peer);
    }

    /// Remembers an outbound request.
    pub(crate) fn sent(&mut self, id: OutboundRequestId, peer: PeerId, request: SyncRequest) {
        self.outbound.insert(id, (peer, request));
    }

    /// The outbound request `id` answered or failed, if we sent it.
    pub(crate) fn finished(&mut self, id: &OutboundRequestId) -> Option<(PeerId, SyncRequest)> {
        self.outbound.remove(id)
    }
}
