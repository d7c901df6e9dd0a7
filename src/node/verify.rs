//! Signature checks off the node task. Gossiped txs arrive in batches; the node task
//! screens out what it knows already and hands the rest here, where they are checked
//! together (ed25519 batch verification) on tokio's blocking pool. The task then applies
//! only checked txs, so it never stalls on signatures and the checks use every core.
//!
//! Batches that wait for a turn are merged into one job (up to a set number of txs), so a
//! flood of one-tx messages costs no more than a few large batches. Bounded: past a set
//! number of waiting txs or batches, a batch is refused and comes back to the caller.
//! With one job at a time, batches come back in the order they were handed in (blocks
//! need that: a child checked before its parent would look like an orphan).

use crate::chain::{Tx, TxId, VerifiedTx};
use prometheus_client::metrics::counter::Counter;
use std::collections::VecDeque;
use tokio::sync::mpsc;

/// How much a verifier checks at once, and how much may wait.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Jobs checked at the same time.
    pub running: usize,
    /// Txs a waiting job may grow to by merging batches.
    pub job_txs: usize,
    /// Txs waiting in all (a batch counts at least one).
    pub waiting_txs: usize,
    /// Batches waiting in all.
    pub waiting_batches: usize,
}

/// For gossiped txs: two jobs at once, up to 32k txs (about 6 MB) waiting.
pub const TX_CHECKS: Bounds = Bounds {
    running: 2,
    job_txs: 2048,
    waiting_txs: 32 * 1024,
    waiting_batches: 32 * 1024,
};
/// For gossiped blocks: one job at a time, in order; up to 32 blocks waiting.
pub const BLOCK_CHECKS: Bounds = Bounds {
    running: 1,
    job_txs: 8192,
    waiting_txs: 32 * 1024,
    waiting_batches: 32,
};

/// A checked batch, with the ticket it was handed in with.
#[derive(Debug)]
pub struct Checked<T> {
    /// What the caller gave with the batch (who sent it, which gossip message).
    pub ticket: T,
    /// Every tx checked, or the id of the first whose signature is bad.
    pub result: Result<Vec<VerifiedTx>, TxId>,
}

/// Batches checked together.
struct Job<T> {
    batches: Vec<(T, Vec<Tx>)>,
    txs: usize,
}

/// The queue of batches to check and the channel their results come back on.
pub struct Verifier<T> {
    bounds: Bounds,
    /// Jobs being checked.
    jobs: usize,
    /// Batches in those jobs or ready, not yet handed out.
    unreturned: usize,
    waiting: VecDeque<Job<T>>,
    waiting_txs: usize,
    waiting_batches: usize,
    done_tx: mpsc::UnboundedSender<Vec<Checked<T>>>,
    done_rx: mpsc::UnboundedReceiver<Vec<Checked<T>>>,
    /// Results of a finished job not yet handed out.
    ready: VecDeque<Checked<T>>,
    /// Counts the signatures checked, if given.
    counter: Option<Counter>,
}

impl<T> std::fmt::Debug for Verifier<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Verifier({} jobs running, {} batches waiting)",
            self.jobs, self.waiting_batches
        )
    }
}

impl<T: Send + 'static> Verifier<T> {
    /// An idle verifier within `bounds`.
    pub fn new(bounds: Bounds) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Verifier {
            bounds,
            jobs: 0,
            unreturned: 0,
            waiting: VecDeque::new(),
            waiting_txs: 0,
            waiting_batches: 0,
            done_tx,
            done_rx,
            ready: VecDeque::new(),
            counter: None,
        }
    }

    /// The same verifier, adding the number of signatures it checks to `counter`.
    pub fn counting(mut self, counter: Counter) -> Self {
        self.counter = Some(counter);
        self
    }

    /// Queues `txs` for checking; when too much waits, nothing is queued and the ticket
    /// comes back.
    pub fn submit(&mut self, ticket: T, txs: Vec<Tx>) -> Result<(), T> {
        let weight = txs.len().max(1);
        if self.jobs < self.bounds.running && self.waiting.is_empty() {
            let job = Job {
                txs: txs.len(),
                batches: vec![(ticket, txs)],
            };
            self.start(job);
            return Ok(());
        }
        if self.waiting_txs + weight > self.bounds.waiting_txs
            || self.waiting_batches >= self.bounds.waiting_batches
        {
            return Err(ticket);
        }
        self.waiting_txs += weight;
        self.waiting_batches += 1;
        match self.waiting.back_mut() {
            Some(job) if job.txs + txs.len() <= self.bounds.job_txs => {
                job.txs += txs.len();
                job.batches.push((ticket, txs));
            }
            _ => self.waiting.push_back(Job {
                txs: txs.len(),
                batches: vec![(ticket, txs)],
            }),
        }
        Ok(())
    }

    /// Batches handed in and not yet returned by [`Verifier::next`].
    pub fn pending(&self) -> usize {
        self.unreturned + self.waiting_batches
    }

    fn start(&mut self, job: Job<T>) {
        if let Some(counter) = &self.counter {
            counter.inc_by(job.txs as u64);
        }
        self.jobs += 1;
        self.unreturned += job.batches.len();
        let done = self.done_tx.clone();
        tokio::task::spawn_blocking(move || {
            // The receiver lives as long as the verifier; if it is gone, so is the node.
            let _ = done.send(check(job));
        });
    }

    /// The next checked batch. Cancel-safe: a batch is counted as returned only once
    /// it is handed out.
    pub async fn next(&mut self) -> Checked<T> {
        loop {
            if let Some(checked) = self.ready.pop_front() {
                self.unreturned -= 1;
                return checked;
            }
            // The verifier holds a sender itself, so the channel never closes.
            let Some(results) = self.done_rx.recv().await else {
                return std::future::pending().await;
            };
            self.jobs -= 1;
            self.ready.extend(results);
            while self.jobs < self.bounds.running {
                let Some(job) = self.waiting.pop_front() else {
                    break;
                };
                self.waiting_batches -= job.batches.len();
                self.waiting_txs -= job.batches.iter().map(|b| b.1.len().max(1)).sum::<usize>();
                self.start(job);
            }
        }
    }
}

/// Checks a job: all its txs in one batch, and only when that fails each batch alone, so
/// that one bad batch does not fail the others merged with it.
fn check<T>(job: Job<T>) -> Vec<Checked<T>> {
    let all: Vec<Tx> = job
        .batches
        .iter()
        .flat_map(|b| b.1.iter().cloned())
        .collect();
    let mut all_good = match VerifiedTx::check_all(all) {
        Ok(good) => Some(good.into_iter()),
        Err(_) => None,
    };
    job.batches
        .into_iter()
        .map(|(ticket, txs)| {
            let result = match &mut all_good {
                Some(good) => Ok(good.by_ref().take(txs.len()).collect()),
                None => {
                    let ids: Vec<TxId> = txs.iter().map(Tx::id).collect();
                    VerifiedTx::check_all(txs).map_err(|i| ids[i])
                }
            };
            Checked { ticket, result }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Keypair, Op};
    use std::time::Duration;

    fn tx(k: &Keypair, n: u64) -> Tx {
        let op = Op::Put {
            key: format!("k{n}"),
            value: vec![1],
        };
        Tx::new(k, op, n, 1).unwrap()
    }

    /// The next `n` results, within a minute.
    async fn take<T: Send + 'static>(v: &mut Verifier<T>, n: usize) -> Vec<Checked<T>> {
        let all = async {
            let mut got = Vec::new();
            for _ in 0..n {
                got.push(v.next().await);
            }
            got
        };
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("every batch is checked within 60 s")
    }

    #[tokio::test]
    async fn a_forgery_fails_its_own_batch_only_even_when_merged() {
        let k = Keypair::generate();
        let one = Bounds {
            running: 1,
            ..TX_CHECKS
        };
        let mut v = Verifier::new(one);
        let good: Vec<Tx> = (0..10).map(|n| tx(&k, n)).collect();
        let mut bad = good.clone();
        bad[4] = bad[4].with_signature(good[5].signature());
        // The first starts at once; the next three wait and are merged into one job.
        for (name, batch) in [
            ("first", &good),
            ("good", &good),
            ("bad", &bad),
            ("last", &good),
        ] {
            assert!(v.submit(name, batch.clone()).is_ok());
        }
        assert_eq!(v.pending(), 4);
        for c in take(&mut v, 4).await {
            match c.ticket {
                "bad" => assert_eq!(c.result.unwrap_err(), bad[4].id()),
                _ => {
                    let txs: Vec<Tx> = c
                        .result
                        .unwrap()
                        .into_iter()
                        .map(VerifiedTx::into_tx)
                        .collect();
                    assert_eq!(txs, good, "{}", c.ticket);
                }
            }
        }
        assert_eq!(v.pending(), 0);
    }

    #[tokio::test]
    async fn one_job_at_a_time_keeps_the_order() {
        let k = Keypair::generate();
        let mut v = Verifier::new(BLOCK_CHECKS);
        for n in 0..10u64 {
            let batch = (0..n).map(|i| tx(&k, i)).collect();
            assert!(v.submit(n, batch).is_ok());
        }
        let got: Vec<u64> = take(&mut v, 10)
            .await
            .into_iter()
            .map(|c| c.ticket)
            .collect();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn waiting_is_bounded_in_txs_and_in_batches() {
        let k = Keypair::generate();
        let small = Bounds {
            running: 1,
            job_txs: 4,
            waiting_txs: 6,
            waiting_batches: 3,
        };
        let mut v = Verifier::new(small);
        let two = vec![tx(&k, 0), tx(&k, 1)];
        assert!(v.submit(0, two.clone()).is_ok(), "starts at once");
        assert!(v.submit(1, two.clone()).is_ok());
        assert!(v.submit(2, two.clone()).is_ok());
        assert!(v.submit(3, two.clone()).is_ok(), "6 txs wait");
        assert_eq!(v.submit(4, vec![tx(&k, 2)]), Err(4), "a 7th tx is refused");
        take(&mut v, 4).await;
        assert!(v.submit(5, Vec::new()).is_ok());
        assert!(
            v.submit(6, Vec::new()).is_ok(),
            "an empty batch counts as one tx"
        );
        assert!(v.submit(7, Vec::new()).is_ok());
        assert!(v.submit(8, Vec::new()).is_ok(), "3 batches wait");
        assert_eq!(v.submit(9, Vec::new()), Err(9), "a 4th batch is refused");
        take(&mut v, 4).await;
        assert_eq!(v.pending(), 0);
    }

    #[tokio::test]
    async fn a_flood_of_one_tx_batches_is_merged_and_each_answered() {
        let k = Keypair::generate();
        let mut v = Verifier::new(TX_CHECKS);
        let n = 5_000;
        for i in 0..n {
            assert!(v.submit(i, vec![tx(&k, i)]).is_ok(), "batch {i} fits");
        }
        let mut got: Vec<u64> = take(&mut v, n as usize)
            .await
            .into_iter()
            .map(|c| {
                assert_eq!(c.result.as_ref().map(Vec::len), Ok(1));
                c.ticket
            })
            .collect();
        got.sort();
        assert_eq!(got, (0..n).collect::<Vec<_>>());
    }
}
