//! The node task's side of the network: verdicts on gossip, answers to sync requests, and
//! carrying out what the sync state machine ([`crate::node::sync`]) decides. A gossiped
//! block whose parent is unknown starts a fetch from its sender; a copy whose body does
//! not match its header is dropped (its hash is not remembered as invalid) and the block
//! is asked for by hash from other peers.
//!
//! A peer is charged only for what it provably did (see [`BlockError::sender_at_fault`]):
//! never for a block ahead of our clock, an unknown parent, a tx that became a replay, a
//! full mempool or our own disk errors.

use super::{NodeTask, CATCH_UP_PAUSE};
use crate::chain::side::Admission;
use crate::chain::{Block, BlockError, BlockHash};
use crate::net::protocol::{MAX_LOCATOR, MAX_SYNC_BLOCKS, MAX_SYNC_BYTES};
use crate::net::{ChainStatus, NetCommand, NetEvent, Offence, SyncRequest, SyncResponse, Verdict};
use crate::node::sync::{Action, Ours};
use libp2p::PeerId;
use std::time::Instant;

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

    /// Carries out what sync decided.
    fn act(&self, actions: impl IntoIterator<Item = Action>) {
        for action in actions {
            self.send(match action {
                Action::Ask { peer, request } => NetCommand::Request { peer, request },
                Action::Charge {
                    peer,
                    offence,
                    reason,
                } => NetCommand::Penalize {
                    peer,
                    offence,
                    reason,
                },
            });
        }
    }

    /// Runs `f` with what sync needs to know of our chain.
    pub(super) fn with_ours<T>(&self, f: impl FnOnce(&Ours) -> T) -> T {
        let tip = self.chain.tip();
        let known = |h: &BlockHash| self.chain.block(h).is_some();
        f(&Ours {
            genesis: self.chain.params().genesis_hash(),
            tip: tip.hash,
            work: tip.work,
            known: &known,
        })
    }

    pub(super) fn on_net_event(&mut self, event: NetEvent) {
        match event {
            NetEvent::Gossip { source, id, .. } if self.omission.drops() => {
                // As if it never came: not judged, not relayed, nobody charged.
                self.send(NetCommand::Validate {
                    id,
                    source,
                    verdict: Verdict::Ignore,
                });
            }
            NetEvent::Gossip {
                source,
                id,
                message,
            } => self.on_gossip(source, id, message),
            NetEvent::PeerConnected(peer) => {
                let ask = self.sync.connected(peer);
                self.act([ask]);
            }
            NetEvent::PeerDisconnected(peer) => self.sync.disconnected(&peer),
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
                (SyncRequest::Block(hash), SyncResponse::Block(block)) => {
                    self.on_block_by_hash(peer, hash, block)
                }
                // The service charges and drops an answer of another kind than asked.
                _ => {}
            },
            NetEvent::RequestFailed {
                peer,
                request,
                error,
            } => {
                tracing::debug!(%peer, %error, "sync request failed");
                self.sync.request_failed(&peer, &request);
            }
        }
    }

    pub(super) fn judge_block(&mut self, source: PeerId, block: Block) -> Verdict {
        let hash = block.hash();
        let height = block.header.height;
        match self.process_block_as(block, Admission::Gossip) {
            Ok(_) => {
                tracing::info!(block = %hash, height, from = %source, "accepted block");
                Verdict::Accept
            }
            Err(BlockError::UnknownParent { .. }) => {
                let fetch = self.sync.fetch(source, self.locator());
                self.act(fetch);
                Verdict::Ignore
            }
            Err(e) => {
                if e == BlockError::BodyMismatch {
                    let asks = self.sync.refetch(hash, source);
                    self.act(asks);
                }
                if e.sender_at_fault() {
                    Verdict::Reject(format!("invalid block {hash}: {e}"))
                } else {
                    Verdict::Ignore
                }
            }
        }
    }

    /// A block we asked for by hash.
    fn on_block_by_hash(&mut self, peer: PeerId, hash: BlockHash, block: Option<Block>) {
        match self.sync.by_hash_arrived(peer, hash, block.as_ref()) {
            Err(charge) => return self.act([charge]),
            Ok(false) => return, // none, or another peer's copy came first
            Ok(true) => {}
        }
        let Some(block) = block else { return };
        match self.process_block_as(block, Admission::Gossip) {
            Ok(_) => tracing::info!(block = %hash, from = %peer, "fetched a block by hash"),
            Err(BlockError::UnknownParent { .. }) => {
                let fetch = self.sync.fetch(peer, self.locator());
                self.act(fetch);
            }
            Err(e) if e.sender_at_fault() => {
                let mut actions = Vec::new();
                if e == BlockError::BodyMismatch {
                    actions = self.sync.refetch(hash, peer);
                }
                actions.push(Action::Charge {
                    peer,
                    offence: Offence::Invalid,
                    reason: format!("invalid block {hash}: {e}"),
                });
                self.act(actions);
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
        self.act(self.sync.poll());
    }

    fn on_status(&mut self, peer: PeerId, status: ChainStatus) {
        let locator = self.locator();
        let tip = self.chain.tip();
        let known = |h: &BlockHash| self.chain.block(h).is_some();
        let ours = Ours {
            genesis: self.chain.params().genesis_hash(),
            tip: tip.hash,
            work: tip.work,
            known: &known,
        };
        let action = self.sync.on_status(peer, status, &ours, || locator);
        self.act(action);
        // A tie with this peer may have started or ended: the miner may have to break it.
        self.refresh_work();
    }

    /// A batch of blocks asked for with `locator`.
    fn on_blocks(&mut self, peer: PeerId, locator: &[BlockHash], blocks: Vec<Block>) {
        let genesis = self.chain.params().genesis_hash();
        if let Err(charge) = self.sync.batch_arrived(peer, locator, &blocks, genesis) {
            return self.act([charge]);
        }
        let claims_more = |node: &NodeTask| node.with_ours(|o| node.sync.claims_more(&peer, o));
        let Some(last) = blocks.last().map(|b| b.hash()) else {
            // Nothing after our locator, yet it claimed more work than we have (or as much
            // on a tip we lack): such a chain always has blocks after our locator (it ends
            // in genesis).
            if claims_more(self) {
                let charge = self.sync.claim_not_delivered(peer);
                self.act([charge]);
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
        let tip_before = self.chain.tip().hash;
        self.in_batch = true;
        let taken = self.take_batch(peer, blocks, admission);
        self.in_batch = false;
        // A full batch that moved our tip: more are coming, so mining waits for them.
        let moved = self.chain.tip().hash != tip_before;
        if count == MAX_SYNC_BLOCKS as usize && moved {
            self.catching_up = Some(Instant::now() + CATCH_UP_PAUSE);
        } else if moved {
            self.catching_up = None;
        }
        if self.work_stale || moved {
            self.refresh_work();
        }
        if !taken {
            return;
        }
        tracing::info!(%peer, blocks = count, height = self.chain.height(), "synced blocks");
        // More may follow: continue from the last block received (it may be on a branch
        // that is not yet our best, so our own locator would only fetch it again).
        if count == MAX_SYNC_BLOCKS as usize || claims_more(self) {
            // The next batch builds on `last`: keep its branch until it arrives.
            self.chain.hold_branch(last);
            let mut locator = vec![last];
            locator.extend(self.locator().into_iter().take(MAX_LOCATOR - 1));
            let fetch = self.sync.fetch(peer, locator);
            self.act(fetch);
        }
    }

    /// Takes the blocks of a sync batch in order; whether all were taken (when one is
    /// not, the peer is charged or asked again as the error says, and the rest, which
    /// builds on it, is dropped).
    fn take_batch(&mut self, peer: PeerId, blocks: Vec<Block>, admission: Admission) -> bool {
        for block in blocks {
            match self.process_block_as(block, admission) {
                Ok(_) | Err(BlockError::AlreadyKnown(_)) => {}
                Err(BlockError::UnknownParent { .. }) => {
                    // The batch starts after a hash we sent, so the peer did right; we
                    // dropped that block since (a side branch pruned while the tip
                    // moved). Start again from our canonical chain.
                    tracing::debug!(%peer, "a synced batch starts after a block we no longer hold");
                    let fetch = self.sync.fetch(peer, self.locator());
                    self.act(fetch);
                    return false;
                }
                Err(e) if e.sender_at_fault() => {
                    self.act([Action::Charge {
                        peer,
                        offence: Offence::Invalid,
                        reason: format!("invalid block in sync: {e}"),
                    }]);
                    return false;
                }
                // Ahead of our clock, or our disk failed: not the peer's doing. The rest
                // of the batch builds on this block, so stop here and ask again later.
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "could not take a synced block");
                    return false;
                }
            }
        }
        true
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
