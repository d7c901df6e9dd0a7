//! The node's side of the network: verdicts on gossip, and block sync. On connect, and
//! every few seconds, peers are asked for their chain status; from a peer with more work
//! the node fetches canonical blocks after a locator, in bounded batches, until it has
//! caught up. A gossiped block whose parent is unknown starts the same fetch from its
//! sender; a copy whose body does not match its header is dropped (its hash is not
//! remembered as invalid) and the block is asked for by hash from other peers.
//!
//! A peer is charged only for what it provably did (see [`BlockError::sender_at_fault`]):
//! never for a block ahead of our clock, an unknown parent, a tx that became a replay, a
//! full mempool or our own disk errors.

use super::task::NodeTask;
use crate::chain::mempool::check_timestamp;
use crate::chain::side::Admission;
use crate::chain::{now_ms, Block, BlockError, BlockHash, SubmitError};
use crate::net::protocol::{MAX_LOCATOR, MAX_SYNC_BLOCKS, MAX_SYNC_BYTES};
use crate::net::{
    ChainStatus, Gossip, NetCommand, NetEvent, Offence, SyncRequest, SyncResponse, Verdict,
};
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
pub(super) struct SyncState {
    peers: HashMap<PeerId, PeerSync>,
    /// Blocks asked for by hash, with when the ask runs out.
    wanted: HashMap<BlockHash, Instant>,
}

impl SyncState {
    pub(super) fn peer_count(&self) -> usize {
        self.peers.len()
    }

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
    /// hold counts (a real tie is a block we fetch from the peer, see `is_ahead`), so a
    /// peer cannot keep us mining empty blocks by claiming a made-up tip of equal work.
    pub(super) fn tied_with(
        &self,
        tip: BlockHash,
        work: u128,
        known: impl Fn(&BlockHash) -> bool,
    ) -> bool {
        self.peers
            .values()
            .filter_map(|p| p.status.as_ref())
            .any(|s| s.work() == work && s.tip != tip && known(&s.tip))
    }
}

impl NodeTask {
    /// Hands a command to the network without waiting; drops it (with a warning) when the
    /// network is overloaded, never blocking the node task.
    pub(super) fn send(&self, cmd: NetCommand) {
        if let Some(net) = &self.net {
            if !net.try_send(cmd) {
                tracing::warn!("network is not keeping up; a command was dropped");
            }
        }
    }

    pub(super) fn on_net_event(&mut self, event: NetEvent) {
        match event {
            NetEvent::Gossip {
                source,
                id,
                message,
            } => {
                let verdict = match message {
                    Gossip::Tx(tx) => self.judge_tx(tx),
                    Gossip::Block(block) => self.judge_block(source, block),
                };
                self.send(NetCommand::Validate {
                    id,
                    source,
                    verdict,
                });
            }
            NetEvent::PeerConnected(peer) => {
                self.sync.peers.insert(peer, PeerSync::default());
                self.send(NetCommand::Request {
                    peer,
                    request: SyncRequest::Status,
                });
            }
            NetEvent::PeerDisconnected(peer) => {
                self.sync.peers.remove(&peer);
            }
            NetEvent::Request { peer, id, request } => {
                let response = match request {
                    SyncRequest::Status => SyncResponse::Status(self.status()),
                    SyncRequest::Blocks { locator, max } => {
                        SyncResponse::Blocks(self.blocks_after(&locator, max))
                    }
                    SyncRequest::Block(hash) => {
                        SyncResponse::Block(self.chain.block(&hash).map(|b| b.as_ref().clone()))
                    }
                };
                tracing::trace!(%peer, "answered a sync request");
                self.send(NetCommand::Respond { id, response });
            }
            NetEvent::Response {
                peer,
                request,
                response,
            } => match (request, response) {
                (_, SyncResponse::Status(status)) => self.on_status(peer, status),
                (SyncRequest::Blocks { locator, .. }, SyncResponse::Blocks(blocks)) => {
                    self.on_blocks(peer, &locator, blocks)
                }
                (_, SyncResponse::Blocks(_)) => {
                    let reason = "answered a request for one block with a batch".to_string();
                    self.penalize(peer, Offence::Invalid, reason);
                }
                (SyncRequest::Block(hash), SyncResponse::Block(block)) => {
                    self.on_block_by_hash(peer, hash, block)
                }
                (_, SyncResponse::Block(_)) => {}
            },
            NetEvent::RequestFailed {
                peer,
                request,
                error,
            } => {
                tracing::debug!(%peer, %error, "sync request failed");
                if let Some(p) = self.sync.peers.get_mut(&peer) {
                    match request {
                        SyncRequest::Blocks { .. } => p.fetching = None,
                        SyncRequest::Block(hash) => {
                            p.asking = None;
                            // Ask again when the next copy comes, not only after the
                            // deadline.
                            self.sync.wanted.remove(&hash);
                        }
                        SyncRequest::Status => {}
                    }
                }
            }
        }
    }

    fn penalize(&self, peer: PeerId, offence: Offence, reason: String) {
        self.send(NetCommand::Penalize {
            peer,
            offence,
            reason,
        });
    }

    fn judge_tx(&mut self, tx: crate::chain::Tx) -> Verdict {
        // Clocks differ: a tx stamped far from ours is not relayed, but nobody is charged.
        if let Err(e) = check_timestamp(tx.timestamp(), now_ms()) {
            tracing::debug!(tx = %tx.id(), error = %e, "ignored a relayed tx");
            return Verdict::Ignore;
        }
        match self.accept_tx(tx) {
            Ok(true) => Verdict::Accept,
            Ok(false) | Err(SubmitError::AlreadyInChain(_)) | Err(SubmitError::Mempool(_)) => {
                Verdict::Ignore
            }
            Err(SubmitError::Invalid(e)) => Verdict::Reject(format!("invalid tx: {e}")),
        }
    }

    fn judge_block(&mut self, source: PeerId, block: Block) -> Verdict {
        let hash = block.hash();
        let height = block.header.height;
        match self.process_block_as(block, Admission::Gossip) {
            Ok(_) => {
                tracing::info!(block = %hash, height, from = %source, "accepted block");
                Verdict::Accept
            }
            Err(BlockError::UnknownParent { .. }) => {
                self.fetch_from(source, self.locator());
                Verdict::Ignore
            }
            Err(e) => {
                if e == BlockError::BodyMismatch {
                    self.refetch(hash, source);
                }
                if e.sender_at_fault() {
                    Verdict::Reject(format!("invalid block {hash}: {e}"))
                } else {
                    Verdict::Ignore
                }
            }
        }
    }

    /// Asks up to [`REFETCH_PEERS`] peers other than `not_from` for the block `hash`,
    /// whose copy from `not_from` did not match its header.
    fn refetch(&mut self, hash: BlockHash, not_from: PeerId) {
        let now = Instant::now();
        self.sync.wanted.retain(|_, until| *until > now);
        if self.sync.wanted.len() >= MAX_WANTED || self.sync.wanted.contains_key(&hash) {
            return;
        }
        let peers: Vec<PeerId> = self
            .sync
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
            return; // every peer is busy: gossip and the status poll will bring it
        }
        self.sync.wanted.insert(hash, now + FETCH_DEADLINE);
        for peer in peers {
            self.send(NetCommand::Request {
                peer,
                request: SyncRequest::Block(hash),
            });
        }
    }

    /// A block we asked for by hash.
    fn on_block_by_hash(&mut self, peer: PeerId, hash: BlockHash, block: Option<Block>) {
        if let Some(p) = self.sync.peers.get_mut(&peer) {
            p.asking = None;
        }
        let Some(block) = block else { return };
        if block.hash() != hash {
            self.penalize(
                peer,
                Offence::Invalid,
                format!("sent another block than {hash}"),
            );
            return;
        }
        if self.sync.wanted.remove(&hash).is_none() {
            return; // another peer's copy came first
        }
        match self.process_block_as(block, Admission::Gossip) {
            Ok(_) => tracing::info!(block = %hash, from = %peer, "fetched a block by hash"),
            Err(BlockError::UnknownParent { .. }) => self.fetch_from(peer, self.locator()),
            Err(e) if e.sender_at_fault() => {
                if e == BlockError::BodyMismatch {
                    self.refetch(hash, peer);
                }
                self.penalize(peer, Offence::Invalid, format!("invalid block {hash}: {e}"));
            }
            Err(_) => {}
        }
    }

    fn status(&self) -> ChainStatus {
        let tip = self.chain.tip();
        ChainStatus {
            genesis: self.chain.params().genesis_hash(),
            tip: tip.hash,
            height: tip.height,
            total_work: tip.work.to_be_bytes(),
        }
    }

    /// Asks every peer for its chain status.
    pub(super) fn poll_peers(&mut self) {
        self.statuses_stale = false;
        let peers: Vec<PeerId> = self.sync.peers.keys().copied().collect();
        for peer in peers {
            self.send(NetCommand::Request {
                peer,
                request: SyncRequest::Status,
            });
        }
    }

    fn on_status(&mut self, peer: PeerId, status: ChainStatus) {
        if status.genesis != self.chain.params().genesis_hash() {
            self.penalize(peer, Offence::Invalid, "status from another network".into());
            return;
        }
        let ahead = self.is_ahead(&status);
        // Only connected peers are tracked: a late answer from one that left is dropped.
        let Some(state) = self.sync.peers.get_mut(&peer) else {
            return;
        };
        state.status = Some(status);
        if ahead {
            self.fetch_from(peer, self.locator());
        }
        // A tie with this peer may have started or ended: the miner may have to break it.
        self.refresh_work();
    }

    /// Whether a peer's chain is one we must fetch: more work than ours, or as much work
    /// on a tip we do not hold (a tie, which only a next block on one side breaks; to
    /// break it, we need the other tip).
    fn is_ahead(&self, status: &ChainStatus) -> bool {
        let ours = self.chain.total_work();
        status.work() > ours
            || (status.work() == ours
                && status.tip != self.chain.tip_hash()
                && self.chain.block(&status.tip).is_none())
    }

    /// Asks `peer` for blocks after `locator`, unless a fetch from it is under way.
    fn fetch_from(&mut self, peer: PeerId, locator: Vec<BlockHash>) {
        // Only connected peers: a gossip source that left must not grow the map.
        let Some(state) = self.sync.peers.get_mut(&peer) else {
            return;
        };
        let now = Instant::now();
        if state.is_fetching(now) {
            return;
        }
        state.fetching = Some(now + FETCH_DEADLINE);
        self.send(NetCommand::Request {
            peer,
            request: SyncRequest::Blocks {
                locator,
                max: MAX_SYNC_BLOCKS,
            },
        });
    }

    /// A batch of blocks asked for with `locator`.
    fn on_blocks(&mut self, peer: PeerId, locator: &[BlockHash], blocks: Vec<Block>) {
        if let Some(p) = self.sync.peers.get_mut(&peer) {
            p.fetching = None;
        }
        if let Err(reason) = check_batch(locator, &blocks, self.chain.params().genesis_hash()) {
            self.penalize(peer, Offence::Invalid, reason);
            return;
        }
        let claims_more = |node: &NodeTask| {
            node.sync
                .peers
                .get(&peer)
                .and_then(|p| p.status.as_ref())
                .is_some_and(|s| node.is_ahead(s))
        };
        let Some(last) = blocks.last().map(|b| b.hash()) else {
            // Nothing after our locator, yet it claimed more work than we have (or as much
            // on a tip we lack): such a chain always has blocks after our locator (it ends in
            // genesis). Stop believing the claim until it reports again.
            if claims_more(self) {
                if let Some(p) = self.sync.peers.get_mut(&peer) {
                    p.status = None;
                }
                let reason = "claimed more work than it delivered".to_string();
                self.penalize(peer, Offence::Unresponsive, reason);
            }
            return;
        };
        let count = blocks.len();
        // A branch from a peer that claims more work may climb toward our tip from
        // outside the side-branch window; the claim is charged if it is not delivered.
        let admission = match claims_more(self) {
            true => Admission::Any,
            false => Admission::Gossip,
        };
        for block in blocks {
            match self.process_block_as(block, admission) {
                Ok(_) | Err(BlockError::AlreadyKnown(_)) => {}
                Err(BlockError::UnknownParent { .. }) => {
                    // The batch starts after a hash we sent, so the peer did right; we
                    // dropped that block since (a side branch pruned while the tip
                    // moved). Start again from our canonical chain.
                    tracing::debug!(%peer, "a synced batch starts after a block we no longer hold");
                    let locator = self.locator();
                    self.fetch_from(peer, locator);
                    return;
                }
                Err(e) if e.sender_at_fault() => {
                    self.penalize(
                        peer,
                        Offence::Invalid,
                        format!("invalid block in sync: {e}"),
                    );
                    return;
                }
                // Ahead of our clock, or our disk failed: not the peer's doing. The rest
                // of the batch builds on this block, so stop here and ask again later.
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "could not take a synced block");
                    return;
                }
            }
        }
        tracing::info!(%peer, blocks = count, height = self.chain.height(), "synced blocks");
        // More may follow: continue from the last block received (it may be on a branch
        // that is not yet our best, so our own locator would only fetch it again).
        if count == MAX_SYNC_BLOCKS as usize || claims_more(self) {
            // The next batch builds on `last`: keep its branch until it arrives.
            self.chain.hold_branch(last);
            let mut locator = vec![last];
            locator.extend(self.locator().into_iter().take(MAX_LOCATOR - 1));
            self.fetch_from(peer, locator);
        }
    }

    /// Hashes of the canonical chain, newest first: the last ten, then exponentially
    /// spaced back to genesis.
    fn locator(&self) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut height = self.chain.height();
        let mut step = 1;
        loop {
            if let Some(b) = self.chain.block_at(height) {
                out.push(b.hash());
            }
            if height == 0 || out.len() >= MAX_LOCATOR - 1 {
                break;
            }
            if out.len() >= 10 {
                step *= 2;
            }
            height = height.saturating_sub(step);
        }
        let genesis = self.chain.params().genesis_hash();
        if out.last() != Some(&genesis) {
            out.push(genesis);
        }
        out
    }

    /// Canonical blocks after the first locator hash on our chain (after genesis if none),
    /// bounded in count and bytes.
    fn blocks_after(&self, locator: &[BlockHash], max: u32) -> Vec<Block> {
        let start = locator
            .iter()
            .take(MAX_LOCATOR)
            .find(|h| self.chain.tree().is_canonical(h))
            .and_then(|h| self.chain.tree().get(h))
            .map_or(1, |e| e.height + 1);
        let max = max.min(MAX_SYNC_BLOCKS) as usize;
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut height = start;
        while out.len() < max {
            let Some(block) = self.chain.block_at(height) else {
                break;
            };
            bytes += block.size();
            if bytes > MAX_SYNC_BYTES && !out.is_empty() {
                break;
            }
            out.push(block.as_ref().clone());
            height += 1;
        }
        out
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
