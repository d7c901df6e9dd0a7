//! The journal of this node's own writes that are not yet confirmed, so that a crash of
//! the node does not lose a write it already acknowledged with a receipt.
//!
//! Records are written in batches ([`Journal::commit`]): new writes are fsynced, once for
//! the whole batch; "done" records are not fsynced on their own (losing one only makes a
//! restart offer a confirmed write to the mempool again, which refuses it as a replay).
//! [`super::group_commit`] runs a journal on a thread of its own.

use super::crypto::TxId;
use super::log::FrameLog;
use super::tx::Tx;
use crate::codec::{self, MAX_MESSAGE_BYTES};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;

/// File name of the journal inside a data dir.
pub const JOURNAL_FILE: &str = "journal.log";
/// Fewest finished entries that make the file worth compacting.
const COMPACT_AFTER: usize = 4096;

#[derive(Serialize, Deserialize)]
enum Record {
    Add(Tx),
    Done(TxId),
}

/// Own writes that were accepted but are not yet confirmed.
#[derive(Debug)]
pub struct Journal {
    log: FrameLog,
    pending: HashMap<TxId, (u64, Tx)>,
    next: u64,
    finished: usize,
}

impl Journal {
    /// Opens the journal in `dir` and returns it with the pending writes, oldest first.
    pub fn open(dir: &Path) -> io::Result<(Journal, Vec<Tx>)> {
        let (log, frames, _) = FrameLog::open(&dir.join(JOURNAL_FILE))?;
        let mut journal = Journal {
            log,
            pending: HashMap::new(),
            next: 0,
            finished: 0,
        };
        for frame in frames {
            match codec::decode::<Record>(&frame, MAX_MESSAGE_BYTES) {
                Ok(Record::Add(tx)) => {
                    journal.pending.insert(tx.id(), (journal.next, tx));
                    journal.next += 1;
                }
                Ok(Record::Done(id)) => {
                    journal.pending.remove(&id);
                }
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable journal record"),
            }
        }
        journal.compact()?;
        let pending = journal.pending();
        Ok((journal, pending))
    }

    /// The pending writes, oldest first.
    pub fn pending(&self) -> Vec<Tx> {
        let mut list: Vec<_> = self.pending.values().collect();
        list.sort_by_key(|(seq, _)| *seq);
        list.into_iter().map(|(_, tx)| tx.clone()).collect()
    }

    /// Records a new own write (on disk before this returns).
    pub fn add(&mut self, tx: &Tx) -> io::Result<()> {
        self.commit(std::slice::from_ref(tx), &[], true)
    }

    /// Records that a write is confirmed (or finally failed) and need not be kept; not
    /// fsynced on its own.
    pub fn done(&mut self, id: &TxId) -> io::Result<()> {
        self.commit(&[], std::slice::from_ref(id), false)
    }

    /// Writes `adds` (new own writes) and `dones` (writes no longer to keep) in one
    /// append, fsynced if any write is new or `sync` is asked. Returns once the new writes
    /// are on disk; on failure the file is as before and no write is recorded as added.
    pub fn commit(&mut self, adds: &[Tx], dones: &[TxId], sync: bool) -> io::Result<()> {
        let mut records = Vec::new();
        let mut added = HashSet::new();
        for tx in adds {
            let id = tx.id();
            if !self.pending.contains_key(&id) && added.insert(id) {
                records.push(codec::encode(&Record::Add(tx.clone())));
            }
        }
        let mut finished = 0;
        for id in dones {
            // Forgotten even if the record is then lost: see the module doc.
            if self.pending.remove(id).is_some() {
                records.push(codec::encode(&Record::Done(*id)));
                finished += 1;
            }
        }
        if !records.is_empty() {
            let frames: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            self.log.append_all(&frames, sync || !added.is_empty())?;
        } else if sync {
            self.log.sync()?;
        }
        for tx in adds {
            if added.remove(&tx.id()) {
                self.pending.insert(tx.id(), (self.next, tx.clone()));
                self.next += 1;
            }
        }
        self.finished += finished;
        if self.should_compact() {
            // A failed compaction leaves the file as it was: only a longer replay.
            if let Err(e) = self.compact() {
                tracing::warn!(error = %e, "could not compact the journal");
            }
        }
        Ok(())
    }

    /// Whether finished entries outnumber both [`COMPACT_AFTER`] and the pending ones. A
    /// compaction rewrites every pending write, so waiting for as many finished ones
    /// bounds its cost at one record rewritten per record finished, while the file stays
    /// within twice the pending writes (plus `COMPACT_AFTER`). With a fixed threshold of
    /// 1,024 and some 3,000 writes pending, one node at 256 in flight compacted 15 times
    /// a second, each time rewriting three records per one finished, with two fsyncs
    /// that every waiting writer sat behind.
    fn should_compact(&self) -> bool {
        self.finished >= COMPACT_AFTER.max(self.pending.len())
    }

    fn compact(&mut self) -> io::Result<()> {
        let started = std::time::Instant::now();
        let frames: Vec<Vec<u8>> = self
            .pending()
            .into_iter()
            .map(|tx| codec::encode(&Record::Add(tx)))
            .collect();
        self.log.rewrite(&frames)?;
        tracing::debug!(
            pending = frames.len(),
            finished = self.finished,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "journal compacted"
        );
        self.finished = 0;
        Ok(())
    }

    /// Number of pending writes.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no write is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::log::FRAME_HEADER;
    use crate::chain::{Keypair, Op};

    #[test]
    fn survives_reopen_and_forgets_done() {
        let dir = tempfile::tempdir().unwrap();
        let kp = Keypair::generate();
        let txs: Vec<Tx> = (0..3)
            .map(|i| {
                Tx::new(
                    &kp,
                    Op::Delete {
                        key: format!("k{i}"),
                    },
                    i,
                    0,
                )
                .unwrap()
            })
            .collect();
        {
            let (mut j, pending) = Journal::open(dir.path()).unwrap();
            assert!(pending.is_empty());
            for tx in &txs {
                j.add(tx).unwrap();
            }
            j.done(&txs[1].id()).unwrap();
        }
        let (j, pending) = Journal::open(dir.path()).unwrap();
        assert_eq!(pending, vec![txs[0].clone(), txs[2].clone()]);
        assert_eq!(j.len(), 2);
    }

    /// With thousands of writes pending and a steady stream finishing, the file stays
    /// within its bound (compactions happen), and every pending write survives them.
    #[test]
    fn compaction_bounds_the_file_and_keeps_the_pending() {
        // Test code on a temp dir of its own: an I/O error fails the test, as it should.
        let dir = tempfile::tempdir().unwrap();
        let kp = Keypair::generate();
        let tx = |i: u64| {
            Tx::new(
                &kp,
                Op::Delete {
                    key: format!("k{i}"),
                },
                i,
                0,
            )
            .unwrap()
        };
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        let (live, total) = (3_000u64, 12_000u64);
        let record = |i| codec::encode(&Record::Add(tx(i))).len() + FRAME_HEADER;
        let done = codec::encode(&Record::Done(tx(0).id())).len() + FRAME_HEADER;
        // Records with the longest key the test writes, so the bound holds for all.
        let bound = (2 * live as usize + COMPACT_AFTER) * (record(total) + done);
        let mut sent = Vec::new();
        for i in 0..total {
            let t = tx(i);
            j.add(&t).unwrap();
            sent.push(t.id());
            if i >= live {
                j.done(&sent[(i - live) as usize]).unwrap();
            }
            assert!(
                j.log.len() as usize <= bound,
                "{} bytes at write {i}",
                j.log.len()
            );
        }
        drop(j);
        let (j, pending) = Journal::open(dir.path()).unwrap();
        let kept: Vec<TxId> = pending.iter().map(Tx::id).collect();
        assert_eq!(kept, sent[(total - live) as usize..]);
        assert_eq!(j.len(), live as usize);
    }
}
