//! Chain benchmarks: block validation, index folding and store reads.
//!
//! - `validate/1000_txs_4_keys`: `Chain::process_block` on a fresh chain for a block of
//!   1000 distinct puts signed by 4 keys, none of them in the mempool, so every signature
//!   is batch-verified. Reported in txs per second. (`validate/1000_txs_1000_keys` is the
//!   same with one key per tx, the worst case for batch verification.)
//! - `index/fold_100k`: `Index::fold` over 100 blocks of 1000 puts spread over 10k keys.
//!   Target: at least 500k txs per second.
//! - `store/retrieve`: `Store::retrieve` of a node holding 10k keys, cycling over them.
//!   Target: well under 1 microsecond. (`store/index_latest` is the bare `Index::latest`.)
//! - `store/retrieve_all`: `Store::retrieve_all` of a key with 10 versions.
//!
//! Run with `cargo bench --bench chain`.

use criterion::{black_box, BatchSize, Criterion, Throughput};
use kvchain::chain::block::merkle_root;
use kvchain::chain::{pow, Block, Chain, Header, Index, Keypair, Op, Params, Tx};
use kvchain::node::{self, MiningPolicy, NodeConfig};
use std::time::Duration;

/// Transactions per block.
const BLOCK_TXS: usize = 1000;
/// Blocks folded by `index/fold_100k`.
const FOLD_BLOCKS: usize = 100;
/// Distinct keys in the fold and the store benchmarks.
const KEYS: usize = 10_000;
/// Blocks (of `BLOCK_TXS` txs) submitted to the node of the store benchmarks.
const STORE_BLOCKS: usize = KEYS / BLOCK_TXS;

fn params() -> Params {
    Params::new("bench", 4).expect("valid params")
}

fn keys(n: usize) -> Vec<Keypair> {
    (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            Keypair::from_seed(seed)
        })
        .collect()
}

fn put(kp: &Keypair, key: String, nonce: u64) -> Tx {
    let value = format!("value {nonce} of {key}").into_bytes();
    Tx::new(kp, Op::Put { key, value }, nonce, 1_000 + nonce).expect("valid tx")
}

/// Signs `n` puts (tx `i` with `keypairs[i % len]`, key `key_of(i)`, nonce `i`) on all cores.
fn signed_puts(n: usize, keypairs: &[Keypair], key_of: impl Fn(usize) -> String + Sync) -> Vec<Tx> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let key_of = &key_of;
                s.spawn(move || {
                    (t * chunk..((t + 1) * chunk).min(n))
                        .map(|i| put(&keypairs[i % keypairs.len()], key_of(i), i as u64))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signing thread"))
            .collect()
    })
}

/// A solved block on `parent` holding `txs`, one second after it.
fn block_on(parent: &Header, txs: Vec<Tx>) -> Block {
    let header = Header {
        version: 1,
        height: parent.height + 1,
        prev: parent.hash(),
        merkle: merkle_root(&txs),
        time: parent.time + 1_000,
        bits: parent.bits,
        nonce: 0,
    };
    Block {
        header: pow::solve(header),
        txs,
    }
}

/// A chain of solved blocks on the genesis of `params`, `BLOCK_TXS` txs each.
fn chain_of(params: &Params, txs: Vec<Tx>) -> Vec<Block> {
    let mut parent = params.genesis().header;
    let mut blocks = Vec::new();
    let mut txs = txs.into_iter().peekable();
    while txs.peek().is_some() {
        let b = block_on(&parent, txs.by_ref().take(BLOCK_TXS).collect());
        parent = b.header;
        blocks.push(b);
    }
    blocks
}

fn bench_validate(c: &mut Criterion) {
    let params = params();
    let mut group = c.benchmark_group("validate");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BLOCK_TXS as u64));
    for nkeys in [4, BLOCK_TXS] {
        let kps = keys(nkeys);
        let txs = signed_puts(BLOCK_TXS, &kps, |i| format!("key{i:05}"));
        let block = block_on(&params.genesis().header, txs);
        // Sanity: the block is valid on a fresh chain.
        Chain::new(params.clone())
            .process_block(block.clone())
            .expect("valid block");
        group.bench_function(format!("{BLOCK_TXS}_txs_{nkeys}_keys"), |b| {
            b.iter_batched(
                || (Chain::new(params.clone()), block.clone()),
                |(mut chain, block)| {
                    let accepted = chain.process_block(block).expect("valid block");
                    (chain, accepted)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn bench_fold(c: &mut Criterion) {
    // Index::fold checks neither proof of work nor signatures, but the blocks are real
    // anyway: 100k distinct signed txs, 10 versions per key.
    let kps = keys(4);
    let txs = signed_puts(FOLD_BLOCKS * BLOCK_TXS, &kps, |i| {
        format!("key{:05}", i % KEYS)
    });
    let blocks = chain_of(&params(), txs);
    let index = Index::fold(&blocks);
    assert_eq!(index.key_count(), KEYS);
    assert_eq!(index.version_count(), FOLD_BLOCKS * BLOCK_TXS);
    drop(index);

    let mut group = c.benchmark_group("index");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements((FOLD_BLOCKS * BLOCK_TXS) as u64));
    group.bench_function("fold_100k", |b| {
        b.iter_with_large_drop(|| Index::fold(black_box(&blocks)))
    });
    group.finish();
}

fn bench_store(c: &mut Criterion) {
    let params = params();
    // 10 blocks of 1000 puts: key{00000}..key{09999}, except that the last tx of every
    // block writes "multi" instead, which so has 10 versions.
    let kps = keys(4);
    let txs = signed_puts(KEYS, &kps, |i| {
        if i % BLOCK_TXS == BLOCK_TXS - 1 {
            "multi".to_string()
        } else {
            format!("key{i:05}")
        }
    });
    let read_keys: Vec<String> = txs.iter().map(|t| t.op().key().to_string()).collect();
    let blocks = chain_of(&params, txs);
    assert_eq!(blocks.len(), STORE_BLOCKS);

    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let started = rt.block_on(async {
        let started = node::start(NodeConfig {
            mining: MiningPolicy::Off,
            ..NodeConfig::new(params.clone())
        })
        .expect("node starts");
        for block in blocks.clone() {
            started
                .handle
                .submit_block(block)
                .await
                .expect("node running")
                .expect("valid block");
        }
        started
    });
    let store = started.handle.store().clone();
    assert_eq!(store.retrieve_all("multi").len(), STORE_BLOCKS);
    assert!(read_keys.iter().all(|k| store.retrieve(k).is_some()));

    let mut group = c.benchmark_group("store");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("retrieve", |b| {
        b.iter(|| {
            i = (i + 1) % read_keys.len();
            store.retrieve(black_box(&read_keys[i]))
        })
    });
    // The same lookup on a bare index, without the lock and the clone of the version.
    let index = Index::fold(&blocks);
    let mut i = 0usize;
    group.bench_function("index_latest", |b| {
        b.iter(|| {
            i = (i + 1) % read_keys.len();
            index.latest(black_box(&read_keys[i])).is_some()
        })
    });
    group.bench_function("retrieve_all", |b| {
        b.iter(|| store.retrieve_all(black_box("multi")))
    });
    group.finish();
    drop(store);
    drop(started);
    drop(rt);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_validate(&mut c);
    bench_fold(&mut c);
    bench_store(&mut c);
    c.final_summary();
}
