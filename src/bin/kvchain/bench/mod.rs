//! `kvchain bench`: a load generator for nodes' HTTP APIs. It keeps a fixed number of
//! writes in flight (closed loop) or sends them at a fixed rate (open loop), spread over
//! one or more nodes, each write on a keep-alive connection; then it reports writes per
//! second, latency percentiles and the blocks the network mined meanwhile.
//!
//! In open loop each write has a due time (its slot at the given rate) and its latency is
//! counted from that time, so a node that stalls is charged for the writes it held up
//! (no coordinated omission).

mod conn;
mod stats;

use anyhow::{bail, Context, Result};
use conn::{Conn, Target};
use serde::{Deserialize, Serialize};
use stats::{Blocks, Latency, Outcome, Sample};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How writes are offered.
#[derive(Clone, Copy, Debug)]
pub enum Load {
    /// This many writes in flight at all times.
    InFlight(usize),
    /// This many writes per second, on at most `connections` connections.
    Rate { per_sec: f64, connections: usize },
}

/// What the node should wait for before it answers a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Wait {
    /// Answer once the write is journaled (`pending`).
    None,
    /// Answer once it is in a block.
    Included,
    /// Answer once it is confirmed.
    Confirmed,
}

impl Wait {
    fn query(self) -> &'static str {
        match self {
            Wait::None => "",
            Wait::Included => "wait=included&",
            Wait::Confirmed => "wait=confirmed&",
        }
    }

    /// Whether an answer reached what was waited for.
    fn reached(self, outcome: Outcome) -> bool {
        match self {
            Wait::None => matches!(
                outcome,
                Outcome::Pending | Outcome::Included | Outcome::Confirmed
            ),
            Wait::Included => matches!(outcome, Outcome::Included | Outcome::Confirmed),
            Wait::Confirmed => outcome == Outcome::Confirmed,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Wait::None => "accepted",
            Wait::Included => "included",
            Wait::Confirmed => "confirmed",
        }
    }
}

/// A load run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The nodes' API base URLs; writes go to them in turn.
    pub nodes: Vec<String>,
    /// How writes are offered.
    pub load: Load,
    /// What each write waits for.
    pub wait: Wait,
    /// How long writes are offered, after the warm-up.
    pub duration: Duration,
    /// Writes sent before measuring starts (not counted).
    pub warmup: Duration,
    /// Bytes per value.
    pub value_size: usize,
    /// Longest time one write may wait for its answer.
    pub timeout: Duration,
    /// Keys are `PREFIX-CONNECTION-SEQ`.
    pub prefix: String,
    /// Bearer token for the writes.
    pub token: Option<String>,
    /// Write every write's sample to this CSV file (see [`stats::write_csv`]).
    pub samples: Option<std::path::PathBuf>,
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    nodes: usize,
    load: String,
    wait: &'static str,
    seconds: f64,
    counts: std::collections::BTreeMap<Outcome, usize>,
    /// Writes that reached `wait` per second, counted over the measured window.
    puts_per_sec: f64,
    latency_ms: Latency,
    blocks: Blocks,
    /// The CPU the load generator itself used while offering, in % of one core: it runs
    /// on the machine it measures, and what it uses the nodes do not get.
    client_cpu_pct: Option<f64>,
}

/// Runs the load and prints the report (one JSON line with `json`).
pub async fn run(opts: Options, json: bool) -> Result<()> {
    let targets = opts
        .nodes
        .iter()
        .map(|u| Target::parse(u))
        .collect::<Result<Vec<_>>>()?;
    if targets.is_empty() {
        bail!("give at least one --node");
    }
    let first = &targets[0];
    let mut probe = Conn::open(first, None).await?;
    let start_height = height(&mut probe).await?;

    let start_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let (cpu_before, offered) = (cpu_seconds(), Instant::now());
    let samples = offer(&opts, &targets).await;
    let client_cpu_pct = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| (after - before) / offered.elapsed().as_secs_f64() * 100.0);
    if let Some(path) = &opts.samples {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        stats::write_csv(&mut out, &samples, start_unix)
            .and_then(|()| std::io::Write::flush(&mut out))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let window = opts.duration.as_secs_f64();
    let warm = opts.warmup.as_secs_f64();
    // Writes due in the measured window that got what they waited for.
    let measured: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.due >= warm && opts.wait.reached(s.outcome))
        .collect();
    let in_window = measured.iter().filter(|s| s.done <= warm + window).count();
    let latency = Latency::of(measured.iter().map(|s| s.latency_ms()).collect());

    let mut probe = Conn::open(first, None).await?;
    let end_height = height(&mut probe).await?;
    let blocks = blocks_between(&mut probe, start_height, end_height).await?;
    let report = Report {
        nodes: targets.len(),
        load: match opts.load {
            Load::InFlight(n) => format!("{n} in flight"),
            Load::Rate {
                per_sec,
                connections,
            } => format!("{per_sec} per second on {connections} connections"),
        },
        wait: opts.wait.label(),
        seconds: window,
        counts: stats::tally(&samples),
        puts_per_sec: in_window as f64 / window,
        latency_ms: latency,
        blocks,
        client_cpu_pct,
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print(&report, &opts);
    }
    Ok(())
}

fn print(r: &Report, opts: &Options) {
    println!(
        "load: {} over {} node(s), wait={}, {:.0} s measured after {:.0} s warm-up, values of {} bytes",
        r.load,
        r.nodes,
        r.wait,
        r.seconds,
        opts.warmup.as_secs_f64(),
        opts.value_size
    );
    let counts: Vec<String> = r
        .counts
        .iter()
        .map(|(k, v)| {
            format!(
                "{} {v}",
                serde_json::to_value(k)
                    .ok()
                    .and_then(|k| k.as_str().map(str::to_string))
                    .unwrap_or_default()
            )
        })
        .collect();
    println!("writes: {}", counts.join(", "));
    println!("{} puts/s: {:.0}", r.wait, r.puts_per_sec);
    let l = &r.latency_ms;
    println!(
        "latency ms (put -> {}): p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  (n={})",
        r.wait, l.p50, l.p90, l.p99, l.max, l.count
    );
    let b = &r.blocks;
    println!(
        "blocks: {} mined, {:.1} txs/block (max {}), one every {:.2} s",
        b.mined,
        b.txs_per_block(),
        b.max_txs,
        b.interval
    );
    if let Some(cpu) = r.client_cpu_pct {
        println!("load generator cpu: {cpu:.0}% of one core");
    }
}

/// The CPU time (user and system) this process has used, in seconds.
fn cpu_seconds() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the rusage it is given a valid pointer to, and touches
    // nothing else; on failure it returns -1 and the value is not read.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: getrusage succeeded, so it wrote the whole struct (and zeroed is valid too).
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(secs(usage.ru_utime) + secs(usage.ru_stime))
}

/// The node's canonical height.
async fn height(conn: &mut Conn) -> Result<u64> {
    let status = conn.get_json("/status").await?;
    status["height"].as_u64().context("/status has no height")
}

/// Most blocks read back for the summary (the newest ones).
const MAX_BLOCKS_READ: u64 = 5_000;

/// The canonical blocks after `from` up to `to`, summarised.
async fn blocks_between(conn: &mut Conn, from: u64, to: u64) -> Result<Blocks> {
    let first = (from + 1).max(to.saturating_sub(MAX_BLOCKS_READ - 1));
    let mut blocks = Vec::new();
    for h in first..=to {
        let block = conn.get_json(&format!("/blocks/{h}")).await?;
        let time = block["time"].as_u64().unwrap_or(0);
        let txs = block["txs"].as_array().map_or(0, |t| t.len() as u64);
        blocks.push((time, txs));
    }
    Ok(Blocks::of(&blocks))
}

/// Offers the load on every connection at once; returns every write's sample.
async fn offer(opts: &Options, targets: &[Target]) -> Vec<Sample> {
    let connections = match opts.load {
        Load::InFlight(n) => n,
        Load::Rate { connections, .. } => connections,
    };
    let start = Instant::now();
    let value: Arc<[u8]> = vec![b'v'; opts.value_size].into();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        let worker = Worker {
            node: c % targets.len(),
            id: c,
            of: connections,
            target: targets[c % targets.len()].clone(),
            opts: opts.clone(),
            value: value.clone(),
            start,
        };
        tasks.spawn(worker.run());
    }
    let mut per_connection = Vec::with_capacity(connections);
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(s) => per_connection.push(s),
            Err(e) => tracing::warn!(error = %e, "a load connection failed"),
        }
    }
    // Merged once every connection is done: merging as each one ends copied most of a
    // million samples (and faulted in their pages) on this one thread while the others
    // still waited for their last answers, which were then timed up to 300 ms late.
    per_connection.concat()
}

/// The part of a write's answer the load generator reads.
#[derive(Deserialize)]
struct Answer<'a> {
    status: &'a str,
}

/// One connection's share of the load.
struct Worker {
    node: usize,
    id: usize,
    of: usize,
    target: Target,
    opts: Options,
    value: Arc<[u8]>,
    start: Instant,
}

impl Worker {
    async fn run(self) -> Vec<Sample> {
        let end = (self.opts.warmup + self.opts.duration).as_secs_f64();
        let query = format!(
            "?{}timeout={}ms",
            self.opts.wait.query(),
            self.opts.timeout.as_millis()
        );
        let mut conn: Option<Conn> = None;
        let mut samples = Vec::new();
        for seq in 0u64.. {
            let due = match self.opts.load {
                Load::InFlight(_) => self.start.elapsed().as_secs_f64(),
                Load::Rate { per_sec, .. } => {
                    let slot = (seq as f64 * self.of as f64 + self.id as f64) / per_sec;
                    let wake = self.start + Duration::from_secs_f64(slot);
                    tokio::time::sleep_until(wake.into()).await;
                    slot
                }
            };
            if due >= end {
                break;
            }
            let path = format!("/kvs/{}-{}-{seq}{query}", self.opts.prefix, self.id);
            let outcome = self.write(&mut conn, &path).await;
            samples.push(Sample {
                due,
                done: self.start.elapsed().as_secs_f64(),
                outcome,
                node: self.node,
                conn: self.id,
                seq,
            });
        }
        samples
    }

    /// One write on `conn`, opened (again) if needed.
    async fn write(&self, conn: &mut Option<Conn>, path: &str) -> Outcome {
        let limit = self.opts.timeout + Duration::from_secs(10);
        let attempt = async {
            if conn.as_ref().is_none_or(Conn::closing) {
                *conn = Some(Conn::open(&self.target, self.opts.token.clone()).await?);
            }
            let c = conn.as_mut().context("no connection")?;
            c.call("PUT", path, &self.value).await
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(Ok((status, body))) if (200..300).contains(&status) => {
                match serde_json::from_slice::<Answer>(&body).map(|a| a.status) {
                    Ok("confirmed") => Outcome::Confirmed,
                    Ok("included") => Outcome::Included,
                    Ok("pending") => Outcome::Pending,
                    _ => Outcome::Refused,
                }
            }
            Ok(Ok((status, body))) => {
                tracing::debug!(%status, body = %String::from_utf8_lossy(&body), "write refused");
                Outcome::Refused
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "write unanswered");
                *conn = None;
                Outcome::Unanswered
            }
            Err(_) => {
                *conn = None;
                Outcome::Unanswered
            }
        }
    }
}
