//! The block rules that need the block's place in the tree: its height, time and
//! difficulty against its parent's, and no tx that its ancestors already hold.

use super::Chain;
use crate::chain::block::Block;
use crate::chain::crypto;
use crate::chain::tree::Entry;
use crate::chain::tx::Tx;
use crate::chain::validate::BlockError;
use std::collections::HashSet;

impl Chain {
    pub(super) fn check_in_context(&self, block: &Block, trusted: bool) -> Result<(), BlockError> {
        let h = &block.header;
        let Some(parent) = self.tree.get(&h.prev) else {
            return Err(BlockError::UnknownParent { parent: h.prev });
        };
        if h.height != parent.height + 1 {
            return Err(BlockError::WrongHeight {
                got: h.height,
                want: parent.height + 1,
            });
        }
        let median = self.tree.median_time(&parent.hash);
        if h.time <= median {
            return Err(BlockError::TimeTooOld {
                time: h.time,
                median,
            });
        }
        self.check_not_in_ancestors(block, parent)?;
        if !trusted {
            // Txs in our mempool or checked lately need no second check. The id does not
            // cover the signature, so only the very same signature counts as verified:
            // otherwise a forged signature on a pending tx would pass here and fail on
            // nodes that never saw the tx, splitting the network.
            let unverified: Vec<_> = block
                .txs
                .iter()
                .filter(|tx| !self.is_checked(tx))
                .map(|tx| (tx.author(), tx.id(), tx.signature()))
                .collect();
            if let Err(i) = crypto::verify_batch(&unverified) {
                return Err(BlockError::BadSignature(unverified[i].1));
            }
        }
        Ok(())
    }

    /// No tx of `block` may already be in the chain it extends (replay protection).
    fn check_not_in_ancestors(&self, block: &Block, parent: &Entry) -> Result<(), BlockError> {
        // Walk the side branch (if any) back to the canonical chain, collecting its txs;
        // below the fork point the canonical tx index answers.
        let mut side = HashSet::new();
        let mut fork_height = parent.height;
        for e in self.tree.ancestors(&parent.hash) {
            if self.tree.canonical_at(e.height) == Some(e.hash) {
                fork_height = e.height;
                break;
            }
            side.extend(e.block.txs.iter().map(Tx::id));
        }
        for tx in &block.txs {
            let id = tx.id();
            let in_canonical = self.tx_heights.get(&id).is_some_and(|&h| h <= fork_height);
            if in_canonical || side.contains(&id) {
                return Err(BlockError::TxAlreadyInChain(id));
            }
        }
        Ok(())
    }
}
