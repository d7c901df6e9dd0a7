//! The store API: `put`, `delete`, `retrieve`, `retrieve_all`, and the receipt through
//! which a caller follows what became of a write.
//!
//! Writes are signed with the node's key and handed to the node task; reads go straight to
//! the shared index (a read lock held only while the lookup runs), so they never wait on
//! mining, the disk or the network.

use super::command::{Command, OwnJournal, Submission, TxStatus};
use crate::chain::group_commit::JournalError;
use crate::chain::{now_ms, Hash, Index, Keypair, Op, TxError, TxId, VerifiedTx, Version};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The key or value breaks the limits.
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// The node task has stopped.
    #[error("the node has stopped")]
    NodeStopped,
    /// The node refused the write (for instance, its mempool is full).
    #[error("the node refused the write: {0}")]
    Failed(String),
    /// A wait ran out of time.
    #[error("timed out waiting for the write")]
    Timeout,
    /// The write could not be put on disk (the disk is full, or failed); nothing of it
    /// was kept, and a later write is tried again.
    #[error("could not write the journal: {0}")]
    Disk(#[from] JournalError),
}

/// The receipt of a write: its tx id and its status as it changes.
#[derive(Debug, Clone)]
pub struct Receipt {
    id: TxId,
    status: watch::Receiver<TxStatus>,
}

impl Receipt {
    pub(crate) fn new(id: TxId, status: watch::Receiver<TxStatus>) -> Receipt {
        Receipt { id, status }
    }

    /// The write's tx id.
    pub fn id(&self) -> TxId {
        self.id
    }

    /// The status now.
    pub fn status(&self) -> TxStatus {
        self.status.borrow().clone()
    }

    /// Waits for the next status change and returns it; `None` once the status is final
    /// and the node has stopped reporting.
    pub async fn changed(&mut self) -> Option<TxStatus> {
        self.status.changed().await.ok()?;
        Some(self.status.borrow_and_update().clone())
    }

    /// Waits until the status satisfies `pred`, for at most `timeout`.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl FnMut(&TxStatus) -> bool,
    ) -> Result<TxStatus, StoreError> {
        match tokio::time::timeout(timeout, self.status.wait_for(pred)).await {
            Ok(Ok(s)) => Ok(s.clone()),
            Ok(Err(_)) => Err(StoreError::NodeStopped),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    /// Waits until the write is in a block (or confirmed); returns its height.
    pub async fn included(&mut self, timeout: Duration) -> Result<u64, StoreError> {
        let s = self
            .wait_for(timeout, |s| !matches!(s, TxStatus::Pending))
            .await?;
        height_or_failure(s)
    }

    /// Waits until the write is confirmed; returns its height.
    pub async fn confirmed(&mut self, timeout: Duration) -> Result<u64, StoreError> {
        let s = self.wait_for(timeout, TxStatus::is_final).await?;
        height_or_failure(s)
    }
}

fn height_or_failure(s: TxStatus) -> Result<u64, StoreError> {
    match s {
        TxStatus::Included { height } | TxStatus::Confirmed { height, .. } => Ok(height),
        TxStatus::Failed { reason } => Err(StoreError::Failed(reason)),
        TxStatus::Pending => Err(StoreError::Timeout),
    }
}

/// Which part of a key's history to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Index of the first version (0 is the oldest).
    pub from: usize,
    /// Most versions.
    pub limit: usize,
    /// Value bytes after which the page ends (it holds one version at least, if any).
    pub max_bytes: usize,
    /// Only versions at this height or below.
    pub max_height: u64,
}

/// A page of a key's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPage {
    /// The versions, in chain order.
    pub versions: Vec<Version>,
    /// How many versions the key has in all (at or below the page's height).
    pub total: usize,
}

/// A handle on a node's key-value store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    commands: mpsc::Sender<Command>,
    /// Where own writes go before they are acknowledged; `None` for a node in memory.
    journal: Option<OwnJournal>,
    index: Arc<RwLock<Index>>,
    keypair: Arc<Keypair>,
    /// The next write's nonce. Nonces only tell apart writes that are otherwise the same
    /// (key, value, author and millisecond), so a counter from a random start does: it
    /// cannot repeat in this process, nor, but with odds of 2^-64, after a restart. A
    /// read of the OS's random source per write was a system call each.
    nonces: Arc<AtomicU64>,
    /// Held while [`Store::digest_async`] hashes, so that callers take turns.
    digesting: Arc<tokio::sync::Mutex<()>>,
}

impl Store {
    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        journal: Option<OwnJournal>,
        index: Arc<RwLock<Index>>,
        keypair: Arc<Keypair>,
    ) -> Store {
        Store {
            commands,
            journal,
            index,
            keypair,
            nonces: Arc::new(AtomicU64::new(rand_core::RngCore::next_u64(
                &mut rand_core::OsRng,
            ))),
            digesting: Arc::default(),
        }
    }

    /// Writes `value` under `key`; returns with the receipt once the node has journaled
    /// the write on disk (its status says if the node refused it).
    pub async fn put(
        &self,
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
    ) -> Result<Receipt, StoreError> {
        self.write(Op::Put {
            key: key.into(),
            value: value.into(),
        })
        .await
    }

    /// Deletes `key` (a tombstone in its history); returns with the receipt once the node
    /// has journaled it.
    pub async fn delete(&self, key: impl Into<String>) -> Result<Receipt, StoreError> {
        self.write(Op::Delete { key: key.into() }).await
    }

    /// Signs `op` with the node key and hands it to the node.
    pub async fn write(&self, op: Op) -> Result<Receipt, StoreError> {
        let nonce = self.nonces.fetch_add(1, Ordering::Relaxed);
        let tx = VerifiedTx::sign(&self.keypair, op, nonce, now_ms())?;
        let (status, status_rx) = watch::channel(TxStatus::Pending);
        let receipt = Receipt::new(tx.tx().id(), status_rx);
        let (taken, was_taken) = oneshot::channel();
        // Answer only once the write is on disk: a receipt, an HTTP 202 or a console
        // `pending` must survive a crash right after it. Concurrent writes share an
        // fsync, and the journal hands each batch on to the node task at once.
        match &self.journal {
            Some(journal) => {
                let copy = tx.tx().clone();
                journal.add(copy, Submission { tx, status, taken })?;
            }
            None => {
                let submission = Submission { tx, status, taken };
                self.commands
                    .send(Command::Submit(vec![submission]))
                    .await
                    .map_err(|_| StoreError::NodeStopped)?;
            }
        }
        was_taken.await.map_err(|_| StoreError::NodeStopped)??;
        Ok(receipt)
    }

    /// The newest value of `key` on the canonical chain; `None` if it has none or was
    /// deleted last.
    pub fn retrieve(&self, key: &str) -> Option<Version> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        index.latest(key).filter(|v| v.value.is_some()).cloned()
    }

    /// Every version of `key` in chain order, deletes as tombstones (`value: None`).
    pub fn retrieve_all(&self, key: &str) -> Vec<Version> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        index.history(key).to_vec()
    }

    /// A page of `key`'s history (see [`Page`]), with how many versions it has in all
    /// at or below the page's height: a caller reads a long history page by page
    /// without the whole of it ever being copied at once.
    pub fn retrieve_page(&self, key: &str, page: Page) -> HistoryPage {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let all = index.history(key);
        // Versions are in chain order, so their heights never go down.
        let total = all.partition_point(|v| v.height <= page.max_height);
        let mut versions = Vec::new();
        let mut bytes = 0;
        for v in all[..total].iter().skip(page.from).take(page.limit) {
            if !versions.is_empty() && bytes >= page.max_bytes {
                break;
            }
            bytes += v.value.as_ref().map_or(0, |b| b.len());
            versions.push(v.clone());
        }
        HistoryPage { versions, total }
    }

    /// The digest of the whole index (see [`Index::digest`]): equal on two nodes exactly
    /// when they hold the same versions of every key. The index keeps it up to date, so
    /// only the buckets changed since it was last asked for are hashed again, and those
    /// mostly with no lock held: copied a round at a time, hashed, then handed back. The
    /// node task, which needs the write lock to take a block, so waits at most for one
    /// round's copy and the last step, never for the whole rehash (after a burst of
    /// writes over a large index, tens of milliseconds).
    pub fn digest(&self) -> Hash {
        /// Buckets copied in one round: a 16th of the 65,536, and of the leaves.
        const ROUND: usize = 4096;
        /// A round that finds fewer buckets changed than this ends the rounds.
        const FEW: usize = 256;
        /// Rounds at most: enough for every bucket with writes landing meanwhile.
        const ROUNDS: usize = 32;
        let read = || self.index.read().unwrap_or_else(|e| e.into_inner());
        for _ in 0..ROUNDS {
            let changed = read().digest_changed(ROUND);
            if changed.len() < FEW {
                break;
            }
            let hashed = changed.hash();
            read().digest_settle(&hashed);
        }
        read().digest()
    }

    /// [`Store::digest`] on tokio's blocking pool, one caller at a time: an async caller
    /// (the HTTP API, the console) never holds a runtime worker, which the node's writes
    /// need, for a rehash, and a burst of callers hashes on one thread, each later one
    /// finding little left to do.
    pub async fn digest_async(&self) -> Hash {
        let _turn = self.digesting.lock().await;
        let store = self.clone();
        match tokio::task::spawn_blocking(move || store.digest()).await {
            Ok(digest) => digest,
            // The runtime is shutting down and dropped the task before it ran.
            Err(_) => self.digest(),
        }
    }

    /// The public key that signs this store's writes.
    pub fn author(&self) -> crate::chain::AuthorKey {
        self.keypair.public()
    }
}
