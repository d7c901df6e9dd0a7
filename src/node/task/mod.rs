//! The node task's loop: commands from handles, blocks from the miner, events from the
//! network, signature checks and block-log fsyncs that finished, and the timers for
//! hashrate, template refresh, gossip batches and peer polling.

use super::command::{OwnJournal, Submission};
use super::omission::Omission;
use super::sync::BlockSync;
use super::verify::{Verifier, BLOCK_CHECKS, TX_CHECKS};
use super::TxStatus;
use super::{ChainInfo, Command, MiningPolicy, NodeConfig, NodeMetrics, TxInfo};
use crate::chain::side::Admission;
use crate::chain::{
    Accepted, Block, BlockError, Chain, Keypair, Miner, SubmitError, TipChange, Tx, TxId,
    VerifiedTx,
};
use crate::net::{Gossip, NetClient, NetCommand, NetEvent};
use gossip::{BlockTicket, TxTicket};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, watch};

/// How often a template is rebuilt for txs that arrived meanwhile.
const TEMPLATE_REFRESH: Duration = Duration::from_millis(200);
/// How often peers are asked for their chain status (catches up after missed gossip).
const STATUS_POLL: Duration = Duration::from_secs(10);
/// After our tip moves, peers are asked again within this time (at most this often).
const STATUS_REFRESH: Duration = Duration::from_millis(250);
/// How often remote txs past their expiry leave the mempool.
const MEMPOOL_SWEEP: Duration = Duration::from_secs(10);
/// How often own pending writes are gossiped again, in case peers dropped them.
const REBROADCAST: Duration = Duration::from_secs(600);
/// Most own writes gossiped again at once.
const MAX_REBROADCAST: usize = 1024;
/// Longest an own write waits for others to share its gossip message.
const GOSSIP_FLUSH: Duration = Duration::from_millis(10);
/// How long mining pauses after a full sync batch moved our tip (more are coming, and
/// a block on the tip we have now would only be orphaned); a shorter batch ends it.
const CATCH_UP_PAUSE: Duration = Duration::from_secs(5);

/// An own write being followed until it is confirmed.
pub(super) struct Tracked {
    status: watch::Sender<TxStatus>,
    /// When it was submitted; `None` for writes taken back from the journal on start.
    since: Option<Instant>,
}

impl Tracked {
    /// A write found in the journal on start: nobody watches its receipt any more.
    pub(super) fn journaled() -> Tracked {
        Tracked {
            status: watch::channel(TxStatus::Pending).0,
            since: None,
        }
    }
}

mod attack;
mod gossip;
mod network;
mod receipts;

use receipts::DoneGate;

pub(super) struct NodeTask {
    chain: Chain,
    journal: Option<OwnJournal>,
    miner: Miner,
    receipts: HashMap<TxId, Tracked>,
    /// Tracked writes in the canonical chain, not yet deep enough to be confirmed.
    included: HashSet<TxId>,
    confirmations: u64,
    mining: MiningPolicy,
    mining_active: bool,
    hashrate: u64,
    /// New txs arrived since the miner's template was made.
    work_stale: bool,
    /// A sync batch is being taken: the template is rebuilt once at its end, not at
    /// every block of it.
    in_batch: bool,
    /// Until when mining pauses while catching up (see [`CATCH_UP_PAUSE`]).
    catching_up: Option<Instant>,
    net: Option<NetClient>,
    sync: BlockSync,
    /// Our tip moved since peers last told us theirs.
    statuses_stale: bool,
    /// A block could not be written to the block log; retried every second.
    unwritten: bool,
    /// Own writes not yet gossiped: they go out together, at most [`GOSSIP_FLUSH`] later.
    outbox: Vec<Tx>,
    outbox_bytes: usize,
    /// Signature checks of gossiped txs, with the message each batch came in.
    tx_checks: Verifier<TxTicket>,
    /// Signature checks of gossiped blocks, one at a time.
    block_checks: Verifier<BlockTicket>,
    /// Confirmed writes waiting for the block log's fsync to leave the journal.
    done_gate: DoneGate,
    metrics: Arc<NodeMetrics>,
    tips: broadcast::Sender<Arc<TipChange>>,
    /// The omission fault, when an experiment asks for one.
    omission: Omission,
    /// Whether the experimental attack commands are on (`--attacker`).
    attacker: bool,
    /// The key the attacker signs its own writes with.
    keypair: Keypair,
    /// The current or last attack.
    attack: Option<attack::Attack>,
}

impl NodeTask {
    pub(super) fn new(
        chain: Chain,
        journal: Option<OwnJournal>,
        miner: Miner,
        receipts: HashMap<TxId, Tracked>,
        config: &NodeConfig,
        net: Option<NetClient>,
        tips: broadcast::Sender<Arc<TipChange>>,
    ) -> std::io::Result<NodeTask> {
        // The block log's fsync thread, when there is a block log.
        let done_gate = DoneGate::for_chain(&chain)?;
        Ok(NodeTask {
            chain,
            journal,
            miner,
            receipts,
            included: HashSet::new(),
            confirmations: config.confirmations.max(1),
            mining: config.mining,
            mining_active: false,
            hashrate: 0,
            work_stale: false,
            in_batch: false,
            catching_up: None,
            net,
            sync: BlockSync::default(),
            statuses_stale: false,
            unwritten: false,
            outbox: Vec::new(),
            outbox_bytes: 0,
            tx_checks: Verifier::new(TX_CHECKS).counting(config.metrics.signatures_checked.clone()),
            block_checks: Verifier::new(BLOCK_CHECKS)
                .counting(config.metrics.signatures_checked.clone()),
            done_gate,
            metrics: config.metrics.clone(),
            tips,
            omission: Omission::new(config.omit_gossip),
            attacker: config.attacker,
            keypair: config.keypair.clone(),
            attack: None,
        })
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut found: mpsc::UnboundedReceiver<Block>,
        mut net_events: Option<mpsc::Receiver<NetEvent>>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut refresh = tokio::time::interval(TEMPLATE_REFRESH);
        let mut poll = tokio::time::interval(STATUS_POLL);
        let mut stale_poll = tokio::time::interval(STATUS_REFRESH);
        let mut sweep = tokio::time::interval(MEMPOOL_SWEEP);
        let mut rebroadcast = tokio::time::interval(REBROADCAST);
        rebroadcast.tick().await; // the first tick is now: nothing to send again yet
        let mut flush = tokio::time::interval(GOSSIP_FLUSH);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                Some(block) = found.recv() => self.on_mined(block),
                checked = self.tx_checks.next() => self.on_checked_txs(checked),
                checked = self.block_checks.next() => self.on_checked_block(checked),
                synced = self.done_gate.next() => self.done_gate.synced(synced, self.journal.as_ref()),
                _ = flush.tick(), if !self.outbox.is_empty() => self.flush_outbox(),
                event = recv(&mut net_events) => match event {
                    Some(event) => self.on_net_event(event),
                    None => net_events = None,
                },
                _ = refresh.tick(), if self.work_stale => self.refresh_work(),
                _ = poll.tick() => self.poll_peers(),
                _ = stale_poll.tick(), if self.statuses_stale => self.poll_peers(),
                _ = sweep.tick() => {
                    let expired = self.chain.expire_mempool(Instant::now());
                    if expired > 0 {
                        tracing::info!(expired, "remote txs expired from the mempool");
                        self.work_stale = true;
                    }
                }
                _ = rebroadcast.tick() => {
                    let own = self.chain.mempool().own_txs();
                    for tx in own.into_iter().take(MAX_REBROADCAST) {
                        self.publish_tx(tx);
                    }
                    self.flush_outbox();
                }
                _ = tick.tick() => {
                    self.attack_step(None);
                    if self.unwritten {
                        self.retry_unwritten();
                    }
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
            Command::Submit(writes) => {
                for Submission { tx, status, taken } in writes {
                    self.submit_own(tx, status);
                    let _ = taken.send(Ok(()));
                }
            }
            Command::PeerTx { tx, reply } => {
                let _ = reply.send(self.accept_tx(tx));
            }
            Command::Block { block, reply } => {
                // A block a tool hands in is announced like one we mined.
                let result = self.process_block(block.clone());
                if result.is_ok() {
                    self.publish(Gossip::Block(block));
                }
                let _ = reply.send(result);
            }
            Command::SetMining(policy) => {
                self.mining = policy;
                self.refresh_work();
            }
            Command::Info(reply) => {
                let _ = reply.send(self.info());
            }
            Command::BlockAt(h, reply) => {
                let _ = reply.send(self.chain.block_at(h));
            }
            Command::BlockByHash(hash, reply) => {
                let _ = reply.send(self.chain.block(&hash));
            }
            Command::Tx(id, reply) => {
                let info = match self.chain.tx_height(&id) {
                    Some(height) => self
                        .chain
                        .block_at(height)
                        .and_then(|b| b.txs.iter().find(|t| t.id() == id).cloned())
                        .map(|tx| TxInfo {
                            tx,
                            height: Some(height),
                            received_us: None,
                        }),
                    None => self.chain.mempool().get(&id).map(|tx| TxInfo {
                        tx: tx.clone(),
                        height: None,
                        received_us: self.chain.mempool().arrived_unix_us(&id),
                    }),
                };
                let _ = reply.send(info);
            }
            Command::Attack(request, reply) => {
                let _ = reply.send(self.attack_request(request));
            }
            Command::Shutdown(_) => {}
        }
    }

    fn info(&self) -> ChainInfo {
        let tip = self.chain.tip();
        ChainInfo {
            network_id: self.chain.params().network_id(),
            height: tip.height,
            tip: tip.hash,
            total_work: tip.work,
            difficulty: self.chain.params().difficulty(),
            mempool: self.chain.mempool().len(),
            orphans: self.chain.tree().orphan_count(),
            side_blocks: self.chain.side_blocks(),
            mining: self.mining,
            mining_active: self.mining_active,
            hashrate: self.hashrate,
            peers: self.sync.peer_count(),
            syncing: self.sync.is_syncing(),
            sync_target: self.sync.best_height(),
        }
    }

    /// Takes an own write (already journaled by the store) into the mempool; a refusal
    /// is reported through its status.
    fn submit_own(&mut self, tx: VerifiedTx, status: watch::Sender<TxStatus>) {
        let id = tx.tx().id();
        let copy = tx.tx().clone();
        match self.accept_verified(tx) {
            Ok(_) => {
                self.receipts.insert(
                    id,
                    Tracked {
                        status,
                        since: Some(Instant::now()),
                    },
                );
                // Its status is `Pending`, as the receipt starts: the other receipts
                // did not change, so they are not walked (that made each write cost
                // O(pending writes)).
                self.publish_tx(copy);
            }
            Err(e) => {
                if let Some(journal) = &self.journal {
                    journal.done(id);
                }
                status.send_replace(TxStatus::Failed {
                    reason: e.to_string(),
                });
            }
        }
    }

    /// Checks a tx, adds it to the mempool and schedules a new template.
    fn accept_tx(&mut self, tx: Tx) -> Result<bool, SubmitError> {
        let result = self.chain.submit_tx(tx);
        self.after_submit(result)
    }

    /// Adds a checked tx to the mempool and schedules a new template.
    fn accept_verified(&mut self, tx: VerifiedTx) -> Result<bool, SubmitError> {
        let result = self.chain.submit_verified(tx);
        self.after_submit(result)
    }

    /// Counts a submission and, for a new tx, schedules a new template.
    fn after_submit(&mut self, result: Result<bool, SubmitError>) -> Result<bool, SubmitError> {
        let new = match result {
            Ok(new) => new,
            Err(e) => {
                let reason = super::metrics::Reason { reason: e.label() };
                self.metrics.txs_rejected.get_or_create(&reason).inc();
                return Err(e);
            }
        };
        if new {
            self.metrics.txs_accepted.inc();
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

    fn on_mined(&mut self, block: Block) {
        if self.take_private(&block) {
            return; // a block of the attacker's private branch
        }
        let hash = block.hash();
        let height = block.header.height;
        let txs = block.txs.len();
        match self.process_block(block.clone()) {
            Ok(_) => {
                tracing::info!(block = %hash, height, txs, "mined block");
                self.publish(Gossip::Block(block));
            }
            Err(e) => tracing::warn!(block = %hash, error = %e, "own block rejected"),
        }
    }

    /// Runs a block through the chain; on a tip change updates receipts and the miner.
    fn process_block(&mut self, block: Block) -> Result<Accepted, BlockError> {
        self.process_block_as(block, Admission::Any)
    }

    /// Like [`NodeTask::process_block`] for a block from a peer, admitted as `admission`.
    fn process_block_as(
        &mut self,
        block: Block,
        admission: Admission,
    ) -> Result<Accepted, BlockError> {
        let accepted = match self.chain.process_block_as(block, admission) {
            Ok(a) => a,
            Err(e) => {
                let reason = super::metrics::Reason { reason: e.label() };
                self.metrics.blocks_rejected.get_or_create(&reason).inc();
                if let BlockError::Storage(error) = &e {
                    tracing::error!(%error, "could not write the block log; retrying every second");
                    self.unwritten = true;
                }
                return Err(e);
            }
        };
        self.metrics
            .blocks_accepted
            .inc_by(accepted.blocks.len() as u64);
        if let Some(change) = &accepted.tip {
            self.on_tip_change(change);
        }
        Ok(accepted)
    }

    /// After a storage error: writes the waiting branch if the disk takes it now.
    fn retry_unwritten(&mut self) {
        match self.chain.retry_unwritten() {
            None => self.unwritten = false,
            Some(Ok(change)) => {
                tracing::info!(
                    height = self.chain.height(),
                    "the block log takes writes again"
                );
                self.on_tip_change(&change);
            }
            Some(Err(e)) => tracing::debug!(error = %e, "the block log still fails"),
        }
    }

    /// Tells watchers, receipts, the miner and the sync of a new tip.
    fn on_tip_change(&mut self, change: &TipChange) {
        if !change.disconnected.is_empty() {
            self.metrics.reorgs.inc();
            self.metrics
                .reorg_depth
                .observe(change.disconnected.len() as f64);
        }
        // Nobody listening is fine: the watch stream subscribes on demand.
        let _ = self.tips.send(Arc::new(change.clone()));
        self.done_gate.ask(self.chain.log_generation());
        self.update_receipts_after(change);
        if self.in_batch {
            self.work_stale = true;
        } else {
            self.refresh_work();
        }
        self.statuses_stale = self.net.is_some();
        self.attack_step(Some(change));
    }

    pub(super) fn publish(&mut self, message: Gossip) {
        if self.omission.drops() {
            return;
        }
        self.send(NetCommand::Publish(message));
    }

    /// Gives the miner a fresh template, or stops it, according to the policy.
    pub(super) fn refresh_work(&mut self) {
        if let Some(template) = self.private_template() {
            // An attacker racing mines its private branch only, whatever the policy.
            self.mining_active = true;
            self.work_stale = false;
            self.miner.set_work(Some(template));
            return;
        }
        // Far behind (a full sync batch just moved our tip): a block on this tip would
        // only be orphaned. The pause needs delivered work to start, so a peer that only
        // claims work cannot hold our miner back; look again once it is over.
        let catching_up = self.catching_up.is_some_and(|until| until > Instant::now());
        let active = !catching_up
            && match self.mining {
                MiningPolicy::Off => false,
                MiningPolicy::Always => true,
                // Mine while writes wait, and while a peer holds a different tip of equal
                // work: without a next block such a split would last forever.
                MiningPolicy::Auto => {
                    !self.chain.mempool().is_empty()
                        || !self.receipts.is_empty()
                        || self.with_ours(|ours| self.sync.tied_with(ours))
                }
            };
        self.mining_active = active;
        self.work_stale = catching_up;
        self.miner.set_work(active.then(|| self.chain.template()));
    }
}

/// The next network event, or never when there is no network.
async fn recv(events: &mut Option<mpsc::Receiver<NetEvent>>) -> Option<NetEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
