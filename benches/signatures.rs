//! Signature benchmarks (group `sig`): what a write costs in ed25519 on this machine,
//! which bounds the throughput figures of the README.
//!
//! - `sig/sign`: `Tx::new` of a put with a 32-byte value (hashing the id and signing it),
//!   what a node does for each write it is sent.
//! - `sig/verify_one`: one tx's signature checked alone.
//! - `sig/verify_batch_{64,1024}`: `VerifiedTx::check_all` on 64 and 1024 txs of 4
//!   authors (a 4-node network's writes): how the verifiers check gossiped txs and blocks.
//!
//! After the group come the bounds, from rates timed for 2 seconds each on one thread:
//! the share of one core that signing takes at the README's one-node target (20,000
//! writes accepted per second), and that signing once plus checking on every node takes
//! at the 4-node target (5,000 confirmed writes per second, every tx checked once by
//! each of 4 nodes, in batches of 1024). Those shares are a floor: a node does much
//! besides (HTTP, the journal, gossip, blocks, mining). The load average is printed too.
//!
//! Run with `cargo bench --bench signatures`.

mod support;

use criterion::{black_box, BatchSize, Criterion, Throughput};
use kvchain::chain::{Keypair, Op, Tx, VerifiedTx};
use std::time::Duration;

/// Authors of the batch benchmarks, as in a 4-node network.
const AUTHORS: usize = 4;

fn keys() -> Vec<Keypair> {
    (0..AUTHORS)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[0] = i as u8;
            Keypair::from_seed(seed)
        })
        .collect()
}

/// A put of a 32-byte value under a key numbered `n`, signed by `kp`.
fn put(kp: &Keypair, n: u64) -> Tx {
    let op = Op::Put {
        key: format!("key{n:08}"),
        value: vec![b'v'; 32],
    };
    Tx::new(kp, op, n, 1_000 + n).expect("a valid tx")
}

/// `n` puts spread over the authors.
fn txs(kps: &[Keypair], n: usize) -> Vec<Tx> {
    (0..n as u64)
        .map(|i| put(&kps[i as usize % kps.len()], i))
        .collect()
}

fn bench_sig(c: &mut Criterion) {
    let kps = keys();
    let mut group = c.benchmark_group("sig");
    group
        .measurement_time(Duration::from_secs(5))
        .sample_size(20);
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    group.bench_function("sign", |b| {
        b.iter(|| {
            n += 1;
            black_box(put(&kps[0], n))
        })
    });
    let one = txs(&kps, 1);
    group.bench_function("verify_one", |b| {
        b.iter_batched(
            || one.clone(),
            |t| VerifiedTx::check_all(black_box(t)).expect("good signatures"),
            BatchSize::SmallInput,
        )
    });
    for size in [64, 1024] {
        let batch = txs(&kps, size);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(format!("verify_batch_{size}"), |b| {
            b.iter_batched(
                || batch.clone(),
                |t| VerifiedTx::check_all(black_box(t)).expect("good signatures"),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Prints the rates on one thread and the share of a core each target takes in them.
fn print_bounds() {
    let kps = keys();
    let two = Duration::from_secs(2);
    let load = support::load_average();
    let mut n = 0u64;
    let signs = support::rate(two, 1, || {
        n += 1;
        black_box(put(&kps[0], n));
    });
    let batch = txs(&kps, 1024);
    let verifies = support::rate(two, 1024, || {
        black_box(VerifiedTx::check_all(batch.clone()).expect("good signatures"));
    });
    println!("sig/rates: {signs:.0} signs/s, {verifies:.0} batch-verified/s (1024 per batch), one thread; load average {load}");
    let one_node = 20_000.0 / signs;
    println!("sig/one node at 20,000 writes/s: signing takes {one_node:.2} cores");
    let four = 5_000.0 / signs + 4.0 * 5_000.0 / verifies;
    println!("sig/4 nodes at 5,000 confirmed writes/s: signing and checking take {four:.2} cores");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_sig(&mut c);
    c.final_summary();
    if support::measuring() {
        print_bounds();
    }
}
