//! Group commit: the journal on a thread of its own. Writers hand it their write and wait;
//! the thread takes every request waiting at that moment, appends them in one write and
//! fsyncs once for all of them, then answers each. While it fsyncs, new requests queue up
//! for the next batch, so the more writers wait, the more share one fsync; and no fsync
//! ever runs on the node task.

use super::crypto::TxId;
use super::journal::Journal;
use super::tx::Tx;
use std::io;
use tokio::sync::{mpsc, oneshot};

/// Most requests taken into one batch.
const MAX_BATCH: usize = 4096;

/// Why the journal could not take a write.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JournalError {
    /// What kind of I/O error it was (`StorageFull` for a full disk).
    pub kind: io::ErrorKind,
    /// The error as the system gave it.
    pub message: String,
}

impl JournalError {
    fn from_io(e: &io::Error) -> JournalError {
        JournalError {
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    fn stopped() -> JournalError {
        JournalError {
            kind: io::ErrorKind::BrokenPipe,
            message: "the journal has stopped".into(),
        }
    }
}

enum Request {
    Add(Tx, oneshot::Sender<Result<(), JournalError>>),
    Done(TxId),
    Sync(oneshot::Sender<Result<(), JournalError>>),
}

/// A cloneable handle on the journal's thread; the thread ends when every handle is gone.
#[derive(Clone, Debug)]
pub struct JournalHandle {
    requests: mpsc::UnboundedSender<Request>,
}

impl JournalHandle {
    /// Moves `journal` onto a thread of its own.
    pub fn spawn(journal: Journal) -> io::Result<JournalHandle> {
        let (requests, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("kvchain-journal".into())
            .spawn(move || run(journal, rx))?;
        Ok(JournalHandle { requests })
    }

    /// Records a new own write; returns once it is on disk (sharing the fsync with every
    /// write waiting at the same time), or with the disk's error.
    pub async fn add(&self, tx: Tx) -> Result<(), JournalError> {
        let (done, answer) = oneshot::channel();
        self.requests
            .send(Request::Add(tx, done))
            .map_err(|_| JournalError::stopped())?;
        answer.await.map_err(|_| JournalError::stopped())?
    }

    /// Records that a write need not be kept (it became final); not fsynced on its own.
    pub fn done(&self, id: TxId) {
        let _ = self.requests.send(Request::Done(id));
    }

    /// Returns once every record handed in before is on disk.
    pub async fn sync(&self) -> Result<(), JournalError> {
        let (done, answer) = oneshot::channel();
        self.requests
            .send(Request::Sync(done))
            .map_err(|_| JournalError::stopped())?;
        answer.await.map_err(|_| JournalError::stopped())?
    }
}

/// The thread: one batch per turn, until every handle is dropped.
fn run(mut journal: Journal, mut rx: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = rx.blocking_recv() {
        let mut adds = Vec::new();
        let mut dones = Vec::new();
        let mut waiting = Vec::new();
        let mut sync = false;
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(request) = next {
            match request {
                Request::Add(tx, done) => {
                    adds.push(tx);
                    waiting.push(done);
                }
                Request::Done(id) => dones.push(id),
                Request::Sync(done) => {
                    sync = true;
                    waiting.push(done);
                }
            }
            taken += 1;
            next = if taken < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let result = journal
            .commit(&adds, &dones, sync)
            .map_err(|e| JournalError::from_io(&e));
        if let Err(e) = &result {
            tracing::error!(error = %e, writes = adds.len(), "could not journal writes");
        }
        for done in waiting {
            let _ = done.send(result.clone());
        }
    }
    tracing::debug!("journal thread stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Keypair, Op};

    fn tx(i: u64) -> Tx {
        let op = Op::Put {
            key: format!("k{i}"),
            value: b"v".to_vec(),
        };
        Tx::new(&Keypair::from_seed([7; 32]), op, i, 0).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_are_all_on_disk_when_answered() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path()).unwrap();
        let handle = JournalHandle::spawn(journal).unwrap();
        let writers: Vec<_> = (0..200)
            .map(|i| {
                let h = handle.clone();
                tokio::spawn(async move { h.add(tx(i)).await })
            })
            .collect();
        for w in writers {
            w.await.unwrap().unwrap();
        }
        handle.done(tx(0).id());
        handle.sync().await.unwrap();
        drop(handle);
        let (_, pending) = Journal::open(dir.path()).unwrap();
        assert_eq!(pending.len(), 199);
        assert!(!pending.contains(&tx(0)));
    }
}
