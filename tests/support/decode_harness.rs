//! Shared harness of the decode tests (`decode_fuzz.rs`, `decode_hostile.rs`).
//!
//! A counting global allocator records, for the measuring thread only, the largest single
//! allocation request and the peak of live bytes during each decode; `decode_all` decodes
//! bytes as every message type (`Tx`, `Block`, `Header`) through `codec::decode` with the
//! node's limit and asserts both stay within `MAX_MESSAGE_BYTES`. Also here: proptest
//! settings and valid messages to start from.
//!
//! Included by the decode test binaries only, as
//! `#[path = "support/decode_harness.rs"] mod harness;` next to `mod common;`: it installs
//! the including binary's `#[global_allocator]`.
#![allow(dead_code)]

use crate::common::{block_on, del, key, params, put};
use kvchain::chain::{Block, Header, Tx};
use kvchain::codec::{self, MAX_MESSAGE_BYTES};
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

// ---------------------------------------------------------------------------------------
// Counting allocator
// ---------------------------------------------------------------------------------------

/// Forwards to the system allocator; while the current thread is measuring, records the
/// largest single request and the peak of bytes allocated and not yet freed.
struct Counting;

thread_local! {
    // `const` initialisers and `Cell`s of plain integers: no lazy initialisation and no
    // destructor, so touching them from inside the allocator never allocates.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// Largest single request seen by any `decode_all` in this process (for the report).
pub static LARGEST_EVER: AtomicUsize = AtomicUsize::new(0);

fn record(requested: usize, freed: usize) {
    let _ = MEASURING.try_with(|m| {
        if !m.get() {
            return;
        }
        let _ = LARGEST.try_with(|l| l.set(l.get().max(requested)));
        let _ = LIVE.try_with(|live| {
            let now = live.get() + requested as isize - freed as isize;
            live.set(now);
            let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
        });
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size(), 0);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size(), 0);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size, layout.size());
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(0, layout.size());
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What one measured closure allocated.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Largest single allocation (or reallocation) request, in bytes.
    pub largest: usize,
    /// Peak of bytes allocated during the closure and not yet freed.
    pub peak_live: usize,
}

impl Usage {
    pub fn max(self, other: Usage) -> Usage {
        Usage {
            largest: self.largest.max(other.largest),
            peak_live: self.peak_live.max(other.peak_live),
        }
    }
}

/// Stops measuring even if the measured closure panics.
struct StopMeasuring;
impl Drop for StopMeasuring {
    fn drop(&mut self) {
        MEASURING.with(|m| m.set(false));
    }
}

/// Runs `f` with this thread's allocations counted.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    LARGEST.with(|c| c.set(0));
    LIVE.with(|c| c.set(0));
    PEAK.with(|c| c.set(0));
    let guard = StopMeasuring;
    MEASURING.with(|m| m.set(true));
    let r = f();
    drop(guard);
    let usage = Usage {
        largest: LARGEST.with(Cell::get),
        peak_live: PEAK.with(Cell::get).max(0) as usize,
    };
    (r, usage)
}

/// Decodes `bytes` as every message type with the node's limit, each decode measured;
/// asserts the allocation bounds and returns whether each decode succeeded.
pub fn decode_all(bytes: &[u8]) -> ([bool; 3], Usage) {
    let (tx, u_tx) = measure(|| codec::decode::<Tx>(bytes, MAX_MESSAGE_BYTES));
    let (block, u_block) = measure(|| codec::decode::<Block>(bytes, MAX_MESSAGE_BYTES));
    let (header, u_header) = measure(|| codec::decode::<Header>(bytes, MAX_MESSAGE_BYTES));
    // A gossiped batch of txs.
    let (_, u_batch) = measure(|| codec::decode::<Vec<Tx>>(bytes, MAX_MESSAGE_BYTES));
    let all = [
        ("Tx", u_tx),
        ("Block", u_block),
        ("Header", u_header),
        ("Vec<Tx>", u_batch),
    ];
    for (what, u) in all {
        assert!(
            u.largest <= MAX_MESSAGE_BYTES,
            "decoding {} bytes as {what} made a single allocation of {} bytes (limit {}); input starts {}",
            bytes.len(),
            u.largest,
            MAX_MESSAGE_BYTES,
            hex_prefix(bytes)
        );
        assert!(
            u.peak_live <= MAX_MESSAGE_BYTES,
            "decoding {} bytes as {what} had {} bytes live at once (limit {}); input starts {}",
            bytes.len(),
            u.peak_live,
            MAX_MESSAGE_BYTES,
            hex_prefix(bytes)
        );
    }
    // A value that decodes must survive a re-encode: the decoder accepted something the
    // encoder can reproduce (no half-built values).
    if let Ok(tx) = &tx {
        assert_eq!(
            &codec::decode::<Tx>(&codec::encode(tx), MAX_MESSAGE_BYTES).unwrap(),
            tx
        );
    }
    if let Ok(b) = &block {
        assert_eq!(
            &codec::decode::<Block>(&codec::encode(b), MAX_MESSAGE_BYTES).unwrap(),
            b
        );
    }
    if let Ok(h) = &header {
        assert_eq!(
            &codec::decode::<Header>(&codec::encode(h), MAX_MESSAGE_BYTES).unwrap(),
            h
        );
    }
    let usage = u_tx.max(u_block).max(u_header);
    LARGEST_EVER.fetch_max(usage.largest, Ordering::Relaxed);
    ([tx.is_ok(), block.is_ok(), header.is_ok()], usage)
}

pub fn hex_prefix(bytes: &[u8]) -> String {
    hex::encode(&bytes[..bytes.len().min(24)])
}

/// Proptest settings: many cases, and no regression files written into the tree.
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

pub fn run<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(config(cases));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------
// Valid messages to start from
// ---------------------------------------------------------------------------------------

/// A real block on genesis with puts (short, empty, binary and 1 KiB values) and deletes.
pub fn sample_block() -> Block {
    let a = key(1);
    let b = key(2);
    let mut big = put(&b, "blob", "", 3);
    if let Ok(tx) = Tx::new(
        &b,
        kvchain::chain::Op::Put {
            key: "blob".into(),
            value: (0..1024u32).map(|i| (i * 7) as u8).collect(),
        },
        4,
        1_004,
    ) {
        big = tx;
    }
    let txs = vec![
        put(&a, "alpha", "one", 0),
        put(&a, "beta", "", 1),
        del(&a, "alpha", 2),
        put(&b, "ключ/γ", "ünïcödé", 0),
        big,
    ];
    block_on(&params().genesis().header, txs, 0)
}

/// Valid encodings of every message type: the block, one of its txs, its header, an
/// empty block.
pub fn seeds() -> Vec<Vec<u8>> {
    let block = sample_block();
    let empty = block_on(&block.header, vec![], 1);
    vec![
        codec::encode(&block),
        codec::encode(&block.txs[0]),
        codec::encode(&block.txs[2]),
        codec::encode(&block.header),
        codec::encode(&empty),
    ]
}
