//! Write benchmarks: how many writes one node accepts per second (a write is accepted
//! once its journal record is on disk), with its data dir on the real disk.
//!
//! - `writes/accepted/{1,64}_writers`: `Store::put` from 1 and 64 concurrent writers,
//!   mining off, so only signing, the journal and the mempool are measured. Reported in
//!   writes per second.
//!
//! Run with `cargo bench --bench writes`. The data dir is made under `target/` (override
//! with `KVCHAIN_BENCH_DIR`) so that it sits on the same disk as a real node's, not tmpfs.

use criterion::{Criterion, Throughput};
use kvchain::node::{self, MiningPolicy, NodeConfig};
use kvchain::Params;
use std::time::{Duration, Instant};

/// Writes per measured batch.
const BATCH: u64 = 256;

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("KVCHAIN_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    tempfile::tempdir_in(base).expect("a temp dir for the node")
}

fn accepted(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let dir = bench_dir();
    let store = rt.block_on(async {
        let mut config = NodeConfig::new(Params::new("bench-writes", 8).expect("params"));
        config.data_dir = Some(dir.path().to_path_buf());
        config.mining = MiningPolicy::Off;
        let started = node::start(config).expect("node starts");
        started.handle.store().clone()
    });
    let mut group = c.benchmark_group("writes");
    group.throughput(Throughput::Elements(BATCH));
    group.measurement_time(Duration::from_secs(10));
    group.sample_size(10);
    for writers in [1u64, 64] {
        group.bench_function(format!("accepted/{writers}_writers"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for i in 0..iters {
                        let tasks: Vec<_> = (0..writers)
                            .map(|w| {
                                let store = store.clone();
                                tokio::spawn(async move {
                                    for n in 0..BATCH / writers {
                                        store
                                            .put(format!("k{i}-{w}-{n}"), "value")
                                            .await
                                            .expect("write accepted");
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.expect("writer");
                        }
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    accepted(&mut c);
    c.final_summary();
}
