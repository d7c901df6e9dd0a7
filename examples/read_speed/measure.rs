//! The measurements of `read_speed`: per-call timings of in-process and HTTP reads, their
//! percentiles, start-up times, and the CSV rows they become.

use crate::{key_name, Output, Shape};
use anyhow::{bail, ensure, Context, Result};
use kvchain::node::{self, MiningPolicy, NodeConfig};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Header of the latency CSV (`--csv`).
const CSV_HEADER: &str =
    "series,keys,blocks,txs,op,versions,n,mean_us,p50_us,p90_us,p99_us,max_us,over_1ms,worst_key";
/// Header of the start-up CSV (`--startup-csv`).
const STARTUP_HEADER: &str = "series,keys,blocks,txs,log_mb,what,seconds,rss_mb";
/// Header of the samples CSV (`--samples`).
const SAMPLES_HEADER: &str = "series,keys,blocks,op,versions,us";

/// A node serving the chain over HTTP.
pub struct Node {
    /// Its API base URL.
    pub url: String,
    /// Its pid.
    pub pid: u32,
    /// When it was started, in Unix seconds.
    pub started: f64,
    /// Longest wait for its first answer, in seconds.
    pub ready_timeout: f64,
    /// Its block log.
    pub log: std::path::PathBuf,
}

/// Appends `lines` to the CSV at `path`, writing `header` first if the file is new.
fn append(path: &Path, header: &str, lines: &[String]) -> Result<()> {
    let new = !path.exists();
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut text = String::new();
    if new {
        text.push_str(header);
        text.push('\n');
    }
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Size of a file in MB (0 if it cannot be read).
pub fn file_mb(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1e6)
}

/// Resident memory of process `pid` in MB, from /proc.
fn rss_mb(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1e3)
}

/// Appends a start-up row: `what` took `secs` on a chain of `blocks` blocks.
pub fn startup_row(
    path: &Path,
    shape: &Shape,
    blocks: u64,
    log_mb: f64,
    what: &str,
    secs: f64,
    rss: Option<f64>,
) -> Result<()> {
    let rss = rss.map_or(String::new(), |r| format!("{r:.0}"));
    let line = format!(
        "{},{},{blocks},{},{log_mb:.1},{what},{secs:.3},{rss}",
        shape.series,
        shape.keys,
        shape.txs()
    );
    println!("{what}: {secs:.3} s");
    append(path, STARTUP_HEADER, &[line])
}

/// Per-call timings of one operation, in microseconds, with the key of each call.
pub struct Timings {
    op: &'static str,
    versions: usize,
    us: Vec<(f64, String)>,
}

impl Timings {
    pub fn new(op: &'static str, versions: usize) -> Timings {
        Timings {
            op,
            versions,
            us: Vec::new(),
        }
    }

    /// Times `call` on `key`.
    pub fn time<T>(&mut self, key: &str, call: impl FnOnce(&str) -> T) -> T {
        let start = Instant::now();
        let out = call(key);
        self.us
            .push((start.elapsed().as_secs_f64() * 1e6, key.to_string()));
        out
    }

    /// The summary row: count, mean, nearest-rank p50/p90/p99, max and the slowest key.
    fn row(&self, shape: &Shape, blocks: u64) -> String {
        let mut sorted: Vec<f64> = self.us.iter().map(|(us, _)| *us).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let rank = |p: f64| sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        let worst = self
            .us
            .iter()
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map_or("", |(_, k)| k.as_str());
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let slow = sorted.iter().filter(|us| **us > 1e3).count();
        let row = format!(
            "{},{},{blocks},{},{},{},{n},{mean:.3},{:.3},{:.3},{:.3},{:.3},{slow},{worst}",
            shape.series,
            shape.keys,
            shape.txs(),
            self.op,
            self.versions,
            rank(0.5),
            rank(0.9),
            rank(0.99),
            sorted[n - 1]
        );
        println!(
            "{:<22} v={:<7} n={n:<7} p50 {:>9.2} us  p99 {:>9.2} us  max {:>10.2} us  >1ms {slow} ({worst})",
            self.op,
            self.versions,
            rank(0.5),
            rank(0.99),
            sorted[n - 1]
        );
        row
    }

    fn sample_lines(&self, shape: &Shape, blocks: u64) -> impl Iterator<Item = String> + '_ {
        let prefix = format!(
            "{},{},{blocks},{},{}",
            shape.series, shape.keys, self.op, self.versions
        );
        self.us
            .iter()
            .map(move |(us, _)| format!("{prefix},{us:.3}"))
    }
}

/// A small deterministic generator (splitmix64) for picking keys.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n.max(1) as u64) as usize
    }
}

/// `reads` random single-version keys (repeats allowed), named before any timing.
pub fn random_keys(shape: &Shape, reads: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed);
    (0..reads)
        .map(|_| key_name(rng.below(shape.keys)))
        .collect()
}

/// How often to read a hot key of `versions` versions: about `budget` versions in all,
/// at least `min` times.
fn reps(versions: usize, budget: usize, min: usize) -> usize {
    (budget / versions.max(1)).clamp(min, 2_000)
}

/// Writes the rows (and samples) of `all`.
fn write_out(out: &Output, shape: &Shape, blocks: u64, all: &[Timings]) -> Result<()> {
    let all: Vec<&Timings> = all.iter().filter(|t| !t.us.is_empty()).collect();
    let rows: Vec<String> = all.iter().map(|t| t.row(shape, blocks)).collect();
    append(&out.csv, CSV_HEADER, &rows)?;
    if let Some(path) = &out.samples {
        let lines: Vec<String> = all
            .iter()
            // The reads during blocks run by the million: their summary row is enough.
            .filter(|t| !t.op.starts_with("retrieve_during") && !t.op.starts_with("retrieve_spin"))
            .flat_map(|t| t.sample_lines(shape, blocks))
            .collect();
        append(path, SAMPLES_HEADER, &lines)?;
    }
    Ok(())
}

/// Opens `dir` as an in-process node (no network, no mining), timing the replay, then
/// times `retrieve` and `retrieve_all` one call at a time.
pub fn in_process(dir: &Path, shape: &Shape, out: &Output, during_blocks: usize) -> Result<()> {
    ensure!(shape.keys > 0, "--keys must be at least 1");
    let rt = tokio::runtime::Runtime::new().context("tokio runtime")?;
    let _guard = rt.enter();
    let start = Instant::now();
    let started = node::start(NodeConfig {
        data_dir: Some(dir.to_path_buf()),
        mining: MiningPolicy::Off,
        ..NodeConfig::new(shape.params()?)
    })
    .with_context(|| format!("cannot open the chain in {}", dir.display()))?;
    let open = start.elapsed().as_secs_f64();
    let info = rt
        .block_on(started.handle.info())
        .context("the node stopped")?;
    let blocks = info.height;
    let log = file_mb(&dir.join(kvchain::chain::state::BLOCK_LOG));
    let rss = rss_mb("self");
    startup_row(
        &out.startup_csv,
        shape,
        blocks,
        log,
        "open_in_process",
        open,
        rss,
    )?;
    let store = started.handle.store().clone();
    ensure!(
        store.retrieve(&key_name(shape.keys - 1)).is_some(),
        "the chain lacks key {}: built with other --keys?",
        key_name(shape.keys - 1)
    );

    // What taking the time itself costs: two clock reads around nothing.
    let mut timer = Timings::new("timer", 0);
    for _ in 0..out.reads {
        timer.time("", |_| ());
    }
    let keys = random_keys(shape, out.reads, 1);
    let mut latest = Timings::new("retrieve", 1);
    for k in &keys {
        std::hint::black_box(latest.time(k, |k| store.retrieve(k)));
    }
    let keys = random_keys(shape, out.reads, 2);
    let mut all = Timings::new("retrieve_all", 1);
    for k in &keys {
        std::hint::black_box(all.time(k, |k| store.retrieve_all(k)));
    }
    // The index digest (what /status shows): every key sorted and hashed, once per change.
    let mut digest = Timings::new("digest", 0);
    std::hint::black_box(digest.time("", |_| store.digest()));
    let mut timings = vec![timer, latest, all, digest];
    for &v in &shape.versions {
        let key = format!("v{v}");
        ensure!(
            store.retrieve_all(&key).len() == v,
            "{key} has not {v} versions"
        );
        let mut t = Timings::new("retrieve_all", v);
        for _ in 0..reps(v, 5_000_000, 20) {
            std::hint::black_box(t.time(&key, |k| store.retrieve_all(k)));
        }
        timings.push(t);
    }
    if during_blocks > 0 {
        timings.extend(crate::contention::during(
            &rt,
            &started.handle,
            shape,
            during_blocks,
        )?);
    }
    write_out(out, shape, blocks, &timings)?;
    rt.block_on(started.handle.shutdown());
    Ok(())
}

/// Unix time now, in seconds.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Waits until the node serves `GET /kvs/<key>` of a key the chain holds (not `/status`,
/// which first hashes the whole index for its digest).
fn wait_ready(agent: &ureq::Agent, base: &str, node: &Node) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs_f64(node.ready_timeout);
    let url = format!("{base}/kvs/{}", key_name(0));
    loop {
        if let Ok(r) = agent.get(&url).call() {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if !Path::new(&format!("/proc/{}", node.pid)).exists() {
            bail!("the node (pid {}) exited before it answered", node.pid);
        }
        if Instant::now() >= deadline {
            bail!("the node did not answer within {} s", node.ready_timeout);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One GET of `path`; its body's length.
fn get(agent: &ureq::Agent, base: &str, path: &str) -> Result<usize> {
    get_body(agent, base, path).map(|b| b.len())
}

/// The whole history of `key`, page after page (`x-kvchain-next`); the bytes read.
fn get_history(agent: &ureq::Agent, base: &str, key: &str) -> Result<usize> {
    let (mut from, mut bytes) = (0usize, 0);
    loop {
        let path = format!("/kvs/{key}/history?from={from}");
        let (body, next) = get_page(agent, base, &path)?;
        bytes += body.len();
        match next {
            Some(next) if next > from => from = next,
            Some(next) => anyhow::bail!("GET {path}: the next page is at {next}"),
            None => return Ok(bytes),
        }
    }
}

/// One GET of `path`, its whole body read; fails on anything but 200.
fn get_body(agent: &ureq::Agent, base: &str, path: &str) -> Result<Vec<u8>> {
    get_page(agent, base, path).map(|(body, _)| body)
}

/// One GET of `path`: its whole body, and its `x-kvchain-next` header if it has one;
/// fails on anything but 200.
fn get_page(agent: &ureq::Agent, base: &str, path: &str) -> Result<(Vec<u8>, Option<usize>)> {
    let mut r = agent
        .get(format!("{base}{path}"))
        .call()
        .with_context(|| format!("GET {path}"))?;
    ensure!(r.status().is_success(), "GET {path}: {}", r.status());
    let next = r
        .headers()
        .get("x-kvchain-next")
        .and_then(|h| h.to_str().ok()?.parse::<usize>().ok());
    let body = r
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .with_context(|| format!("GET {path}: body"))?;
    Ok((body, next))
}

/// Times the node's start-up (from `node.started` to its first answer), then its HTTP
/// reads, one request at a time on one keep-alive connection.
pub fn http(node: &Node, shape: &Shape, out: &Output) -> Result<()> {
    ensure!(shape.keys > 0, "--keys must be at least 1");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let base = node.url.trim_end_matches('/').to_string();
    wait_ready(&agent, &base, node)?;
    let up = unix_now() - node.started;
    // The first /status after a change computes the index digest; later ones reuse it.
    let mut status_first = Timings::new("http_status_first", 0);
    let body = status_first.time("", |_| get_body(&agent, &base, "/status"))?;
    let status: serde_json::Value = serde_json::from_slice(&body).context("/status")?;
    let blocks = status["height"].as_u64().context("/status has no height")?;
    let mut status_again = Timings::new("http_status", 0);
    for _ in 0..20 {
        status_again.time("", |_| get_body(&agent, &base, "/status"))?;
    }
    let rss = rss_mb(&node.pid.to_string());
    let log = file_mb(&node.log);
    startup_row(
        &out.startup_csv,
        shape,
        blocks,
        log,
        "node_http_ready",
        up,
        rss,
    )?;
    // Warm the connection and the node's first-use paths.
    for k in random_keys(shape, 20, 9) {
        get(&agent, &base, &format!("/kvs/{k}"))?;
    }
    let mut latest = Timings::new("http_get", 1);
    for k in random_keys(shape, out.reads, 3) {
        latest.time(&k, |k| get(&agent, &base, &format!("/kvs/{k}")))?;
    }
    let mut history = Timings::new("http_history", 1);
    for k in random_keys(shape, out.reads, 4) {
        history.time(&k, |k| get_history(&agent, &base, k))?;
    }
    let mut timings = vec![status_first, status_again, latest, history];
    for &v in &shape.versions {
        let key = format!("v{v}");
        let mut t = Timings::new("http_history", v);
        for _ in 0..reps(v, 1_000_000, 5) {
            t.time(&key, |k| get_history(&agent, &base, k))?;
        }
        timings.push(t);
    }
    write_out(out, shape, blocks, &timings)
}
