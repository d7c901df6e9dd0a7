//! The block rules (the README's chain section), each with its own error; the checks that
//! need no chain; and who is to blame for each rejection.

use super::block::{Block, BLOCK_VERSION};
use super::crypto::{BlockHash, TxId};
use super::limits::{MAX_BLOCK_BYTES, MAX_BLOCK_TXS, MAX_FUTURE_DRIFT_MS};
use super::params::Params;
use super::pow;
use std::collections::HashSet;

/// Why a block was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The block is already in the tree.
    #[error("block {0} is already known")]
    AlreadyKnown(BlockHash),
    /// The block was found invalid before.
    #[error("block {0} was already found invalid")]
    KnownInvalid(BlockHash),
    /// Unknown header version.
    #[error("unsupported block version {0}")]
    BadVersion(u32),
    /// The hash does not have the leading zero bits the header claims.
    #[error("hash {hash} does not meet {bits} bits of proof of work")]
    BadProofOfWork {
        /// The block hash.
        hash: BlockHash,
        /// The claimed difficulty.
        bits: u32,
    },
    /// The header's difficulty is not the network's.
    #[error("difficulty {got} bits, but the network requires {want}")]
    WrongBits {
        /// Stated in the header.
        got: u32,
        /// The network's difficulty.
        want: u32,
    },
    /// The parent is not known; the block is held until it arrives.
    #[error("parent {parent} is unknown; block held until it arrives")]
    UnknownParent {
        /// The missing parent.
        parent: BlockHash,
    },
    /// The parent, or an ancestor, is invalid.
    #[error("parent {0} is invalid")]
    InvalidParent(BlockHash),
    /// Height is not the parent's plus one.
    #[error("height {got}, expected {want}")]
    WrongHeight {
        /// Stated in the header.
        got: u64,
        /// Parent height plus one.
        want: u64,
    },
    /// The txs do not match the header's Merkle root: this copy of the body was changed on
    /// the way (or made up). The hash may still name a valid block, so it is not remembered
    /// as invalid; the sender is to blame, since no honest node sends such a copy.
    #[error("the transactions do not match the header's merkle root (a mutated copy)")]
    BodyMismatch,
    /// The same tx appears twice in the block.
    #[error("transaction {0} appears twice in the block")]
    DuplicateTx(TxId),
    /// A tx is already in the chain this block extends.
    #[error("transaction {0} is already in the chain")]
    TxAlreadyInChain(TxId),
    /// A tx's signature is bad.
    #[error("transaction {0} has a bad signature")]
    BadSignature(TxId),
    /// Timestamp not above the median of the last blocks.
    #[error("timestamp {time} is not above the median {median} of the last blocks")]
    TimeTooOld {
        /// The block's timestamp.
        time: u64,
        /// Median of the ancestors' timestamps.
        median: u64,
    },
    /// Timestamp too far ahead of the local clock.
    #[error("timestamp {time} is more than the allowed drift ahead of now ({max})")]
    TimeTooNew {
        /// The block's timestamp.
        time: u64,
        /// The latest acceptable timestamp.
        max: u64,
    },
    /// More txs than a block may hold.
    #[error("{0} transactions, over the limit of {MAX_BLOCK_TXS}")]
    TooManyTxs(usize),
    /// More bytes than a block may hold.
    #[error("{0} bytes, over the limit of {MAX_BLOCK_BYTES}")]
    TooLarge(usize),
    /// A gossiped side-branch block too far behind the tip to ever win.
    #[error("side branch is too far behind the tip to win")]
    SideBranchTooWeak,
    /// As many side-branch blocks are held as allowed.
    #[error("too many side-branch blocks held")]
    SideBranchesFull,
    /// The block could not be written to the block log.
    #[error("block log: {0}")]
    Storage(String),
}

impl BlockError {
    /// A short machine name for the error, for metrics and API error codes.
    pub fn label(&self) -> &'static str {
        match self {
            BlockError::AlreadyKnown(_) => "already_known",
            BlockError::KnownInvalid(_) => "known_invalid",
            BlockError::BadVersion(_) => "bad_version",
            BlockError::BadProofOfWork { .. } => "bad_pow",
            BlockError::WrongBits { .. } => "wrong_bits",
            BlockError::UnknownParent { .. } => "unknown_parent",
            BlockError::InvalidParent(_) => "invalid_parent",
            BlockError::WrongHeight { .. } => "wrong_height",
            BlockError::BodyMismatch => "body_mismatch",
            BlockError::DuplicateTx(_) => "duplicate_tx",
            BlockError::TxAlreadyInChain(_) => "tx_already_in_chain",
            BlockError::BadSignature(_) => "bad_signature",
            BlockError::TimeTooOld { .. } => "time_too_old",
            BlockError::TimeTooNew { .. } => "time_too_new",
            BlockError::TooManyTxs(_) => "too_many_txs",
            BlockError::TooLarge(_) => "too_large",
            BlockError::SideBranchTooWeak => "side_branch_too_weak",
            BlockError::SideBranchesFull => "side_branches_full",
            BlockError::Storage(_) => "storage",
        }
    }

    /// Whether the block named by this hash can never become valid, so that it and its
    /// descendants are remembered as invalid. Not so for what may change (an unknown
    /// parent, a timestamp ahead of our clock, our own disk), for a header without proof
    /// of work (nothing to remember), and for a body that does not match its header: the
    /// header, and so the hash, may belong to a valid block whose copy was mutated.
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            BlockError::AlreadyKnown(_)
                | BlockError::UnknownParent { .. }
                | BlockError::TimeTooNew { .. }
                | BlockError::Storage(_)
                | BlockError::BadProofOfWork { .. }
                | BlockError::BodyMismatch
                | BlockError::SideBranchTooWeak
                | BlockError::SideBranchesFull
        )
    }

    /// Whether the peer that sent the block provably did wrong: it sent bytes that no
    /// honest node sends (bad proof of work, a mutated body, a block that breaks a rule
    /// although its body matches its header, or a descendant of one). Never for what an
    /// honest peer may relay in good faith: a block we already have, one whose parent we
    /// lack, one ahead of our clock (clocks differ), or one our disk failed to store.
    pub fn sender_at_fault(&self) -> bool {
        !matches!(
            self,
            BlockError::AlreadyKnown(_)
                | BlockError::UnknownParent { .. }
                | BlockError::TimeTooNew { .. }
                | BlockError::Storage(_)
                | BlockError::SideBranchTooWeak
                | BlockError::SideBranchesFull
        )
    }
}

/// Checks the rules that need only the block, the parameters and the clock.
pub fn check_standalone(
    block: &Block,
    params: &Params,
    now_ms: Option<u64>,
) -> Result<(), BlockError> {
    let h = &block.header;
    let hash = h.hash();
    if !pow::meets(&hash, h.bits) {
        return Err(BlockError::BadProofOfWork { hash, bits: h.bits });
    }
    if h.bits != params.difficulty() {
        return Err(BlockError::WrongBits {
            got: h.bits,
            want: params.difficulty(),
        });
    }
    if h.version != BLOCK_VERSION {
        return Err(BlockError::BadVersion(h.version));
    }
    if let Some(now) = now_ms {
        let max = now.saturating_add(MAX_FUTURE_DRIFT_MS);
        if h.time > max {
            return Err(BlockError::TimeTooNew { time: h.time, max });
        }
    }
    // The body must match the header before any rule about the body is judged: a rule
    // broken by a body that does not match says nothing about the block the hash names.
    if block.compute_merkle() != h.merkle {
        return Err(BlockError::BodyMismatch);
    }
    if block.txs.len() > MAX_BLOCK_TXS {
        return Err(BlockError::TooManyTxs(block.txs.len()));
    }
    let size = block.size();
    if size > MAX_BLOCK_BYTES {
        return Err(BlockError::TooLarge(size));
    }
    let mut seen = HashSet::with_capacity(block.txs.len());
    for tx in &block.txs {
        if !seen.insert(tx.id()) {
            return Err(BlockError::DuplicateTx(tx.id()));
        }
    }
    Ok(())
}

/// The median of a list of timestamps (the upper middle for an even count).
pub fn median(mut times: Vec<u64>) -> u64 {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or(0)
}
