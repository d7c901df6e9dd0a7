//! kvchain: a decentralized, tamper-evident key-value store on a proof-of-work blockchain.
//!
//! The crate has three parts (see the README): [`store`] is the user-facing API,
//! [`chain`] holds the blockchain and the key-value index folded from it, and
//! [`node`] runs the task that owns the chain state and drives the miner.

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
