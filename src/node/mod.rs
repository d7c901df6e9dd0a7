//! The node: one task that owns and alone writes the chain state. It takes writes from the
//! store, blocks from the miner, and gossip and sync traffic from the network; it feeds the
//! miner, publishes what it makes, judges what peers send, and reports every receipt.
//!
//! Everything reaches it as a [`Command`] (from handles) or a [`NetEvent`] (from the
//! network service); `task.rs` runs the loop and `sync.rs` holds the network side.

pub mod attack;
pub mod command;
pub mod metrics;
pub mod omission;
pub mod store;
mod sync;
mod task;
mod verify;

use crate::chain::group_commit::{JournalError, JournalHandle};
use crate::chain::journal::Journal;
use crate::chain::log::Recovery;
use crate::chain::mempool::MempoolLimits;
use crate::chain::{
    Accepted, Block, BlockError, BlockHash, Chain, Keypair, Miner, MinerOptions, MinerPriority,
    OpenError, Params, SubmitError, TipChange, Tx, TxId,
};
use crate::net::{NetClient, NetEvent};
pub use command::{ChainInfo, Command, MiningPolicy, TxInfo, TxStatus};
pub use metrics::NodeMetrics;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
pub use store::{HistoryPage, Page, Receipt, Store, StoreError};
use tokio::sync::{broadcast, mpsc, oneshot};

/// How to run a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Consensus parameters.
    pub params: Params,
    /// Where the block log and the journal live; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// The key that signs this node's writes.
    pub keypair: Keypair,
    /// Confirmations (the including block counts as one) after which a write is confirmed.
    pub confirmations: u64,
    /// When to mine.
    pub mining: MiningPolicy,
    /// Mining threads.
    pub threads: usize,
    /// Most nonces a second all mining threads together try (`None`: no cap).
    pub max_hashrate: Option<std::num::NonZeroU64>,
    /// CPU priority of the mining threads (see [`MinerPriority`]).
    pub miner_priority: MinerPriority,
    /// Whether the experimental attack commands are on (see [`attack`]).
    pub attacker: bool,
    /// Where the node counts what it does (registered with a Prometheus registry, or not).
    pub metrics: Arc<NodeMetrics>,
    /// The mempool's bounds.
    pub mempool: MempoolLimits,
    /// Share of gossip messages dropped in and out (an omission fault for experiments;
    /// 0 in a normal node).
    pub omit_gossip: f64,
}

impl NodeConfig {
    /// An in-memory node for `params` with a fresh key, 1 thread and auto mining.
    pub fn new(params: Params) -> NodeConfig {
        NodeConfig {
            params,
            data_dir: None,
            keypair: Keypair::generate(),
            confirmations: 3,
            mining: MiningPolicy::Auto,
            threads: 1,
            max_hashrate: None,
            miner_priority: MinerPriority::default(),
            attacker: false,
            metrics: Arc::new(NodeMetrics::default()),
            mempool: MempoolLimits::default(),
            omit_gossip: 0.0,
        }
    }
}

/// The network a node talks through: the service's handle and its events.
#[derive(Debug)]
pub struct Network {
    /// Handle on the network service.
    pub client: NetClient,
    /// Events from the network service.
    pub events: mpsc::Receiver<NetEvent>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The chain could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The journal could not be opened, or the block log's fsync thread started.
    #[error("journal: {0}")]
    Journal(#[from] std::io::Error),
}

/// A handle on a running node; cheap to clone.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    store: Store,
    tips: broadcast::Sender<Arc<TipChange>>,
}

impl NodeHandle {
    /// The node's store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Every change of the canonical chain from now on: blocks disconnected (tip first)
    /// and connected (oldest first). A receiver that falls behind gets `Lagged`.
    pub fn subscribe_tips(&self) -> broadcast::Receiver<Arc<TipChange>> {
        self.tips.subscribe()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Hands a block to the node and returns its verdict (`None` if the node stopped).
    pub async fn submit_block(&self, block: Block) -> Option<Result<Accepted, BlockError>> {
        self.ask(|reply| Command::Block { block, reply }).await
    }

    /// Hands someone else's tx to the node and returns its verdict.
    pub async fn submit_tx(&self, tx: Tx) -> Option<Result<bool, SubmitError>> {
        self.ask(|reply| Command::PeerTx { tx, reply }).await
    }

    /// Changes the mining policy.
    pub async fn set_mining(&self, policy: MiningPolicy) {
        let _ = self.commands.send(Command::SetMining(policy)).await;
    }

    /// A status snapshot.
    pub async fn info(&self) -> Option<ChainInfo> {
        self.ask(Command::Info).await
    }

    /// The canonical block at `height`.
    pub async fn block_at(&self, height: u64) -> Option<Arc<Block>> {
        self.ask(|r| Command::BlockAt(height, r)).await.flatten()
    }

    /// Any known block by hash.
    pub async fn block_by_hash(&self, hash: BlockHash) -> Option<Arc<Block>> {
        self.ask(|r| Command::BlockByHash(hash, r)).await.flatten()
    }

    /// Runs an experimental attack request (see [`attack`]).
    pub async fn attack(
        &self,
        request: attack::AttackRequest,
    ) -> Option<Result<attack::AttackStatus, attack::AttackError>> {
        self.ask(|r| Command::Attack(request, r)).await
    }

    /// A tx in the canonical chain or the mempool.
    pub async fn tx(&self, id: TxId) -> Option<TxInfo> {
        self.ask(|r| Command::Tx(id, r)).await.flatten()
    }

    /// The canonical height of a tx.
    pub async fn tx_height(&self, id: TxId) -> Option<u64> {
        self.tx(id).await.and_then(|t| t.height)
    }

    /// Stops the node: the miner halts and the task ends, even while stores are still held
    /// (their writes then fail with `NodeStopped`). Every accepted block and write is
    /// already on disk, as each is fsynced when taken.
    pub async fn shutdown(&self) {
        let _ = self.ask(Command::Shutdown).await;
    }
}

/// A started node: its handle, the task to await, and what opening the log recovered.
#[derive(Debug)]
pub struct Started {
    /// The handle.
    pub handle: NodeHandle,
    /// The node task; it ends on [`NodeHandle::shutdown`] or when every handle and store
    /// is dropped.
    pub task: tokio::task::JoinHandle<()>,
    /// Damage found and cut from the block log on open, if any.
    pub recovery: Option<Recovery>,
}

/// On the journal's thread, after a commit: the batch's writes go to the node task in one
/// command once on disk; a failed commit answers each writer with the disk's error. The
/// journal holds only a weak sender, so that it never keeps the node task alive; once the
/// task is gone, the writes are dropped and their writers told the node stopped.
fn hand_on(
    commands: &mpsc::WeakSender<Command>,
    writes: Vec<command::Submission>,
    result: Result<(), JournalError>,
) {
    match result {
        Ok(()) => {
            if let Some(commands) = commands.upgrade() {
                // A thread of its own, never in the runtime: it may block until the task
                // has room, which also holds back the writers behind it.
                let _ = commands.blocking_send(Command::Submit(writes));
            }
        }
        Err(e) => {
            for write in writes {
                let _ = write.taken.send(Err(e.clone()));
            }
        }
    }
}

/// Opens the chain and the journal and starts the node task (on the current runtime),
/// without a network.
pub fn start(config: NodeConfig) -> Result<Started, NodeError> {
    start_with_network(config, None)
}

/// Like [`start`], talking to peers through `network`.
pub fn start_with_network(
    config: NodeConfig,
    network: Option<Network>,
) -> Result<Started, NodeError> {
    let (mut chain, recovery, journal) = match &config.data_dir {
        Some(dir) => {
            let (chain, recovery) = Chain::open(config.params.clone(), dir)?;
            let (journal, pending) = Journal::open(dir)?;
            (chain, recovery, Some((journal, pending)))
        }
        None => (Chain::new(config.params.clone()), None, None),
    };
    chain.set_mempool_limits(config.mempool, Some(config.keypair.public()));
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (found_tx, found_rx) = mpsc::unbounded_channel();
    let options = MinerOptions {
        threads: config.threads,
        cap: config.max_hashrate,
        priority: config.miner_priority,
    };
    let miner = Miner::start_with(options, move |block| {
        let _ = found_tx.send(block);
    });
    let (journal, pending) = match journal {
        Some((journal, pending)) => {
            let commands = cmd_tx.downgrade();
            let journal = JournalHandle::spawn(journal, move |writes, result| {
                hand_on(&commands, writes, result)
            })?;
            (Some(journal), pending)
        }
        None => (None, Vec::new()),
    };
    let store = Store::new(
        cmd_tx.clone(),
        journal.clone(),
        chain.index(),
        Arc::new(config.keypair.clone()),
    );
    let mut receipts = HashMap::new();
    // Own writes journaled before a crash or shutdown go back to the mempool, still
    // tracked so that the journal forgets them once they are confirmed.
    let mut republish = Vec::new();
    {
        for tx in pending {
            let id = tx.id();
            match chain.submit_tx(tx.clone()) {
                Ok(_) => republish.push(tx),
                Err(e) => tracing::debug!(tx = %id, error = %e, "journaled write not re-added"),
            }
            receipts.insert(id, task::Tracked::journaled());
        }
    }
    let (net, net_events) = match network {
        Some(n) => (Some(n.client), Some(n.events)),
        None => (None, None),
    };
    let (tips, _) = broadcast::channel(1024);
    let mut node =
        task::NodeTask::new(chain, journal, miner, receipts, &config, net, tips.clone())?;
    for tx in republish {
        node.publish_tx(tx);
    }
    node.update_receipts();
    node.refresh_work();
    let task = tokio::spawn(node.run(cmd_rx, found_rx, net_events));
    Ok(Started {
        handle: NodeHandle {
            commands: cmd_tx,
            store,
            tips,
        },
        task,
        recovery,
    })
}
