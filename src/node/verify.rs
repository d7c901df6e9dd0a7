//! Signature checks off the node task. Gossiped txs arrive in batches; the node task
//! screens out what it knows already and hands the rest here, where each batch is checked
//! at once (ed25519 batch verification) on tokio's blocking pool. The task then applies
//! only checked txs, so it never stalls on signatures and the checks use every core.
//!
//! Bounded: at most a set number of batches are checked at a time and a set number wait;
//! past that a batch is refused and the caller drops it or checks it itself. With one
//! batch at a time, batches come back in the order they were handed in (blocks need that:
//! a child checked before its parent would look like an orphan).

use crate::chain::{Tx, TxId, VerifiedTx};
use std::collections::VecDeque;
use tokio::sync::mpsc;

/// How many batches a verifier checks at once, and how many more may wait.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Batches checked at the same time.
    pub running: usize,
    /// Batches waiting for a turn.
    pub waiting: usize,
}

/// For gossiped txs: as many at once as a small machine has cores, and a deep queue.
pub const TX_CHECKS: Bounds = Bounds {
    running: 4,
    waiting: 256,
};
/// For gossiped blocks: one at a time, in order; up to 32 (of 1 MiB at most) waiting.
pub const BLOCK_CHECKS: Bounds = Bounds {
    running: 1,
    waiting: 32,
};

/// A checked batch, with the ticket it was handed in with.
#[derive(Debug)]
pub struct Checked<T> {
    /// What the caller gave with the batch (who sent it, which gossip message).
    pub ticket: T,
    /// Every tx checked, or the id of the first whose signature is bad.
    pub result: Result<Vec<VerifiedTx>, TxId>,
}

/// The queue of batches to check and the channel their results come back on.
#[derive(Debug)]
pub struct Verifier<T> {
    bounds: Bounds,
    running: usize,
    waiting: VecDeque<(T, Vec<Tx>)>,
    done_tx: mpsc::UnboundedSender<Checked<T>>,
    done_rx: mpsc::UnboundedReceiver<Checked<T>>,
}

impl<T: Send + 'static> Verifier<T> {
    /// An idle verifier within `bounds`.
    pub fn new(bounds: Bounds) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Verifier {
            bounds,
            running: 0,
            waiting: VecDeque::new(),
            done_tx,
            done_rx,
        }
    }

    /// Queues `txs` for checking; when the queue is full, nothing is queued and the
    /// ticket comes back.
    pub fn submit(&mut self, ticket: T, txs: Vec<Tx>) -> Result<(), T> {
        if self.running < self.bounds.running {
            self.start(ticket, txs);
        } else if self.waiting.len() < self.bounds.waiting {
            self.waiting.push_back((ticket, txs));
        } else {
            return Err(ticket);
        }
        Ok(())
    }

    /// Batches handed in and not yet returned by [`Verifier::next`].
    pub fn pending(&self) -> usize {
        self.running + self.waiting.len()
    }

    fn start(&mut self, ticket: T, txs: Vec<Tx>) {
        self.running += 1;
        let done = self.done_tx.clone();
        tokio::task::spawn_blocking(move || {
            let ids: Vec<TxId> = txs.iter().map(Tx::id).collect();
            let result = VerifiedTx::check_all(txs).map_err(|i| ids[i]);
            // The receiver lives as long as the verifier; if it is gone, so is the node.
            let _ = done.send(Checked { ticket, result });
        });
    }

    /// The next checked batch. Cancel-safe: a batch is counted as returned only once
    /// it is handed out.
    pub async fn next(&mut self) -> Checked<T> {
        // The verifier holds a sender itself, so the channel never closes.
        let checked = match self.done_rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        };
        self.running -= 1;
        if let Some((ticket, txs)) = self.waiting.pop_front() {
            self.start(ticket, txs);
        }
        checked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Keypair, Op};

    fn tx(k: &Keypair, n: u64) -> Tx {
        let op = Op::Put {
            key: format!("k{n}"),
            value: vec![1],
        };
        Tx::new(k, op, n, 1).unwrap()
    }

    #[tokio::test]
    async fn batches_come_back_checked_and_a_forgery_is_named() {
        let k = Keypair::generate();
        let mut v = Verifier::new(TX_CHECKS);
        let good: Vec<Tx> = (0..10).map(|n| tx(&k, n)).collect();
        let mut bad = good.clone();
        bad[4] = bad[4].with_signature(good[5].signature());
        assert!(v.submit("good", good.clone()).is_ok());
        assert!(v.submit("bad", bad.clone()).is_ok());
        let mut seen = Vec::new();
        for _ in 0..2 {
            let c = tokio::time::timeout(std::time::Duration::from_secs(10), v.next())
                .await
                .expect("a batch is checked within 10 s");
            seen.push(c.ticket);
            match c.ticket {
                "good" => {
                    let txs: Vec<Tx> = c
                        .result
                        .unwrap()
                        .into_iter()
                        .map(VerifiedTx::into_tx)
                        .collect();
                    assert_eq!(txs, good);
                }
                _ => assert_eq!(c.result.unwrap_err(), bad[4].id()),
            }
        }
        seen.sort();
        assert_eq!(seen, ["bad", "good"]);
        assert_eq!(v.pending(), 0);
    }

    #[tokio::test]
    async fn one_at_a_time_keeps_the_order() {
        let k = Keypair::generate();
        let mut v = Verifier::new(BLOCK_CHECKS);
        for n in 0..10u64 {
            let batch = (0..n).map(|i| tx(&k, i)).collect();
            assert!(v.submit(n, batch).is_ok());
        }
        let order = async {
            let mut got = Vec::new();
            for _ in 0..10 {
                got.push(v.next().await.ticket);
            }
            got
        };
        let got = tokio::time::timeout(std::time::Duration::from_secs(60), order)
            .await
            .expect("every batch is checked within 60 s");
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn the_queue_is_bounded() {
        let k = Keypair::generate();
        let mut v = Verifier::new(TX_CHECKS);
        let batch = vec![tx(&k, 0)];
        for i in 0..TX_CHECKS.running + TX_CHECKS.waiting {
            assert!(v.submit(i, batch.clone()).is_ok(), "batch {i} fits");
        }
        assert_eq!(
            v.submit(usize::MAX, batch.clone()),
            Err(usize::MAX),
            "one more is refused"
        );
        let drain = async {
            for _ in 0..TX_CHECKS.running + TX_CHECKS.waiting {
                v.next().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), drain)
            .await
            .expect("every batch is checked within 60 s");
        assert_eq!(v.pending(), 0);
        assert!(v.submit(0, batch).is_ok(), "room again once drained");
    }
}
