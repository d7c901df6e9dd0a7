//! Reads under contention: a reader that never pauses while the node folds new blocks
//! into the index (the index's write lock), then the same with the index digest being
//! computed too (a long hold of the read lock, as every first `/status` after a change
//! does), each against a control of the same reader for as long with nothing else going.

use crate::measure::{random_keys, Timings};
use crate::Shape;
use anyhow::{anyhow, Context, Result};
use kvchain::chain::{limits::MAX_BLOCK_TXS, Block};
use kvchain::node::{NodeHandle, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Hands the node `n` new blocks of 4,096 puts of new keys while a reader times
/// `retrieve` without pause; then the same reader alone for as long (the control); then
/// `n` more blocks while another thread also computes the index digest over and over.
/// Returns the reads of each phase, the digests and the time each block took.
pub fn during(
    rt: &tokio::runtime::Runtime,
    handle: &NodeHandle,
    shape: &Shape,
    n: usize,
) -> Result<Vec<Timings>> {
    let mut blocks = new_blocks(rt, handle, shape, 2 * n)?;
    let later = blocks.split_off(n);
    let store = handle.store().clone();
    let keys = random_keys(shape, 1 << 16, 5);
    let mut submits = Timings::new("submit_block", MAX_BLOCK_TXS);
    let start = Instant::now();
    let (reads, _) = phase(
        rt,
        handle,
        &store,
        &keys,
        blocks,
        &mut submits,
        false,
        "retrieve_during_blocks",
    )?;
    let idle = control(&store, &keys, start.elapsed(), "retrieve_spin_idle")?;
    let (with_digest, digests) = phase(
        rt,
        handle,
        &store,
        &keys,
        later,
        &mut submits,
        true,
        "retrieve_during_blocks_digest",
    )?;
    Ok(vec![reads, idle, with_digest, digests, submits])
}

/// `n` blocks of 4,096 puts of new keys on the node's tip, signed before any timing (the
/// node checks their signatures itself, as for a peer's block).
fn new_blocks(
    rt: &tokio::runtime::Runtime,
    handle: &NodeHandle,
    shape: &Shape,
    n: usize,
) -> Result<Vec<Block>> {
    let info = rt.block_on(handle.info()).context("the node stopped")?;
    let mut parent = rt
        .block_on(handle.block_at(info.height))
        .context("no tip block")?
        .header;
    let bits = shape.params()?.difficulty();
    let authors = crate::authors();
    let time = kvchain::chain::now_ms();
    let mut blocks = Vec::new();
    for b in 0..n {
        let base = 1_000_000_000 + b * MAX_BLOCK_TXS;
        let signed = crate::sign(base..base + MAX_BLOCK_TXS, &authors, time, |j| {
            format!("n{j}")
        });
        let txs = signed.into_iter().map(|t| t.into_tx()).collect();
        let block = crate::block_on(&parent, txs, time + b as u64, bits);
        parent = block.header;
        blocks.push(block);
    }
    Ok(blocks)
}

/// Submits `blocks` one after the other while a reader spins (and, with `digest`, another
/// thread computes the index digest again and again); returns the reads and the digests.
#[allow(clippy::too_many_arguments)]
fn phase(
    rt: &tokio::runtime::Runtime,
    handle: &NodeHandle,
    store: &Store,
    keys: &[String],
    blocks: Vec<Block>,
    submits: &mut Timings,
    digest: bool,
    op: &'static str,
) -> Result<(Timings, Timings)> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| spin(store, keys, &stop, op));
        let digester = s.spawn(|| {
            let mut t = Timings::new("digest_during_blocks", 0);
            while digest && !stop.load(Ordering::Relaxed) {
                std::hint::black_box(t.time("", |_| store.digest()));
            }
            t
        });
        let mut result = Ok(());
        for block in blocks {
            let height = block.header.height;
            match submits.time("", |_| rt.block_on(handle.submit_block(block))) {
                Some(Ok(_)) => {}
                Some(Err(e)) => result = Err(anyhow!("block {height} refused: {e}")),
                None => result = Err(anyhow!("the node stopped")),
            }
            if result.is_err() {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let reads = reader.join().map_err(|_| anyhow!("reader panicked"))?;
        let digests = digester.join().map_err(|_| anyhow!("digester panicked"))?;
        result.map(|()| (reads, digests))
    })
}

/// The same reader for `how_long` with nothing else going.
fn control(
    store: &Store,
    keys: &[String],
    how_long: Duration,
    op: &'static str,
) -> Result<Timings> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| spin(store, keys, &stop, op));
        std::thread::sleep(how_long);
        stop.store(true, Ordering::Relaxed);
        reader.join().map_err(|_| anyhow!("reader panicked"))
    })
}

/// Times `retrieve` of `keys` in a loop, without pause, until `stop` is set.
fn spin(store: &Store, keys: &[String], stop: &AtomicBool, op: &'static str) -> Timings {
    let mut t = Timings::new(op, 1);
    for k in keys.iter().cycle() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        std::hint::black_box(t.time(k, |k| store.retrieve(k)));
    }
    t
}
