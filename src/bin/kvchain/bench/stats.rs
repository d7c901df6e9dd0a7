//! What the load generator measured: per-write samples, their latency percentiles, and
//! the blocks the network mined meanwhile.

use serde::Serialize;
use std::collections::BTreeMap;

/// What became of one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Answered `pending` (no wait, or the wait ran out).
    Pending,
    /// Answered `included`.
    Included,
    /// Answered `confirmed`.
    Confirmed,
    /// Answered with an HTTP error (the node refused it, or is out of space).
    Refused,
    /// No answer: the connection failed.
    Unanswered,
}

/// One write as the client saw it.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// When it was due, in seconds since the run started (open loop: its slot, not when
    /// a connection got free, so a stall is not hidden).
    pub due: f64,
    /// When its answer came, in seconds since the run started.
    pub done: f64,
    /// What the answer said.
    pub outcome: Outcome,
    /// Which node (its place in the `--node` list) the write went to.
    pub node: usize,
    /// The connection it went on; the key is `PREFIX-CONN-SEQ`.
    pub conn: usize,
    /// Its place among the connection's writes.
    pub seq: u64,
}

impl Sample {
    /// Due to answered, in milliseconds.
    pub fn latency_ms(&self) -> f64 {
        (self.done - self.due) * 1e3
    }

    /// The outcome's name, as in the JSON report.
    pub fn outcome_name(&self) -> &'static str {
        match self.outcome {
            Outcome::Pending => "pending",
            Outcome::Included => "included",
            Outcome::Confirmed => "confirmed",
            Outcome::Refused => "refused",
            Outcome::Unanswered => "unanswered",
        }
    }
}

/// Writes every sample as a CSV row (`due_unix_s,done_unix_s,node,conn,seq,outcome,
/// latency_ms`), times as Unix seconds given `start_unix`, the run's start; nodes count
/// from 1; for plots over time, and to read each write's key back.
pub fn write_csv(
    out: &mut impl std::io::Write,
    samples: &[Sample],
    start_unix: f64,
) -> std::io::Result<()> {
    writeln!(
        out,
        "due_unix_s,done_unix_s,node,conn,seq,outcome,latency_ms"
    )?;
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by(|a, b| a.due.total_cmp(&b.due));
    for s in sorted {
        writeln!(
            out,
            "{:.4},{:.4},{},{},{},{},{:.2}",
            start_unix + s.due,
            start_unix + s.done,
            s.node + 1,
            s.conn,
            s.seq,
            s.outcome_name(),
            s.latency_ms()
        )?;
    }
    Ok(())
}

/// Latency percentiles, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// How many samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The slowest.
    pub max: f64,
}

impl Latency {
    /// Percentiles of `ms` (nearest rank); all zero when empty.
    pub fn of(mut ms: Vec<f64>) -> Latency {
        if ms.is_empty() {
            return Latency::default();
        }
        ms.sort_by(f64::total_cmp);
        let rank = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        Latency {
            count: ms.len(),
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: ms[ms.len() - 1],
        }
    }
}

/// Counts of each outcome, for the report.
pub fn tally(samples: &[Sample]) -> BTreeMap<Outcome, usize> {
    let mut counts = BTreeMap::new();
    for s in samples {
        *counts.entry(s.outcome).or_insert(0) += 1;
    }
    counts
}

/// The blocks mined during the run, read from one node's canonical chain afterwards.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Blocks {
    /// Blocks added to the canonical chain.
    pub mined: u64,
    /// Txs in them.
    pub txs: u64,
    /// Most txs in one of them.
    pub max_txs: u64,
    /// Mean time between them, in seconds (from their header times).
    pub interval: f64,
}

impl Blocks {
    /// Summarises blocks given as (header time in ms, tx count), in height order.
    pub fn of(blocks: &[(u64, u64)]) -> Blocks {
        let mined = blocks.len() as u64;
        let txs = blocks.iter().map(|b| b.1).sum();
        let max_txs = blocks.iter().map(|b| b.1).max().unwrap_or(0);
        let interval = match (blocks.first(), blocks.last()) {
            (Some(first), Some(last)) if mined > 1 => {
                last.0.saturating_sub(first.0) as f64 / 1e3 / (mined - 1) as f64
            }
            _ => 0.0,
        };
        Blocks {
            mined,
            txs,
            max_txs,
            interval,
        }
    }

    /// Mean txs per block.
    pub fn txs_per_block(&self) -> f64 {
        if self.mined == 0 {
            0.0
        } else {
            self.txs as f64 / self.mined as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let l = Latency::of((1..=100).map(f64::from).collect());
        assert_eq!(
            (l.count, l.p50, l.p90, l.p99, l.max),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        let one = Latency::of(vec![7.0]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert_eq!(Latency::of(Vec::new()).count, 0);
    }

    #[test]
    fn blocks_summary_counts_txs_and_interval() {
        let b = Blocks::of(&[(1_000, 3), (2_000, 5), (4_000, 1)]);
        assert_eq!((b.mined, b.txs, b.max_txs), (3, 9, 5));
        assert!((b.interval - 1.5).abs() < 1e-9);
        assert!((b.txs_per_block() - 3.0).abs() < 1e-9);
        assert_eq!(Blocks::of(&[]).txs_per_block(), 0.0);
    }

    #[test]
    fn tally_counts_each_outcome() {
        let s = |outcome| Sample {
            due: 0.0,
            done: 0.001,
            outcome,
            node: 0,
            conn: 0,
            seq: 0,
        };
        let t = tally(&[
            s(Outcome::Confirmed),
            s(Outcome::Confirmed),
            s(Outcome::Refused),
        ]);
        assert_eq!(t.get(&Outcome::Confirmed), Some(&2));
        assert_eq!(t.get(&Outcome::Refused), Some(&1));
        assert!((s(Outcome::Pending).latency_ms() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn csv_has_one_row_per_sample_in_due_order_with_unix_times() {
        let s = |due: f64, outcome| Sample {
            due,
            done: due + 0.5,
            outcome,
            node: 1,
            conn: 3,
            seq: 7,
        };
        let mut out = Vec::new();
        write_csv(
            &mut out,
            &[s(2.0, Outcome::Unanswered), s(1.0, Outcome::Confirmed)],
            100.0,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "due_unix_s,done_unix_s,node,conn,seq,outcome,latency_ms"
        );
        assert_eq!(lines[1], "101.0000,101.5000,2,3,7,confirmed,500.00");
        assert_eq!(lines[2], "102.0000,102.5000,2,3,7,unanswered,500.00");
        assert_eq!(lines.len(), 3);
    }
}
