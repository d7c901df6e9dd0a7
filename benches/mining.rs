//! Proof-of-work benchmarks (group `pow`).
//!
//! - `pow/sha256_compress`: the raw single-core SHA-256 compression rate, 4096 calls of
//!   `sha2::compress256` on one 64-byte block per iteration, each chained on the last.
//! - `pow/midstate_search`: `Midstate::search(256, start, 4096)` on the backend this CPU
//!   gets (SHA-NI when it has it): 4096 nonces (256 bits is never met, so all are tried).
//! - `pow/midstate_search_portable`: the same on the portable backend (one
//!   `sha2::compress256` per nonce), the path every CPU has and the one mining used before.
//! - `pow/header_hash`: a full `Header::hash` (two compressions plus the encoding), for
//!   context: what mining would cost without the midstate.
//!
//! After the group come the acceptance figures. `openssl speed -evp sha256 -bytes 16384
//! -seconds 3` is run (if `openssl` is on PATH; a note says so if not) and its bytes per
//! second divided by 64 are its compressions per second: one stream of dependent
//! compressions, the SHA-256 limit of one core. `pow::measure_hashrate` (what
//! `kvchain hashrate` runs) is then timed for 3 seconds at 1 and at 2 threads, and the
//! lines `mining/openssl ratio: NN%` and `mining/threads ratio: N.NNx` are printed.
//! Targets: one thread reaches at least 90% of openssl's compressions per second, and two
//! threads at least 1.9 times one. The machine's load average is printed too: on a shared
//! machine the figures move with it.
//!
//! Run with `cargo bench --bench mining`.

mod support;

use criterion::{black_box, Criterion, Throughput};
use kvchain::chain::pow::{self, Backend, Midstate};
use kvchain::chain::{Hash, Header};
use sha2::digest::generic_array::GenericArray;
use std::process::Command;
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

    if let Some(mut portable) = Midstate::with_backend(&header(), Backend::Portable) {
        let mut start = 0u64;
        group.bench_function("midstate_search_portable", |b| {
            b.iter(|| {
                let found = portable.search(black_box(256), start, BATCH);
                start = start.wrapping_add(BATCH);
                black_box(found)
            })
        });
    }

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

/// Nonces per second of `Midstate::search` on `backend`.
fn search_rate(backend: Backend, duration: Duration) -> Option<f64> {
    let mut mid = Midstate::with_backend(&header(), backend)?;
    let mut start = 0u64;
    Some(support::rate(duration, BATCH, || {
        black_box(mid.search(black_box(256), start, BATCH));
        start = start.wrapping_add(BATCH);
    }))
}

/// SHA-256 compressions per second of `openssl speed -evp sha256 -bytes 16384 -seconds
/// 3` (its bytes per second over 64), or why there is no figure.
fn openssl_compressions() -> Result<f64, String> {
    let out = Command::new("openssl")
        .args([
            "speed", "-evp", "sha256", "-bytes", "16384", "-seconds", "3",
        ])
        .output()
        .map_err(|e| format!("could not run openssl ({e}); is it on PATH?"))?;
    if !out.status.success() {
        return Err(format!("openssl speed failed: {}", out.status));
    }
    // The result line reads `sha256   1409544.56k`, in thousands of bytes per second.
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rev()
        .filter(|l| l.trim_start().starts_with("sha256"))
        .filter_map(|l| l.split_whitespace().last())
        .find_map(|v| v.strip_suffix('k')?.parse::<f64>().ok())
        .map(|kbytes| kbytes * 1000.0 / 64.0)
        .ok_or_else(|| format!("no sha256 figure in openssl's output:\n{text}"))
}

/// CPU seconds this process has used (user + system), from /proc/self/stat, which counts
/// in USER_HZ = 100 ticks per second on Linux; `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name start at field 3 (state); utime and
    // stime are fields 14 and 15.
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: f64 = rest.next()?.parse().ok()?;
    let stime: f64 = rest.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// `pow::measure_hashrate(threads, duration)` and the CPUs it got on average, if known.
fn hashrate(threads: usize, duration: Duration) -> (f64, Option<f64>) {
    let before = cpu_seconds();
    let start = Instant::now();
    let rate = pow::measure_hashrate(threads, duration) as f64;
    let wall = start.elapsed().as_secs_f64();
    let cpus = before.zip(cpu_seconds()).map(|(b, a)| (a - b) / wall);
    (rate, cpus)
}

/// Prints the acceptance figures: mining against openssl, and 2 threads against 1.
fn print_ratios() {
    let load_before = support::load_average();
    let second = Duration::from_secs(1);
    let data = block();
    let mut state = IV;
    let compress = support::rate(second, BATCH, || compress_batch(&mut state, &data));
    black_box(state);
    let search = search_rate(Backend::detect(), second).unwrap_or(0.0);
    let portable = search_rate(Backend::Portable, second).unwrap_or(0.0);
    let openssl = openssl_compressions();
    let three = Duration::from_secs(3);
    let (one, one_cpus) = hashrate(1, three);
    let (two, two_cpus) = hashrate(2, three);
    println!();
    println!(
        "load average (1 min), before / after: {load_before} / {}",
        support::load_average()
    );
    println!("backend: {:?}", Backend::detect());
    println!("raw sha2::compress256:          {:8.3} M/s", compress / 1e6);
    println!(
        "midstate search, portable:      {:8.3} MH/s",
        portable / 1e6
    );
    println!("midstate search, detected:      {:8.3} MH/s", search / 1e6);
    println!("pow::measure_hashrate(1), 3 s:  {:8.3} MH/s", one / 1e6);
    println!("pow::measure_hashrate(2), 3 s:  {:8.3} MH/s", two / 1e6);
    println!(
        "mining/compress ratio: {:.0}% (detected backend over raw sha2::compress256)",
        100.0 * search / compress
    );
    match openssl {
        Ok(openssl) => {
            println!(
                "openssl sha256, 16 KiB blocks:  {:8.3} M compressions/s",
                openssl / 1e6
            );
            println!(
                "mining/openssl ratio: {:.0}% (measure_hashrate(1) over openssl; target >= 90%)",
                100.0 * one / openssl
            );
        }
        Err(why) => println!("mining/openssl ratio: not measured: {why}"),
    }
    println!(
        "mining/threads ratio: {:.2}x (measure_hashrate(2) over (1); target >= 1.9x)",
        two / one.max(1.0)
    );
    // Other processes take CPU time (Linux autogroups share the CPUs between sessions, so
    // nice does not keep a build out of the way); per CPU-second the rates should match.
    if let (Some(c1), Some(c2)) = (one_cpus, two_cpus) {
        println!(
            "CPUs used: {c1:.2} by 1 thread, {c2:.2} by 2; per CPU-second, 2 threads ran at \
             {:.2}x the rate of 1",
            (two / c2.max(0.01)) / (one / c1.max(0.01)).max(1.0)
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_pow(&mut c);
    c.final_summary();
    if support::measuring() {
        print_ratios();
    }
}
