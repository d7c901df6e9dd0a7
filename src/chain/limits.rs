//! The consensus limits every node enforces: sizes of keys, values and blocks, the
//! difficulty range and the clock rules. A leaf module: blocks, txs and the parameters
//! all read it, and it reads none of them.

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 4096;
/// Largest block, as counted by [`crate::chain::Block::size`] (header plus signed tx bytes).
pub const MAX_BLOCK_BYTES: usize = 1024 * 1024;
/// Highest difficulty a network may have (leading zero bits of a block hash).
pub const MAX_DIFFICULTY: u32 = 64;
/// How many ancestors the median-time rule looks at.
pub const MEDIAN_TIME_SPAN: usize = 11;
/// How far ahead of the local clock a block's timestamp may be, in milliseconds.
pub const MAX_FUTURE_DRIFT_MS: u64 = 2 * 60 * 1000;
/// Longest network name, in bytes.
pub const MAX_NETWORK_NAME: usize = 64;
