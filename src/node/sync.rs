//! The node's side of the network: verdicts on gossip, and block sync. On connect, and
//! every few seconds, peers are asked for their chain status; from a peer with more work
//! the node fetches canonical blocks after a locator, in bounded batches, until it has
//! caught up. A gossiped block whose parent is unknown starts the same fetch from its
//! sender. Peers that send invalid data are penalised through the network service.

use super::task::NodeTask;
use crate::chain::{BlockError, BlockHash, SubmitError};
use crate::net::protocol::{MAX_LOCATOR, MAX_SYNC_BLOCKS, MAX_SYNC_BYTES};
use crate::net::{ChainStatus, Gossip, NetCommand, NetEvent, SyncRequest, SyncResponse, Verdict};
use libp2p::PeerId;
use std::collections::HashMap;

/// What the node knows of one connected peer.
#[derive(Debug, Default)]
struct PeerSync {
    status: Option<ChainStatus>,
    fetching: bool,
}

/// Sync progress across peers.
#[derive(Debug, Default)]
pub(super) struct SyncState {
    peers: HashMap<PeerId, PeerSync>,
}

impl SyncState {
    pub(super) fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub(super) fn is_syncing(&self) -> bool {
        self.peers.values().any(|p| p.fetching)
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
    /// first-seen fork choice never breaks by itself, only a new block does.
    pub(super) fn tied_with(&self, tip: BlockHash, work: u128) -> bool {
        self.peers
            .values()
            .filter_map(|p| p.status.as_ref())
            .any(|s| s.work() == work && s.tip != tip)
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
                };
                tracing::trace!(%peer, "answered a sync request");
                self.send(NetCommand::Respond { id, response });
            }
            NetEvent::Response { peer, response } => match response {
                SyncResponse::Status(status) => self.on_status(peer, status),
                SyncResponse::Blocks(blocks) => self.on_blocks(peer, blocks),
            },
            NetEvent::RequestFailed { peer, error } => {
                tracing::debug!(%peer, %error, "sync request failed");
                if let Some(p) = self.sync.peers.get_mut(&peer) {
                    p.fetching = false;
                }
            }
        }
    }

    fn judge_tx(&mut self, tx: crate::chain::Tx) -> Verdict {
        match self.accept_tx(tx) {
            Ok(true) => Verdict::Accept,
            Ok(false) | Err(SubmitError::AlreadyInChain(_)) | Err(SubmitError::Mempool(_)) => {
                Verdict::Ignore
            }
            Err(SubmitError::Invalid(e)) => Verdict::Reject(format!("invalid tx: {e}")),
        }
    }

    fn judge_block(&mut self, source: PeerId, block: crate::chain::Block) -> Verdict {
        let hash = block.hash();
        let height = block.header.height;
        match self.process_block(block) {
            Ok(_) => {
                tracing::info!(block = %hash, height, from = %source, "accepted block");
                Verdict::Accept
            }
            Err(BlockError::UnknownParent { .. }) => {
                self.fetch_from(source, self.locator());
                Verdict::Ignore
            }
            Err(e) if !e.is_permanent() => Verdict::Ignore,
            Err(BlockError::KnownInvalid(_)) => Verdict::Reject("known invalid block".into()),
            Err(e) => Verdict::Reject(format!("invalid block {hash}: {e}")),
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
            self.send(NetCommand::Penalize {
                peer,
                reason: "status from another network".into(),
            });
            return;
        }
        let ahead = status.work() > self.chain.total_work();
        self.sync.peers.entry(peer).or_default().status = Some(status);
        if ahead {
            self.fetch_from(peer, self.locator());
        }
        // A tie with this peer may have started or ended: the miner may have to break it.
        self.refresh_work();
    }

    /// Asks `peer` for blocks after `locator`, unless a fetch from it is under way.
    fn fetch_from(&mut self, peer: PeerId, locator: Vec<BlockHash>) {
        let state = self.sync.peers.entry(peer).or_default();
        if state.fetching {
            return;
        }
        state.fetching = true;
        self.send(NetCommand::Request {
            peer,
            request: SyncRequest::Blocks {
                locator,
                max: MAX_SYNC_BLOCKS,
            },
        });
    }

    fn on_blocks(&mut self, peer: PeerId, blocks: Vec<crate::chain::Block>) {
        if let Some(p) = self.sync.peers.get_mut(&peer) {
            p.fetching = false;
        }
        if blocks.len() > MAX_SYNC_BLOCKS as usize {
            self.send(NetCommand::Penalize {
                peer,
                reason: format!("sent {} blocks, over the batch limit", blocks.len()),
            });
            return;
        }
        let Some(last) = blocks.last().map(|b| b.hash()) else {
            return;
        };
        let count = blocks.len();
        for block in blocks {
            match self.process_block(block) {
                Ok(_) | Err(BlockError::AlreadyKnown(_)) => {}
                Err(e) => {
                    let reason = match e {
                        BlockError::UnknownParent { .. } => {
                            "sync blocks do not connect".to_string()
                        }
                        e => format!("invalid block in sync: {e}"),
                    };
                    self.send(NetCommand::Penalize { peer, reason });
                    return;
                }
            }
        }
        tracing::info!(%peer, blocks = count, height = self.chain.height(), "synced blocks");
        // More may follow: continue from the last block received (it may be on a branch
        // that is not yet our best, so our own locator would only fetch it again).
        let peer_ahead = self
            .sync
            .peers
            .get(&peer)
            .and_then(|p| p.status.as_ref())
            .is_some_and(|s| s.work() > self.chain.total_work());
        if count == MAX_SYNC_BLOCKS as usize || peer_ahead {
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
    fn blocks_after(&self, locator: &[BlockHash], max: u32) -> Vec<crate::chain::Block> {
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
