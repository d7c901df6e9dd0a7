//! The node task: the single owner and writer of the chain state. It takes writes from
//! the store, blocks from the miner (and, later, from peers), feeds the miner, keeps the
//! journal of own writes and reports every receipt's progress.
//!
//! Everything reaches it as a [`Command`] on one channel; it publishes what it accepts
//! as [`NodeEvent`]s, which the network layer relays.

use crate::chain::journal::Journal;
use crate::chain::log::Recovery;
use crate::chain::{
    Accepted, Block, BlockError, BlockHash, Chain, Keypair, Miner, OpenError, Params, Tx, TxId,
};
use crate::store::{Store, TxStatus};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

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
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The chain could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The journal could not be opened.
    #[error("journal: {0}")]
    Journal(#[from] std::io::Error),
}

/// Something the node accepted, for relaying and for observers.
#[derive(Clone, Debug)]
pub enum NodeEvent {
    /// A new tx entered the mempool.
    Tx(Tx),
    /// A new valid block entered the tree (from any source).
    Block(Arc<Block>),
}

/// A snapshot of the node's chain for `status` displays.
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
    /// The mining policy.
    pub mining: MiningPolicy,
    /// Whether the miner is working now.
    pub mining_active: bool,
    /// Recent hashes per second.
    pub hashrate: u64,
}

/// A request to the node task.
#[derive(Debug)]
pub enum Command {
    /// A new own write, with the sender of its receipt's status.
    Submit {
        /// The signed write.
        tx: Tx,
        /// Where to report its status.
        status: watch::Sender<TxStatus>,
    },
    /// A tx from a peer.
    PeerTx {
        /// The tx.
        tx: Tx,
        /// The verdict.
        reply: oneshot::Sender<Result<bool, crate::chain::SubmitError>>,
    },
    /// A block from a peer or a tool.
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
    /// Asks for the canonical height of a tx.
    TxHeight(TxId, oneshot::Sender<Option<u64>>),
    /// Stops the miner and the task; answers once everything is on disk.
    Shutdown(oneshot::Sender<()>),
}

/// A handle on a running node: its store, its commands and its events.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    store: Store,
    events: broadcast::Sender<NodeEvent>,
}

impl NodeHandle {
    /// The node's store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Subscribes to what the node accepts.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
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

    /// Hands a peer's tx to the node and returns its verdict.
    pub async fn submit_peer_tx(&self, tx: Tx) -> Option<Result<bool, crate::chain::SubmitError>> {
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

    /// The canonical height of a tx.
    pub async fn tx_height(&self, id: TxId) -> Option<u64> {
        self.ask(|r| Command::TxHeight(id, r)).await.flatten()
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

/// Opens the chain and the journal and starts the node task (on the current runtime).
pub fn start(config: NodeConfig) -> Result<Started, NodeError> {
    let (mut chain, recovery, journal) = match &config.data_dir {
        Some(dir) => {
            let (chain, recovery) = Chain::open(config.params.clone(), dir)?;
            let (journal, _) = Journal::open(dir)?;
            (chain, recovery, Some(journal))
        }
        None => (Chain::new(config.params.clone()), None, None),
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (found_tx, found_rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(4096);
    let miner = Miner::start(config.threads, move |block| {
        let _ = found_tx.send(block);
    });
    let keypair = Arc::new(config.keypair.clone());
    let store = Store::new(cmd_tx.clone(), chain.index(), keypair);
    let mut receipts = HashMap::new();
    // Own writes journaled before a crash or shutdown go back to the mempool, still
    // tracked so that the journal forgets them once they are confirmed.
    if let Some(journal) = &journal {
        for tx in journal.pending() {
            let id = tx.id();
            if let Err(e) = chain.submit_tx(tx) {
                tracing::debug!(tx = %id, error = %e, "journaled write not re-added");
            }
            receipts.insert(id, watch::channel(TxStatus::Pending).0);
        }
    }
    let mut node = NodeTask {
        chain,
        journal,
        miner,
        receipts,
        events: events.clone(),
        confirmations: config.confirmations.max(1),
        mining: config.mining,
        mining_active: false,
        hashrate: 0,
        work_stale: false,
    };
    node.update_receipts();
    node.refresh_work();
    let task = tokio::spawn(node.run(cmd_rx, found_rx));
    Ok(Started {
        handle: NodeHandle {
            commands: cmd_tx,
            store,
            events,
        },
        task,
        recovery,
    })
}

struct NodeTask {
    chain: Chain,
    journal: Option<Journal>,
    miner: Miner,
    receipts: HashMap<TxId, watch::Sender<TxStatus>>,
    events: broadcast::Sender<NodeEvent>,
    confirmations: u64,
    mining: MiningPolicy,
    mining_active: bool,
    hashrate: u64,
    /// New txs arrived since the miner's template was made.
    work_stale: bool,
}

/// How often a template is rebuilt for txs that arrived meanwhile.
const TEMPLATE_REFRESH: Duration = Duration::from_millis(200);

impl NodeTask {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut found: mpsc::UnboundedReceiver<Block>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut refresh = tokio::time::interval(TEMPLATE_REFRESH);
        let mut last = (Instant::now(), self.miner.hashes());
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown(reply)) => {
                        self.miner.set_work(None);
                        let _ = reply.send(());
                        break;
                    }
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                Some(block) = found.recv() => {
                    let hash = block.hash();
                    match self.process_block(block) {
                        Ok(_) => tracing::info!(block = %hash, height = self.chain.height(), "mined a block"),
                        Err(e) => tracing::warn!(block = %hash, error = %e, "own block rejected"),
                    }
                }
                _ = refresh.tick(), if self.work_stale => self.refresh_work(),
                _ = tick.tick() => {
                    let now = (Instant::now(), self.miner.hashes());
                    let secs = now.0.duration_since(last.0).as_secs_f64();
                    if secs > 0.0 {
                        self.hashrate = ((now.1 - last.1) as f64 / secs) as u64;
                    }
                    last = now;
                }
            }
        }
        self.miner.set_work(None);
        tracing::info!(height = self.chain.height(), "node stopped");
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Submit { tx, status } => self.submit_own(tx, status),
            Command::PeerTx { tx, reply } => {
                let result = self.accept_tx(tx);
                let _ = reply.send(result);
            }
            Command::Block { block, reply } => {
                let _ = reply.send(self.process_block(block));
            }
            Command::SetMining(policy) => {
                self.mining = policy;
                self.refresh_work();
            }
            Command::Info(reply) => {
                let tip = self.chain.tip();
                let _ = reply.send(ChainInfo {
                    network_id: self.chain.params().network_id(),
                    height: tip.height,
                    tip: tip.hash,
                    total_work: tip.work,
                    difficulty: self.chain.params().difficulty(),
                    mempool: self.chain.mempool().len(),
                    orphans: self.chain.tree().orphan_count(),
                    mining: self.mining,
                    mining_active: self.mining_active,
                    hashrate: self.hashrate,
                });
            }
            Command::BlockAt(h, reply) => {
                let _ = reply.send(self.chain.block_at(h));
            }
            Command::TxHeight(id, reply) => {
                let _ = reply.send(self.chain.tx_height(&id));
            }
            Command::Shutdown(_) => {}
        }
    }

    fn submit_own(&mut self, tx: Tx, status: watch::Sender<TxStatus>) {
        let id = tx.id();
        if let Some(journal) = &mut self.journal {
            if let Err(e) = journal.add(&tx) {
                tracing::error!(error = %e, "could not journal a write");
                status.send_replace(TxStatus::Failed {
                    reason: format!("could not journal the write: {e}"),
                });
                return;
            }
        }
        match self.accept_tx(tx) {
            Ok(_) => {
                self.receipts.insert(id, status);
                self.update_receipts();
            }
            Err(e) => {
                if let Some(journal) = &mut self.journal {
                    let _ = journal.done(&id);
                }
                status.send_replace(TxStatus::Failed {
                    reason: e.to_string(),
                });
            }
        }
    }

    fn accept_tx(&mut self, tx: Tx) -> Result<bool, crate::chain::SubmitError> {
        let relay = tx.clone();
        let new = self.chain.submit_tx(tx)?;
        if new {
            let _ = self.events.send(NodeEvent::Tx(relay));
            // Rebuilding a template copies up to a block of txs: do it at once when the
            // miner is idle, otherwise at most every TEMPLATE_REFRESH under a flood.
            if self.mining_active {
                self.work_stale = true;
            } else {
                self.refresh_work();
            }
        }
        Ok(new)
    }

    fn process_block(&mut self, block: Block) -> Result<Accepted, BlockError> {
        let accepted = self.chain.process_block(block)?;
        for hash in &accepted.blocks {
            if let Some(b) = self.chain.block(hash) {
                let _ = self.events.send(NodeEvent::Block(b));
            }
        }
        if accepted.tip.is_some() {
            self.update_receipts();
            self.refresh_work();
        }
        Ok(accepted)
    }

    /// Recomputes the status of every tracked own write from the canonical chain.
    fn update_receipts(&mut self) {
        let tip = self.chain.height();
        let mut finished = Vec::new();
        for (id, status) in &self.receipts {
            let new = match self.chain.tx_height(id) {
                None => TxStatus::Pending,
                Some(height) => {
                    let depth = tip - height + 1;
                    if depth >= self.confirmations {
                        finished.push(*id);
                        TxStatus::Confirmed { height, depth }
                    } else {
                        TxStatus::Included { height }
                    }
                }
            };
            status.send_if_modified(|s| {
                let changed = *s != new;
                *s = new;
                changed
            });
        }
        for id in finished {
            self.receipts.remove(&id);
            if let Some(journal) = &mut self.journal {
                if let Err(e) = journal.done(&id) {
                    tracing::warn!(error = %e, "could not record a confirmed write in the journal");
                }
            }
        }
    }

    /// Gives the miner a fresh template, or stops it, according to the policy.
    fn refresh_work(&mut self) {
        let active = match self.mining {
            MiningPolicy::Off => false,
            MiningPolicy::Always => true,
            MiningPolicy::Auto => !self.chain.mempool().is_empty() || !self.receipts.is_empty(),
        };
        self.mining_active = active;
        self.work_stale = false;
        self.miner.set_work(active.then(|| self.chain.template()));
    }
}
