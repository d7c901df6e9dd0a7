//! The block log's fsync, off the node task. The task writes each block into the log
//! before the block becomes canonical, but does not wait for the disk: this thread
//! fsyncs whatever was written, as often as it can, and reports how far the disk has
//! caught up. One fsync covers every block written before it, so a node that mines or
//! receives many small blocks pays for far fewer fsyncs, and none on its task.
//!
//! What needs the disk waits for it: a write's journal record is marked done only once
//! the block holding the write is synced (see the node task), so a crash before the
//! fsync finds the write still in the journal and takes it back.

use std::fs::File;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use tokio::sync::mpsc;

/// How far the block log is on disk: every block written up to `generation`, or why not.
#[derive(Debug)]
pub struct Synced {
    /// The write generation the fsync covered.
    pub generation: u64,
    /// The fsync's outcome.
    pub result: std::io::Result<()>,
}

#[derive(Default)]
struct Wanted {
    generation: u64,
    stop: bool,
}

/// The thread that fsyncs the block log; stopped when dropped.
pub struct LogSyncer {
    wanted: Arc<(Mutex<Wanted>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LogSyncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogSyncer")
    }
}

impl LogSyncer {
    /// Starts the thread on `file` (a handle on the block log); results come back on the
    /// returned channel.
    pub fn start(file: File) -> std::io::Result<(LogSyncer, mpsc::UnboundedReceiver<Synced>)> {
        let wanted: Arc<(Mutex<Wanted>, Condvar)> = Arc::default();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let shared = wanted.clone();
        let thread = std::thread::Builder::new()
            .name("kvchain-blocksync".into())
            .spawn(move || run(&file, &shared, &done_tx))?;
        Ok((
            LogSyncer {
                wanted,
                thread: Some(thread),
            },
            done_rx,
        ))
    }

    /// Asks for an fsync covering every write up to `generation`.
    pub fn request(&self, generation: u64) {
        let (lock, wake) = &*self.wanted;
        let mut wanted = lock.lock().unwrap_or_else(|e| e.into_inner());
        wanted.generation = wanted.generation.max(generation);
        wake.notify_one();
    }
}

impl Drop for LogSyncer {
    fn drop(&mut self) {
        let (lock, wake) = &*self.wanted;
        lock.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(file: &File, wanted: &(Mutex<Wanted>, Condvar), done: &mpsc::UnboundedSender<Synced>) {
    let (lock, wake) = wanted;
    let mut synced = 0;
    loop {
        let generation = {
            let mut w = lock.lock().unwrap_or_else(|e| e.into_inner());
            while !w.stop && w.generation <= synced {
                w = wake.wait(w).unwrap_or_else(|e| e.into_inner());
            }
            if w.stop {
                return;
            }
            w.generation
        };
        // Everything written before this call is covered, up to `generation` at least.
        let result = file.sync_data();
        if result.is_ok() {
            synced = generation;
        }
        let failed = result.is_err();
        if done.send(Synced { generation, result }).is_err() {
            return;
        }
        if failed {
            // Asked again by the node when it retries; do not spin on a failing disk.
            synced = generation;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn each_request_is_answered_with_a_generation_at_least_as_high() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("log")).unwrap();
        let (syncer, mut done) = LogSyncer::start(file).unwrap();
        for generation in [1, 2, 3, 10] {
            syncer.request(generation);
            let mut got = 0;
            while got < generation {
                let s = tokio::time::timeout(Duration::from_secs(10), done.recv())
                    .await
                    .expect("an answer within 10 s")
                    .expect("the syncer is running");
                assert!(s.result.is_ok());
                got = s.generation;
            }
        }
        drop(syncer); // joins the thread: the test would hang if it did not stop
        assert!(done.recv().await.is_none());
    }
}
