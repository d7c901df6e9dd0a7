//! `read_speed`: builds big chains fast and measures how fast they are read, for
//! `scripts/experiments/speed.sh` (experiment 4, add and retrieve speed).
//!
//! - `build`: a chain of N keys (one version each) plus a few "hot" keys with many
//!   versions, signed on every core and mined at the network's (trivial) difficulty,
//!   through the library's own `Chain::open` and `Chain::process_block`, so the data dir
//!   holds a real block log that `kvchain node --data-dir` replays like after any restart.
//! - `read`: opens that data dir as an in-process node (the replay is timed) and times
//!   `Store::retrieve` and `Store::retrieve_all` call by call.
//! - `http`: waits for a `kvchain node` serving the data dir to answer (its start-up time,
//!   replay included), then times `GET /kvs/<key>` and the whole `GET /kvs/<key>/history`
//!   (every page).
//!
//! Keys are `k0000000`, `k0000001`, ... and the hot key with V versions is `vV`, so every
//! mode knows which keys exist from `--keys` and `--versions` alone. Run with
//! `cargo run --release --example read_speed -- <mode> --help`.

mod contention;
mod measure;

use anyhow::{ensure, Context, Result};
use clap::{Parser, Subcommand};
use kvchain::chain::block::{merkle_root, BLOCK_VERSION};
use kvchain::chain::{now_ms, pow, Block, Chain, Header, Keypair, Op, Params, VerifiedTx};
use std::path::PathBuf;
use std::time::Instant;

/// Builds chains of many keys and measures how fast they are read.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

/// What every mode needs to know of the chain.
#[derive(clap::Args, Clone, Debug)]
pub struct Shape {
    /// Distinct keys with one version each (`k0000000`...).
    #[arg(long)]
    pub keys: usize,
    /// Hot keys: one key `vV` with V versions for each V given (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub versions: Vec<usize>,
    /// Network name (the node serving the chain must use the same).
    #[arg(long, default_value = "speed")]
    pub network: String,
    /// Difficulty in bits (the node serving the chain must use the same).
    #[arg(long, default_value_t = 1)]
    pub difficulty: u32,
    /// A label for the CSV rows (which series of the experiment this chain belongs to).
    #[arg(long, default_value = "keys")]
    pub series: String,
}

impl Shape {
    /// All writes in the chain: the single-version keys and every hot version.
    pub fn txs(&self) -> usize {
        self.keys + self.versions.iter().sum::<usize>()
    }

    /// The consensus parameters.
    pub fn params(&self) -> Result<Params> {
        Params::new(&self.network, self.difficulty).context("bad --network or --difficulty")
    }
}

/// Where the measurements go.
#[derive(clap::Args, Clone, Debug)]
pub struct Output {
    /// Append latency summaries here (created with a header if missing).
    #[arg(long)]
    pub csv: PathBuf,
    /// Append start-up (replay) times here.
    #[arg(long)]
    pub startup_csv: PathBuf,
    /// Append every single timing here too (for distributions).
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// Reads of random keys per operation.
    #[arg(long, default_value_t = 10_000)]
    pub reads: usize,
}

#[derive(Subcommand)]
enum Mode {
    /// Write a chain into a fresh data dir.
    Build {
        /// The data dir (must not hold a chain yet).
        #[arg(long)]
        dir: PathBuf,
        /// Writes per block (at most 4096).
        #[arg(long, default_value_t = 4096)]
        per_block: usize,
        #[command(flatten)]
        shape: Shape,
        /// Append the build time here.
        #[arg(long)]
        startup_csv: Option<PathBuf>,
    },
    /// Open the data dir in-process and time `retrieve` and `retrieve_all`.
    Read {
        /// The data dir `build` wrote.
        #[arg(long)]
        dir: PathBuf,
        /// Then hand the node this many new blocks of 4,096 writes while timing
        /// `retrieve` all along (the index is locked while a block is folded in).
        #[arg(long, default_value_t = 0)]
        during_blocks: usize,
        #[command(flatten)]
        shape: Shape,
        #[command(flatten)]
        out: Output,
    },
    /// Time the HTTP reads of a node serving the chain.
    Http {
        /// The node's HTTP API base URL.
        #[arg(long)]
        url: String,
        /// The node's pid (for its memory use).
        #[arg(long)]
        pid: u32,
        /// When the node was started, in Unix seconds (its start-up time counts from it).
        #[arg(long)]
        started: f64,
        /// Longest wait for the node to answer, in seconds.
        #[arg(long, default_value_t = 300.0)]
        ready_timeout: f64,
        /// The node's block log (for its size).
        #[arg(long)]
        log: PathBuf,
        #[command(flatten)]
        shape: Shape,
        #[command(flatten)]
        out: Output,
    },
}

fn main() -> Result<()> {
    match Cli::parse().mode {
        Mode::Build {
            dir,
            per_block,
            shape,
            startup_csv,
        } => {
            let start = Instant::now();
            let blocks = build(&dir, per_block, &shape)?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "built {} writes ({} keys, hot {:?}) in {blocks} blocks in {secs:.1} s",
                shape.txs(),
                shape.keys,
                shape.versions
            );
            if let Some(path) = startup_csv {
                let log = measure::file_mb(&dir.join(kvchain::chain::state::BLOCK_LOG));
                measure::startup_row(&path, &shape, blocks, log, "build", secs, None)?;
            }
            Ok(())
        }
        Mode::Read {
            dir,
            during_blocks,
            shape,
            out,
        } => measure::in_process(&dir, &shape, &out, during_blocks),
        Mode::Http {
            url,
            pid,
            started,
            ready_timeout,
            log,
            shape,
            out,
        } => measure::http(
            &measure::Node {
                url,
                pid,
                started,
                ready_timeout,
                log,
            },
            &shape,
            &out,
        ),
    }
}

/// The name of a single-version key.
pub fn key_name(i: usize) -> String {
    format!("k{i:07}")
}

/// The key of write `slot` (0..txs): the single-version keys first, then each hot key's
/// versions in turn.
fn key_of(slot: usize, shape: &Shape) -> String {
    if slot < shape.keys {
        return key_name(slot);
    }
    let mut rest = slot - shape.keys;
    for &v in &shape.versions {
        if rest < v {
            return format!("v{v}");
        }
        rest -= v;
    }
    unreachable!("slot {slot} is past the chain's {} writes", shape.txs())
}

/// A stride coprime with `n`: write j goes to slot `j * stride % n`, which spreads every
/// hot key's versions evenly over the chain instead of packing them into a few blocks.
fn stride(n: usize) -> usize {
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    (7_919..).find(|s| gcd(*s, n.max(1)) == 1).unwrap_or(1)
}

/// Signs writes `range` (32-byte values, nonce j, four authors in turn), write j under
/// key `key(j)`, on every core.
pub fn sign(
    range: std::ops::Range<usize>,
    authors: &[Keypair],
    time: u64,
    key: impl Fn(usize) -> String + Sync,
) -> Vec<VerifiedTx> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let chunk = range.len().div_ceil(threads).max(1);
    let starts: Vec<usize> = range.clone().step_by(chunk).collect();
    let key = &key;
    std::thread::scope(|s| {
        let handles: Vec<_> = starts
            .iter()
            .map(|&from| {
                let to = (from + chunk).min(range.end);
                s.spawn(move || {
                    (from..to)
                        .map(|j| {
                            let value = format!("{j:032}").into_bytes();
                            let op = Op::Put { key: key(j), value };
                            VerifiedTx::sign(&authors[j % authors.len()], op, j as u64, time)
                                .expect("keys and values within the limits")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a signing thread panicked"))
            .collect()
    })
}

/// The authors of the writes.
pub fn authors() -> Vec<Keypair> {
    (1..=4u8).map(|i| Keypair::from_seed([i; 32])).collect()
}

/// A block on `parent` holding `txs`, stamped `time`, solved at `bits`.
pub fn block_on(parent: &Header, txs: Vec<kvchain::chain::Tx>, time: u64, bits: u32) -> Block {
    let header = pow::solve(Header {
        version: BLOCK_VERSION,
        height: parent.height + 1,
        prev: parent.hash(),
        merkle: merkle_root(&txs),
        time,
        bits,
        nonce: 0,
    });
    Block { header, txs }
}

/// Writes the chain of `shape` into `dir`, `per_block` writes a block; returns the blocks.
fn build(dir: &std::path::Path, per_block: usize, shape: &Shape) -> Result<u64> {
    ensure!(
        (1..=kvchain::chain::limits::MAX_BLOCK_TXS).contains(&per_block),
        "--per-block must be 1 to {}",
        kvchain::chain::limits::MAX_BLOCK_TXS
    );
    let params = shape.params()?;
    let (mut chain, _) = Chain::open(params.clone(), dir)
        .with_context(|| format!("cannot open a chain in {}", dir.display()))?;
    ensure!(
        chain.height() == 0,
        "{} holds a chain already",
        dir.display()
    );
    let authors = authors();
    let total = shape.txs();
    let step = stride(total);
    // Timestamps an hour back, one millisecond a block: above the median rule, never
    // ahead of the clock, however many blocks there are (up to 3.6 million).
    let mut time = now_ms().saturating_sub(3_600_000);
    let mut parent = chain.tip().block.header;
    let mut done = 0;
    while done < total {
        let end = (done + per_block).min(total);
        let signed = sign(done..end, &authors, time, |j| {
            key_of(j * step % total, shape)
        });
        // Signed here, so checked: the chain need not verify them again.
        chain.note_checked(signed.iter().cloned());
        let txs: Vec<_> = signed.into_iter().map(VerifiedTx::into_tx).collect();
        time += 1;
        let block = block_on(&parent, txs, time, params.difficulty());
        parent = block.header;
        chain
            .process_block(block)
            .with_context(|| format!("block {} was refused", parent.height))?;
        done = end;
    }
    Ok(chain.height())
}
