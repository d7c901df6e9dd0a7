//! What peers send the service: gossip (rate-limited per peer and per author, decoded,
//! then handed to the node to judge) and sync requests and answers (rate-limited,
//! matched with what was asked, timed out). Charges only what the peer provably did.

use super::{RateKind, Service, FLOOD_CHARGE_EVERY};
use crate::chain::{Block, Tx};
use crate::codec::{self, MAX_MESSAGE_BYTES};
use crate::net::peers::Offence;
use crate::net::protocol::{SyncRequest, SyncResponse, MAX_GOSSIP_TXS};
use crate::net::requests::Refusal;
use crate::net::{Gossip, NetEvent};
use libp2p::request_response::{self, OutboundFailure};
use libp2p::{gossipsub, PeerId};
use std::time::Instant;

impl Service {
    /// Whether `peer` is within its rate in `limiter`; charges it (at most once a second)
    /// when it is not.
    fn within_rate(&mut self, which: RateKind, peer: PeerId) -> bool {
        let now = Instant::now();
        let limiter = match which {
            RateKind::Sync => &mut self.sync_rate,
            RateKind::Gossip => &mut self.gossip_rate,
        };
        if limiter.allow(&peer, now) {
            return true;
        }
        if limiter.should_charge(&peer, now, FLOOD_CHARGE_EVERY) {
            self.penalize(
                peer,
                Offence::Flood,
                &format!("over the {which:?} rate limit"),
            );
        }
        false
    }

    pub(super) fn on_gossip(
        &mut self,
        source: PeerId,
        id: gossipsub::MessageId,
        message: gossipsub::Message,
    ) {
        if !self.within_rate(RateKind::Gossip, source) {
            self.report(&id, &source, gossipsub::MessageAcceptance::Ignore);
            return;
        }
        let decoded = if message.topic == self.tx_topic.hash() {
            codec::decode::<Vec<Tx>>(&message.data, MAX_MESSAGE_BYTES).and_then(|txs| {
                if (1..=MAX_GOSSIP_TXS).contains(&txs.len()) {
                    Ok(Gossip::Txs(txs))
                } else {
                    let n = txs.len();
                    Err(codec::CodecError::Malformed(format!(
                        "{n} txs in one message; 1 to {MAX_GOSSIP_TXS} are allowed"
                    )))
                }
            })
        } else if message.topic == self.block_topic.hash() {
            codec::decode::<Block>(&message.data, MAX_MESSAGE_BYTES).map(Gossip::Block)
        } else {
            Err(codec::CodecError::Malformed("unknown topic".into()))
        };
        let message = match decoded {
            Ok(message) => message,
            Err(e) => {
                self.report(&id, &source, gossipsub::MessageAcceptance::Reject);
                self.penalize(
                    source,
                    Offence::Invalid,
                    &format!("undecodable gossip: {e}"),
                );
                return;
            }
        };
        // One author's txs are limited however many peers relay them; not the relayer's
        // fault, so nobody is charged for it: the txs over the rate are left out.
        let message = match message {
            Gossip::Txs(mut txs) => {
                let now = Instant::now();
                txs.retain(|tx| self.author_rate.allow(&tx.author(), now));
                if txs.is_empty() {
                    self.report(&id, &source, gossipsub::MessageAcceptance::Ignore);
                    return;
                }
                Gossip::Txs(txs)
            }
            block => block,
        };
        if !self.emit(NetEvent::Gossip {
            source,
            id: id.clone(),
            message,
        }) {
            self.report(&id, &source, gossipsub::MessageAcceptance::Ignore);
        }
    }

    pub(super) fn on_sync_event(
        &mut self,
        event: request_response::Event<SyncRequest, SyncResponse>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    if !self.within_rate(RateKind::Sync, peer) {
                        return; // dropping the channel fails the request at the peer
                    }
                    let id = match self.requests.take_inbound(peer, channel, Instant::now()) {
                        Ok(id) => id,
                        // Throttled, not charged: only the per-second rate is charged,
                        // which an honest node stays far below.
                        Err(Refusal::PeerBusy) => {
                            tracing::debug!(%peer, "peer has too many sync requests waiting");
                            return;
                        }
                        Err(Refusal::NodeBusy) => {
                            tracing::debug!(%peer, "too many sync requests in flight; refused one");
                            return;
                        }
                    };
                    if !self.emit(NetEvent::Request { peer, id, request }) {
                        self.requests.answer(id);
                    }
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let Some((_, request)) = self.requests.finished(&request_id) else {
                        return;
                    };
                    if !request.answered_by(&response) {
                        self.penalize(
                            peer,
                            Offence::Invalid,
                            "answered a sync request with the wrong kind of answer",
                        );
                        self.emit(NetEvent::RequestFailed {
                            peer,
                            request,
                            error: "wrong kind of answer".into(),
                        });
                        return;
                    }
                    self.emit(NetEvent::Response {
                        peer,
                        request,
                        response,
                    });
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let Some((_, request)) = self.requests.finished(&request_id) else {
                    return;
                };
                match &error {
                    // The peer took the request and never answered in time.
                    OutboundFailure::Timeout => {
                        self.penalize(peer, Offence::Unresponsive, "sync request timed out")
                    }
                    // An answer over the size limit or not decodable.
                    OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        self.penalize(peer, Offence::Invalid, &format!("garbage sync answer: {e}"))
                    }
                    // A closed connection or stream is no proof of anything: an honest
                    // node over its limits drops requests the same way.
                    _ => {}
                }
                self.emit(NetEvent::RequestFailed {
                    peer,
                    request,
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
