//! Receipts of own writes, and when the journal may forget them. A write's status follows
//! the canonical chain; once it is confirmed, its journal record is marked done, but
//! only after the block log's fsync (off the task, [`LogSyncer`]) covers the block that
//! holds it: a crash before that fsync finds the write still in the journal.

use super::{NodeTask, TxStatus};
use crate::chain::log_sync::{LogSyncer, Synced};
use crate::chain::{Chain, TipChange, Tx, TxId};
use crate::node::command::OwnJournal;
use std::collections::VecDeque;
use tokio::sync::mpsc;

/// Confirmed writes whose journal records wait for the block log's fsync.
#[derive(Debug, Default)]
pub(super) struct DoneGate {
    syncer: Option<LogSyncer>,
    synced_rx: Option<mpsc::UnboundedReceiver<Synced>>,
    /// The highest log generation asked for, and the highest known on disk.
    asked: u64,
    synced: u64,
    /// Writes confirmed at a log generation not yet on disk, oldest first.
    waiting: VecDeque<(u64, TxId)>,
    /// An fsync failed: what it should have covered may be lost, so no journal record
    /// is marked done again while this process runs (a restart sorts them out).
    failed: bool,
}

impl DoneGate {
    /// The gate for `chain`: with an fsync thread when the chain has a block log.
    pub(super) fn for_chain(chain: &Chain) -> std::io::Result<DoneGate> {
        let Some(file) = chain.log_sync_handle() else {
            return Ok(DoneGate::default());
        };
        let (syncer, synced_rx) = LogSyncer::start(file?)?;
        let generation = chain.log_generation();
        Ok(DoneGate {
            syncer: Some(syncer),
            synced_rx: Some(synced_rx),
            asked: generation,
            synced: generation,
            ..DoneGate::default()
        })
    }

    /// A write confirmed while the log had `generation` writes: done now if they are on
    /// disk (or there is no log), else once they are.
    fn finish(&mut self, journal: &OwnJournal, id: TxId, generation: u64) {
        if self.syncer.is_none() || generation <= self.synced {
            journal.done(id);
        } else if !self.failed {
            self.waiting.push_back((generation, id));
        }
    }

    /// Asks for an fsync if blocks were written since the last request.
    pub(super) fn ask(&mut self, generation: u64) {
        if let Some(syncer) = &self.syncer {
            if generation > self.asked {
                self.asked = generation;
                syncer.request(generation);
            }
        }
    }

    /// The next fsync result, or never without a block log.
    pub(super) async fn next(&mut self) -> Synced {
        match &mut self.synced_rx {
            Some(rx) => match rx.recv().await {
                Some(s) => s,
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    /// Takes an fsync result: marks done what it covers, or stops marking on failure.
    pub(super) fn synced(&mut self, s: Synced, journal: Option<&OwnJournal>) {
        match s.result {
            Ok(()) => {
                self.synced = self.synced.max(s.generation);
                while let Some(&(generation, id)) = self.waiting.front() {
                    if generation > self.synced {
                        break;
                    }
                    self.waiting.pop_front();
                    if let Some(journal) = journal {
                        journal.done(id);
                    }
                }
            }
            Err(error) => {
                if !self.failed {
                    tracing::error!(%error, "could not fsync the block log; confirmed writes stay in the journal until a restart");
                }
                self.failed = true;
                self.waiting.clear();
            }
        }
    }
}

impl NodeTask {
    /// Recomputes the status of every tracked own write from the canonical chain (on
    /// start, when the journal gave back writes that may be anywhere).
    pub(in crate::node) fn update_receipts(&mut self) {
        let all: Vec<TxId> = self.receipts.keys().copied().collect();
        self.update_receipts_of(all);
    }

    /// Updates the receipts a tip change can have touched: own writes in the blocks it
    /// connected or disconnected, and those included but not yet deep enough. Any other
    /// write is still pending, as it was; walking only these keeps a block's cost
    /// independent of how many own writes wait.
    pub(super) fn update_receipts_after(&mut self, change: &TipChange) {
        let moved = change.disconnected.iter().chain(&change.connected);
        let mut touched: Vec<TxId> = moved
            .flat_map(|b| b.txs.iter().map(Tx::id))
            .filter(|id| self.receipts.contains_key(id))
            .collect();
        touched.extend(self.included.iter().copied());
        // A reorg can move a write out and back in: one update each.
        touched.sort_unstable();
        touched.dedup();
        self.update_receipts_of(touched);
    }

    /// Recomputes the status of these tracked writes; confirmed ones stop being tracked.
    fn update_receipts_of(&mut self, ids: Vec<TxId>) {
        let tip = self.chain.height();
        let mut finished = Vec::new();
        for id in ids {
            let Some(tracked) = self.receipts.get(&id) else {
                continue;
            };
            let new = match self.chain.tx_height(&id) {
                None => TxStatus::Pending,
                Some(height) => {
                    let depth = tip - height + 1;
                    if depth >= self.confirmations {
                        finished.push(id);
                        if let Some(since) = tracked.since {
                            self.metrics
                                .put_to_confirmed
                                .observe(since.elapsed().as_secs_f64());
                        }
                        TxStatus::Confirmed { height, depth }
                    } else {
                        TxStatus::Included { height }
                    }
                }
            };
            if matches!(new, TxStatus::Included { .. }) {
                self.included.insert(id);
            } else {
                self.included.remove(&id);
            }
            tracked.status.send_if_modified(|s| {
                let changed = *s != new;
                *s = new;
                changed
            });
        }
        for id in finished {
            self.receipts.remove(&id);
            if let Some(journal) = &self.journal {
                self.done_gate
                    .finish(journal, id, self.chain.log_generation());
            }
        }
    }
}
