//! Why the chain refused a tx, or could not be opened from its data dir.

use super::mempool::MempoolError;
use super::tx::TxError;

/// Why a tx was not taken into the mempool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The tx breaks a stateless rule (limits, signature).
    #[error("invalid transaction: {0}")]
    Invalid(#[from] TxError),
    /// The tx is already in the canonical chain.
    #[error("transaction is already in the chain at height {0}")]
    AlreadyInChain(u64),
    /// The mempool has no room.
    #[error(transparent)]
    Mempool(#[from] MempoolError),
}

impl SubmitError {
    /// A short machine name for the error, for metrics and API error codes.
    pub fn label(&self) -> &'static str {
        match self {
            SubmitError::Invalid(TxError::BadSignature) => "bad_signature",
            SubmitError::Invalid(_) => "invalid",
            SubmitError::AlreadyInChain(_) => "already_in_chain",
            SubmitError::Mempool(MempoolError::Full(_)) => "mempool_full",
            SubmitError::Mempool(MempoolError::AuthorQuota(_)) => "author_quota",
            SubmitError::Mempool(MempoolError::TooNew(_) | MempoolError::TooOld(_)) => "clock",
        }
    }
}

/// Why a chain could not be opened from its data dir.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Reading or writing the block log failed.
    #[error("block log {path}: {source}")]
    Io {
        /// The log file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The log was written by a node of another network.
    #[error("block log belongs to another network (genesis {found}, expected {expected}); use another data dir")]
    WrongNetwork {
        /// Genesis hash in the log.
        found: String,
        /// Genesis hash of these parameters.
        expected: String,
    },
}
