//! Block sync as a state machine. It knows each connected peer's last chain status and
//! which requests are out, and decides: a status arrives -> fetch from that peer or not;
//! a batch arrives -> whether it answers what we asked; a mutated copy arrives -> which
//! peers to ask for the block by hash. It never touches the chain: the node task gives it
//! what it needs to know of ours ([`Ours`]) and carries out the [`Action`]s it returns.
//!
//! On connect, and every few seconds, peers are asked for their chain status; from a peer
//! with more work the node fetches canonical blocks after a locator, in bounded batches,
//! until it has caught up. A peer is charged only for what it provably did: a batch that
//! does not start after a hash we sent, or whose blocks do not chain, is its doing; a
//! batch that starts after a block we have since dropped is ours.

use crate::chain::{Block, BlockHash};
use crate::net::protocol::MAX_SYNC_BLOCKS;
use crate::net::{ChainStatus, Offence, SyncRequest};
use libp2p::PeerId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A fetch with no answer after this long is given up, even if the network never says
/// so (an event dropped under load must not leave a peer marked as being fetched from).
const FETCH_DEADLINE: Duration = Duration::from_secs(45);
/// Most blocks asked for by hash at once.
const MAX_WANTED: usize = 64;
/// Peers a block is asked for by hash when a mutated copy arrived.
const REFETCH_PEERS: usize = 2;

/// What sync decided the node should do.
#[derive(Debug, PartialEq)]
pub(super) enum Action {
    /// Send `request` to `peer`.
    Ask {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: SyncRequest,
    },
    /// Charge `peer` for `offence`.
    Charge {
        /// The peer.
        peer: PeerId,
        /// What it did.
        offence: Offence,
        /// Why, for the log and `peers`.
        reason: String,
    },
}

/// What sync needs to know of our chain.
pub(super) struct Ours<'a> {
    /// The genesis hash (the network).
    pub genesis: BlockHash,
    /// Our tip.
    pub tip: BlockHash,
    /// Our tip's cumulative work.
    pub work: u128,
    /// Whether we hold a block.
    pub known: &'a dyn Fn(&BlockHash) -> bool,
}

impl Ours<'_> {
    /// Whether a peer's chain is one we must fetch: more work than ours, or as much work
    /// on a tip we do not hold (a tie, which only a next block on one side breaks; to
    /// break it, we need the other tip).
    fn behind(&self, status: &ChainStatus) -> bool {
        status.work() > self.work
            || (status.work() == self.work && status.tip != self.tip && !(self.known)(&status.tip))
    }
}

/// What the node knows of one connected peer.
#[derive(Debug, Default)]
struct PeerSync {
    status: Option<ChainStatus>,
    /// While a blocks request to it is out: when to give up on it.
    fetching: Option<Instant>,
    /// While a by-hash request to it is out: when to give up on it. One at a time, so
    /// that a flood of mutated copies never makes us flood an honest peer.
    asking: Option<Instant>,
}

impl PeerSync {
    fn is_fetching(&self, now: Instant) -> bool {
        self.fetching.is_some_and(|deadline| deadline > now)
    }
}

/// Sync progress across peers.
#[derive(Debug, Default)]
pub(super) struct BlockSync {
    peers: HashMap<PeerId, PeerSync>,
    /// Blocks asked for by hash, with when the ask runs out.
    wanted: HashMap<BlockHash, Instant>,
}

impl BlockSync {
    /// Connected peers.
    pub(super) fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Whether a blocks request is out to any peer.
    pub(super) fn is_syncing(&self) -> bool {
        let now = Instant::now();
        self.peers.values().any(|p| p.is_fetching(now))
    }

    /// The highest height a connected peer has reported.
    pub(super) fn best_height(&self) -> u64 {
        self.peers
            .values()
            .filter_map(|p| p.status.as_ref())
            .map(|s| s.height)
            .max()
            .unwrap_or(0)
    }

    /// Whether a peer last reported a different tip with exactly our work: a tie that
    /// first-seen fork choice never breaks by itself, only a new block does. Only a tip we
    /// hold counts (a real tie is a block we fetch from the peer, see [`Ours`]), so a
    /// peer cannot keep us mining empty blocks by claiming a made-up tip of equal work.
    pub(super) fn tied_with(&self, ours: &Ours) -> bool {
        self.peers
            .values()
            .filter_map(|p| p.status.as_ref())
            .any(|s| s.work() == ours.work && s.tip != ours.tip && (ours.known)(&s.tip))
    }

    /// A peer connected: ask for its status.
    pub(super) fn connected(&mut self, peer: PeerId) -> Action {
        self.peers.insert(peer, PeerSync::default());
        Action::Ask {
            peer,
            request: SyncRequest::Status,
        }
    }

    /// A peer left.
    pub(super) fn disconnected(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// Ask every peer for its status.
    pub(super) fn poll(&self) -> Vec<Action> {
        self.peers
            .keys()
            .map(|&peer| Action::Ask {
                peer,
                request: SyncRequest::Status,
            })
            .collect()
    }

    /// A peer's status: fetch from it (after `locator`) if its chain is ahead of ours.
    pub(super) fn on_status(
        &mut self,
        peer: PeerId,
        status: ChainStatus,
        ours: &Ours,
        locator: impl FnOnce() -> Vec<BlockHash>,
    ) -> Option<Action> {
        if status.genesis != ours.genesis {
            return Some(charge(peer, "status from another network"));
        }
        let behind = ours.behind(&status);
        // Only connected peers are tracked: a late answer from one that left is dropped.
        self.peers.get_mut(&peer)?.status = Some(status);
        if behind {
            self.fetch(peer, locator())
        } else {
            None
        }
    }

    /// Ask `peer` for blocks after `locator`, unless a fetch from it is under way.
    pub(super) fn fetch(&mut self, peer: PeerId, locator: Vec<BlockHash>) -> Option<Action> {
        // Only connected peers: a gossip source that left must not grow the map.
        let state = self.peers.get_mut(&peer)?;
        let now = Instant::now();
        if state.is_fetching(now) {
            return None;
        }
        state.fetching = Some(now + FETCH_DEADLINE);
        Some(Action::Ask {
            peer,
            request: SyncRequest::Blocks {
                locator,
                max: MAX_SYNC_BLOCKS,
            },
        })
    }

    /// Whether `peer` last claimed a chain ahead of ours.
    pub(super) fn claims_more(&self, peer: &PeerId, ours: &Ours) -> bool {
        self.peers
            .get(peer)
            .and_then(|p| p.status.as_ref())
            .is_some_and(|s| ours.behind(s))
    }

    /// A batch answering our request with `locator`: `Err` with the charge when the
    /// batch breaks the protocol, whatever our chain did meanwhile.
    pub(super) fn batch_arrived(
        &mut self,
        peer: PeerId,
        locator: &[BlockHash],
        blocks: &[Block],
        genesis: BlockHash,
    ) -> Result<(), Action> {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.fetching = None;
        }
        check_batch(locator, blocks, genesis).map_err(|reason| charge(peer, &reason))
    }

    /// `peer` claimed more work and then had nothing after our locator: stop believing
    /// the claim until it reports again, and charge it.
    pub(super) fn claim_not_delivered(&mut self, peer: PeerId) -> Action {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.status = None;
        }
        Action::Charge {
            peer,
            offence: Offence::Unresponsive,
            reason: "claimed more work than it delivered".into(),
        }
    }

    /// A request failed (timed out, the stream closed, the peer left).
    pub(super) fn request_failed(&mut self, peer: &PeerId, request: &SyncRequest) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        match request {
            SyncRequest::Blocks { .. } => p.fetching = None,
            SyncRequest::Block(hash) => {
                p.asking = None;
                // Ask again when the next copy comes, not only after the deadline.
                self.wanted.remove(hash);
            }
            SyncRequest::Status => {}
        }
    }

    /// A copy of block `hash` from `not_from` did not match its header: ask up to
    /// [`REFETCH_PEERS`] other peers for it by hash.
    pub(super) fn refetch(&mut self, hash: BlockHash, not_from: PeerId) -> Vec<Action> {
        let now = Instant::now();
        self.wanted.retain(|_, until| *until > now);
        if self.wanted.len() >= MAX_WANTED || self.wanted.contains_key(&hash) {
            return Vec::new();
        }
        let peers: Vec<PeerId> = self
            .peers
            .iter_mut()
            .filter(|(p, s)| **p != not_from && s.asking.is_none_or(|d| d <= now))
            .take(REFETCH_PEERS)
            .map(|(p, s)| {
                s.asking = Some(now + FETCH_DEADLINE);
                *p
            })
            .collect();
        if peers.is_empty() {
            return Vec::new(); // every peer is busy: gossip and the status poll will bring it
        }
        self.wanted.insert(hash, now + FETCH_DEADLINE);
        peers
            .into_iter()
            .map(|peer| Action::Ask {
                peer,
                request: SyncRequest::Block(hash),
            })
            .collect()
    }

    /// The answer to a by-hash request: `Err` with the charge for another block than
    /// asked, `Ok(true)` if the block is still wanted (no other peer's copy came first).
    pub(super) fn by_hash_arrived(
        &mut self,
        peer: PeerId,
        hash: BlockHash,
        block: Option<&Block>,
    ) -> Result<bool, Action> {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.asking = None;
        }
        let Some(block) = block else {
            return Ok(false);
        };
        if block.hash() != hash {
            return Err(charge(peer, &format!("sent another block than {hash}")));
        }
        Ok(self.wanted.remove(&hash).is_some())
    }
}

fn charge(peer: PeerId, reason: &str) -> Action {
    Action::Charge {
        peer,
        offence: Offence::Invalid,
        reason: reason.to_string(),
    }
}

/// Checks a batch against the request it answers: at most `MAX_SYNC_BLOCKS` blocks, the
/// first building on a hash of `locator` (or on genesis, when none of them is on the
/// peer's chain), each next one on the one before. An honest peer's answer always
/// passes, whatever has happened to our chain since we asked.
fn check_batch(locator: &[BlockHash], blocks: &[Block], genesis: BlockHash) -> Result<(), String> {
    if blocks.len() > MAX_SYNC_BLOCKS as usize {
        return Err(format!(
            "sent {} blocks, over the batch limit",
            blocks.len()
        ));
    }
    let Some(first) = blocks.first() else {
        return Ok(());
    };
    let start = first.header.prev;
    if start != genesis && !locator.contains(&start) {
        return Err("sync blocks do not start after a hash we sent".into());
    }
    for pair in blocks.windows(2) {
        if pair[1].header.prev != pair[0].hash() {
            return Err("sync blocks do not connect".into());
        }
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Block, Header, Params};

    fn chain_of(parent: BlockHash, n: u64) -> Vec<Block> {
        let mut prev = parent;
        (0..n)
            .map(|i| {
                let header = Header {
                    version: 1,
                    height: i + 1,
                    prev,
                    merkle: crate::chain::block::merkle_root(&[]),
                    time: i,
                    bits: 0,
                    nonce: i,
                };
                prev = header.hash();
                Block {
                    header,
                    txs: vec![],
                }
            })
            .collect()
    }

    #[test]
    fn a_batch_must_start_after_a_hash_we_sent_and_connect() {
        let genesis = Params::new("t", 1).unwrap().genesis_hash();
        let asked = BlockHash::digest(b"a hash we sent");
        let other = BlockHash::digest(b"a hash we did not send");
        let locator = [asked, genesis];
        assert!(check_batch(&locator, &[], genesis).is_ok());
        assert!(check_batch(&locator, &chain_of(asked, 5), genesis).is_ok());
        assert!(check_batch(&locator, &chain_of(genesis, 5), genesis).is_ok());
        assert!(check_batch(&[asked], &chain_of(genesis, 1), genesis).is_ok());
        assert!(check_batch(&locator, &chain_of(other, 5), genesis).is_err());
        let mut broken = chain_of(asked, 5);
        broken.remove(2);
        assert!(check_batch(&locator, &broken, genesis).is_err());
        let n = MAX_SYNC_BLOCKS as u64 + 1;
        assert!(check_batch(&locator, &chain_of(asked, n), genesis).is_err());
    }
}
