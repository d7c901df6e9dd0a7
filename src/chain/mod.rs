//! The blockchain: transactions, blocks, proof of work, the block tree and fork choice, the
//! KV index, the mempool, the miner and the block log.

pub mod block;
pub mod crypto;
pub mod errors;
pub mod group_commit;
pub mod index;
pub mod journal;
pub mod limits;
pub mod log;
pub mod log_sync;
pub mod mempool;
pub mod miner;
pub mod params;
pub mod pow;
pub mod sharded;
pub mod side;
pub mod sigcache;
pub mod state;
pub mod tree;
pub mod tx;
pub mod validate;

pub use block::{Block, Header};
pub use crypto::{AuthorKey, BlockHash, Hash, Keypair, Signature, TxId};
pub use index::{Index, Version};
pub use miner::{Miner, MinerOptions, MinerPriority};
pub use params::Params;
pub use state::{Accepted, Chain, OpenError, SubmitError, TipChange};
pub use tx::{Op, Tx, TxError, VerifiedTx};
pub use validate::BlockError;

/// Milliseconds since the Unix epoch by the local clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
