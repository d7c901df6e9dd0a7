//! Proof-of-work benchmarks (group `pow`).
//!
//! - `pow/sha256_compress`: the raw single-core SHA-256 compression rate, 4096 calls of
//!   `sha2::compress256` on one 64-byte block per iteration. This is the ceiling for mining.
//! - `pow/midstate_search`: `Midstate::search(256, start, 4096)`: 4096 nonces tried at one
//!   compression each (256 bits is never met, so every nonce is tried).
//! - `pow/header_hash`: a full `Header::hash` (two compressions plus the encoding), for
//!   context: what mining would cost without the midstate.
//!
//! After the group, each of compression and midstate search is also timed for about a
//! second with `std::time::Instant`, and the line `mining/compress ratio: NN%` is printed.
//! Target: mining at one thread reaches at least 70% of the raw compression rate.
//!
//! Run with `cargo bench --bench mining`.

use criterion::{black_box, Criterion, Throughput};
use kvchain::chain::pow::{self, Midstate};
use kvchain::chain::{Hash, Header};
use sha2::digest::generic_array::GenericArray;
use std::time::{Duration, Instant};

/// Compressions (or nonces) per benchmark iteration.
const BATCH: u64 = 4096;

/// SHA-256 initial state.
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

fn header() -> Header {
    Header {
        version: 1,
        height: 42,
        prev: Hash::digest(b"bench prev"),
        merkle: Hash::digest(b"bench merkle"),
        time: 1_767_225_600_000,
        bits: 20,
        nonce: 0,
    }
}

fn block() -> [u8; 64] {
    let mut b = [0u8; 64];
    for (i, x) in b.iter_mut().enumerate() {
        *x = i as u8;
    }
    b
}

/// `BATCH` compressions, each chained on the previous state (so none can be skipped).
fn compress_batch(state: &mut [u32; 8], block: &[u8; 64]) {
    let block = *GenericArray::from_slice(block);
    for _ in 0..BATCH {
        sha2::compress256(state, std::slice::from_ref(black_box(&block)));
    }
}

fn bench_pow(c: &mut Criterion) {
    let mut group = c.benchmark_group("pow");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    group.throughput(Throughput::Elements(BATCH));
    let data = block();
    let mut state = IV;
    group.bench_function("sha256_compress", |b| {
        b.iter(|| {
            compress_batch(&mut state, &data);
            black_box(state[0])
        })
    });

    let mut mid = Midstate::new(&header());
    let mut start = 0u64;
    group.bench_function("midstate_search", |b| {
        b.iter(|| {
            let found = mid.search(black_box(256), start, BATCH);
            start = start.wrapping_add(BATCH);
            black_box(found)
        })
    });

    group.throughput(Throughput::Elements(1));
    let mut h = header();
    group.bench_function("header_hash", |b| {
        b.iter(|| {
            h.nonce = h.nonce.wrapping_add(1);
            black_box(black_box(&h).hash())
        })
    });
    group.finish();
}

/// Runs `step` (which does `BATCH` units of work) for about `duration`; units per second.
fn rate(duration: Duration, mut step: impl FnMut()) -> f64 {
    // Warm up (caches, CPU frequency) before timing.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(200) {
        step();
    }
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < duration {
        for _ in 0..16 {
            step();
        }
        done += 16 * BATCH;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

/// Times compression and midstate search with `Instant` and prints their ratio.
fn print_ratio() {
    let second = Duration::from_secs(1);
    let data = block();
    let mut state = IV;
    let compress = rate(second, || compress_batch(&mut state, &data));
    black_box(state);
    let mut mid = Midstate::new(&header());
    let mut start = 0u64;
    let search = rate(second, || {
        black_box(mid.search(black_box(256), start, BATCH));
        start = start.wrapping_add(BATCH);
    });
    let miner = pow::measure_hashrate(1, second) as f64;
    println!();
    println!("raw sha256 compress:          {:8.3} M/s", compress / 1e6);
    println!("midstate search (1 thread):   {:8.3} MH/s", search / 1e6);
    println!("pow::measure_hashrate(1):     {:8.3} MH/s", miner / 1e6);
    println!(
        "mining/compress ratio: {:.0}% (target >= 70%)",
        100.0 * search / compress
    );
    println!(
        "measure_hashrate/compress ratio: {:.0}%",
        100.0 * miner / compress
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_pow(&mut c);
    c.final_summary();
    // Only in `cargo bench` (not `cargo test --benches`, which runs each bench once).
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--list") {
        print_ratio();
    }
}
