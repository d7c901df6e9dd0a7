//! kvchain: a decentralized, tamper-evident key-value store on a proof-of-work blockchain.
//!
//! `docs/ARCHITECTURE.md` (in the repository) describes the design: the components, the
//! path of a write and of a block, and the rules that always hold. The modules, each
//! importing only those above it:
//!
//! - [`codec`]: bounded CBOR encoding and decoding of everything on the wire and on disk.
//! - [`chain`]: the blockchain as data and rules: limits, keys and signatures, txs,
//!   blocks, parameters and genesis, proof of work, validation, the block tree and fork
//!   choice, side branches, the key-value index, the mempool, the block log, the journal
//!   and its group commit, and [`chain::Chain`], which ties them together.
//! - [`net`]: the libp2p service (gossipsub, block sync, Kademlia, mDNS, identify) with its
//!   rate limits, penalties and bans, and the client handle the node talks to it through.
//! - [`node`]: the task that owns the chain, its commands, the [`Store`] handle, block sync
//!   as a state machine, signature checks off the task, and the miner's driver.
//! - [`http`] and [`console`]: the front-ends (the HTTP API and its client; the console
//!   language, its socket server and the attach client). The `kvchain` binary
//!   (`src/bin/kvchain/`) sits on top.

pub mod chain;
pub mod codec;
pub mod console;
pub mod http;
pub mod net;
pub mod node;

pub use chain::{Block, BlockHash, Header, Keypair, Op, Params, Tx, TxId, Version};
pub use node::{MiningPolicy, NodeConfig, NodeHandle};
pub use node::{Receipt, Store, StoreError, TxStatus};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
