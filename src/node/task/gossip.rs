//! The node task's side of gossip: own writes go out in batches, and what peers gossip
//! is screened on the task (what we hold already is left out) and its signatures are
//! checked off the task by a [`Verifier`]; the task then applies checked work only.
//!
//! Txs are checked several batches at a time. Blocks are checked one at a time, in the
//! order they came, so that a child is never judged before its parent; a block whose
//! txs were all checked before still waits its turn behind the blocks being checked.

use super::NodeTask;
use crate::chain::mempool::check_timestamp;
use crate::chain::validate::check_standalone;
use crate::chain::{now_ms, Block, Tx, TxError, TxId, VerifiedTx};
use crate::net::protocol::{GOSSIP_BATCH_BYTES, MAX_GOSSIP_TXS};
use crate::net::{Gossip, NetCommand, Verdict};
use crate::node::verify::Checked;
use libp2p::{gossipsub::MessageId, PeerId};

/// The gossip message a batch of txs came in: who relayed it, its id, and whether txs of
/// it that needed no check were new to us.
pub(super) type TxTicket = (PeerId, MessageId, bool);
/// A gossiped block waiting for its txs' signatures, with its message.
pub(super) type BlockTicket = (PeerId, MessageId, Block);

impl NodeTask {
    /// Gossips an own write with the next batch.
    pub(in crate::node) fn publish_tx(&mut self, tx: Tx) {
        self.outbox_bytes += tx.size();
        self.outbox.push(tx);
        if self.outbox.len() >= MAX_GOSSIP_TXS || self.outbox_bytes >= GOSSIP_BATCH_BYTES {
            self.flush_outbox();
        }
    }

    /// Gossips the writes waiting in the outbox as one message.
    pub(super) fn flush_outbox(&mut self) {
        self.outbox_bytes = 0;
        let txs = std::mem::take(&mut self.outbox);
        if !txs.is_empty() {
            self.publish(Gossip::Txs(txs));
        }
    }

    /// A gossiped message: judged now, or once its signatures are checked.
    pub(super) fn on_gossip(&mut self, source: PeerId, id: MessageId, message: Gossip) {
        let verdict = match message {
            Gossip::Txs(txs) => self.screen_txs(source, id.clone(), txs),
            Gossip::Block(block) => self.screen_block(source, id.clone(), block),
        };
        if let Some(verdict) = verdict {
            self.validate(source, id, verdict);
        }
    }

    fn validate(&self, source: PeerId, id: MessageId, verdict: Verdict) {
        self.send(NetCommand::Validate {
            id,
            source,
            verdict,
        });
    }

    /// Sorts a gossiped batch: txs we hold already, or stamped far from our clock (clocks
    /// differ: nobody is charged), are left out; txs whose very signature was checked
    /// lately (they came in a block first) are taken now; the rest go to the verifier.
    /// Returns the verdict now, or `None` when it waits for the signature check.
    fn screen_txs(&mut self, source: PeerId, id: MessageId, txs: Vec<Tx>) -> Option<Verdict> {
        let now = now_ms();
        let mut taken = false;
        let mut unchecked = Vec::new();
        for tx in txs {
            if check_timestamp(tx.timestamp(), now).is_err() || self.chain.known_tx(&tx).is_some() {
                continue;
            }
            if self.chain.is_checked(&tx) {
                taken |= matches!(self.accept_tx(tx), Ok(true));
            } else {
                unchecked.push(tx);
            }
        }
        let now_verdict = if taken {
            Verdict::Accept
        } else {
            Verdict::Ignore
        };
        if unchecked.is_empty() {
            return Some(now_verdict);
        }
        if self
            .tx_checks
            .submit((source, id, taken), unchecked)
            .is_ok()
        {
            None
        } else {
            tracing::debug!(%source, "signature checks are behind; dropped a batch of txs");
            Some(now_verdict)
        }
    }

    /// Sends a gossiped block's unchecked txs to be checked off the task, or judges it now
    /// when there is nothing to check, it breaks a rule that needs no signature, or the
    /// queue is full (then its signatures are checked here).
    fn screen_block(&mut self, source: PeerId, id: MessageId, block: Block) -> Option<Verdict> {
        let hash = block.hash();
        let cheap = self.chain.block(&hash).is_none()
            && check_standalone(&block, self.chain.params(), Some(now_ms())).is_ok();
        let unchecked: Vec<Tx> = if cheap {
            block
                .txs
                .iter()
                .filter(|tx| !self.chain.is_checked(tx))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        // In order: behind blocks being checked even with nothing to check itself.
        let wait = !unchecked.is_empty() || self.block_checks.pending() > 0;
        if cheap && wait {
            match self.block_checks.submit((source, id, block), unchecked) {
                Ok(()) => None,
                Err((_, _, block)) => Some(self.judge_block(source, block)),
            }
        } else {
            Some(self.judge_block(source, block))
        }
    }

    /// Applies a checked batch of txs and gives gossip the verdict on their message.
    pub(super) fn on_checked_txs(&mut self, checked: Checked<TxTicket>) {
        let (source, id, taken) = checked.ticket;
        let verdict = match self.apply_txs(checked.result) {
            Verdict::Ignore if taken => Verdict::Accept,
            verdict => verdict,
        };
        self.validate(source, id, verdict);
    }

    /// Judges a block whose txs were checked, and gives gossip the verdict.
    pub(super) fn on_checked_block(&mut self, checked: Checked<BlockTicket>) {
        let (source, id, block) = checked.ticket;
        // On a bad signature the chain checks the block itself and says which tx.
        if let Ok(txs) = checked.result {
            self.chain.note_checked(txs);
        }
        let verdict = self.judge_block(source, block);
        self.validate(source, id, verdict);
    }

    fn apply_txs(&mut self, result: Result<Vec<VerifiedTx>, TxId>) -> Verdict {
        match result {
            Err(bad) => {
                let _ = self.after_submit(Err(TxError::BadSignature.into()));
                Verdict::Reject(format!("tx {bad}: bad signature"))
            }
            Ok(txs) => {
                let mut new = 0;
                for tx in txs {
                    if let Ok(true) = self.accept_verified(tx) {
                        new += 1;
                    }
                }
                if new > 0 {
                    Verdict::Accept
                } else {
                    Verdict::Ignore
                }
            }
        }
    }
}
