//! What the node task is told and what it answers: the commands its handles send, the
//! mining policy, and the status of a write, of a tx and of the chain. A leaf of the
//! node module: the task, the node handle and the store all import it.

use super::attack::{AttackError, AttackRequest, AttackStatus};
use crate::chain::group_commit::{JournalError, JournalHandle};
use crate::chain::{Accepted, Block, BlockError, BlockHash, SubmitError, Tx, TxId, VerifiedTx};
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

/// When the node mines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MiningPolicy {
    /// Only while txs are pending or own writes are not yet confirmed.
    Auto,
    /// Always, even empty blocks.
    Always,
    /// Never.
    Off,
}

impl std::str::FromStr for MiningPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(MiningPolicy::Auto),
            "always" | "on" => Ok(MiningPolicy::Always),
            "off" => Ok(MiningPolicy::Off),
            other => Err(format!(
                "unknown mining policy {other:?} (auto, always, off)"
            )),
        }
    }
}

impl std::fmt::Display for MiningPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MiningPolicy::Auto => "auto",
            MiningPolicy::Always => "always",
            MiningPolicy::Off => "off",
        })
    }
}

/// What has become of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Accepted by the node, waiting for a block (again, after a reorg removed it).
    Pending,
    /// In the canonical chain at `height`, fewer than the required confirmations deep.
    Included {
        /// Height of the block holding the write.
        height: u64,
    },
    /// At least the required number of blocks deep (the block itself counts as one).
    Confirmed {
        /// Height of the block holding the write.
        height: u64,
        /// Confirmations when this status was reported.
        depth: u64,
    },
    /// The node did not take the write.
    Failed {
        /// Why.
        reason: String,
    },
}

impl TxStatus {
    /// Whether this status will not change any more.
    pub fn is_final(&self) -> bool {
        matches!(self, TxStatus::Confirmed { .. } | TxStatus::Failed { .. })
    }
}

/// A snapshot of the node for `status` displays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainInfo {
    /// Network id (prefix of the genesis hash).
    pub network_id: String,
    /// Canonical height.
    pub height: u64,
    /// Canonical tip hash.
    pub tip: BlockHash,
    /// Cumulative work of the canonical chain.
    pub total_work: u128,
    /// Difficulty in bits.
    pub difficulty: u32,
    /// Txs in the mempool.
    pub mempool: usize,
    /// Blocks held for a missing parent.
    pub orphans: usize,
    /// Blocks held off the canonical chain (bounded, see `chain::side`).
    pub side_blocks: usize,
    /// The mining policy.
    pub mining: MiningPolicy,
    /// Whether the miner is working now.
    pub mining_active: bool,
    /// Recent hashes per second.
    pub hashrate: u64,
    /// Connected peers.
    pub peers: usize,
    /// Whether blocks are being fetched from a peer.
    pub syncing: bool,
    /// Highest height a connected peer has reported (0 if none).
    pub sync_target: u64,
}

/// What the node knows of a tx.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxInfo {
    /// The tx.
    pub tx: Tx,
    /// Height of the canonical block holding it, or `None` while it is pending.
    pub height: Option<u64>,
    /// While pending: when this node's mempool took it, µs since the Unix epoch.
    pub received_us: Option<u64>,
}

/// An own write on its way from the store to the node task, through the journal.
#[derive(Debug)]
pub struct Submission {
    /// The write, signed with the node's key.
    pub tx: VerifiedTx,
    /// Where to report its status.
    pub status: watch::Sender<TxStatus>,
    /// Answered once the node has taken the write (or refused it, which its status then
    /// says), or with the journal's error if it could not be put on disk.
    pub taken: oneshot::Sender<Result<(), JournalError>>,
}

/// The journal of own writes: each committed batch goes on to the node task as one
/// [`Command::Submit`].
pub type OwnJournal = JournalHandle<Submission>;

/// A request to the node task.
#[derive(Debug)]
pub enum Command {
    /// New own writes, already on disk in the journal (if the node has one).
    Submit(Vec<Submission>),
    /// A tx from outside the store (a tool or a test).
    PeerTx {
        /// The tx.
        tx: Tx,
        /// The verdict.
        reply: oneshot::Sender<Result<bool, SubmitError>>,
    },
    /// A block from a tool or a test.
    Block {
        /// The block.
        block: Block,
        /// The verdict.
        reply: oneshot::Sender<Result<Accepted, BlockError>>,
    },
    /// Changes the mining policy.
    SetMining(MiningPolicy),
    /// Asks for a status snapshot.
    Info(oneshot::Sender<ChainInfo>),
    /// Asks for the canonical block at a height.
    BlockAt(u64, oneshot::Sender<Option<Arc<Block>>>),
    /// Asks for any known block by hash.
    BlockByHash(BlockHash, oneshot::Sender<Option<Arc<Block>>>),
    /// Asks for a tx in the chain or the mempool.
    Tx(TxId, oneshot::Sender<Option<TxInfo>>),
    /// An experimental attack request (nodes started with `--attacker` only).
    Attack(
        AttackRequest,
        oneshot::Sender<Result<AttackStatus, AttackError>>,
    ),
    /// Stops the miner and the task; answers once everything is on disk.
    Shutdown(oneshot::Sender<()>),
}
