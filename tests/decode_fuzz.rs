//! Acceptance: "Decoding arbitrary bytes (proptest, many thousands of cases) into any message
//! type returns an error or a value, never a panic, and never allocates past the limits."
//!
//! Every message type (`Tx`, `Block`, `Header`) is decoded through `codec::decode` with the
//! node's limit from (a) random bytes, (b) mutated valid encodings and (c) hand-made hostile
//! CBOR that claims huge lengths or nests deeply. A counting global allocator records, for the
//! measuring thread only, the largest single allocation request and the peak of live bytes
//! during each decode; both must stay within `MAX_MESSAGE_BYTES`.

mod common;

use common::{block_on, del, key, params, put};
use kvchain::chain::params::MAX_BLOCK_TXS;
use kvchain::chain::{Block, Header, Tx};
use kvchain::codec::{self, CodecError, MAX_MESSAGE_BYTES};
use proptest::prelude::*;
use proptest::sample::Index as Pick;
use proptest::test_runner::{Config, TestRunner};
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
static LARGEST_EVER: AtomicUsize = AtomicUsize::new(0);

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
struct Usage {
    /// Largest single allocation (or reallocation) request, in bytes.
    largest: usize,
    /// Peak of bytes allocated during the closure and not yet freed.
    peak_live: usize,
}

impl Usage {
    fn max(self, other: Usage) -> Usage {
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
fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
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
fn decode_all(bytes: &[u8]) -> ([bool; 3], Usage) {
    let (tx, u_tx) = measure(|| codec::decode::<Tx>(bytes, MAX_MESSAGE_BYTES));
    let (block, u_block) = measure(|| codec::decode::<Block>(bytes, MAX_MESSAGE_BYTES));
    let (header, u_header) = measure(|| codec::decode::<Header>(bytes, MAX_MESSAGE_BYTES));
    for (what, u) in [("Tx", u_tx), ("Block", u_block), ("Header", u_header)] {
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

fn hex_prefix(bytes: &[u8]) -> String {
    hex::encode(&bytes[..bytes.len().min(24)])
}

/// Proptest settings: many cases, and no regression files written into the tree.
fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
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
fn sample_block() -> Block {
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
fn seeds() -> Vec<Vec<u8>> {
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

// ---------------------------------------------------------------------------------------
// Harness checks
// ---------------------------------------------------------------------------------------

#[test]
fn valid_messages_round_trip_and_stay_within_limits() {
    let block = sample_block();
    assert_eq!(block.txs.len(), 5);
    let bytes = codec::encode(&block);
    assert!(!bytes.is_empty());

    let (back, usage) = measure(|| codec::decode::<Block>(&bytes, MAX_MESSAGE_BYTES));
    let back = back.expect("a valid block decodes");
    assert_eq!(back, block);
    assert_eq!(back.hash(), block.hash());
    assert_eq!(back.compute_merkle(), block.header.merkle);
    for (a, b) in back.txs.iter().zip(&block.txs) {
        assert_eq!(a.id(), b.id());
        assert!(a.verify_signature().is_ok());
    }
    // The allocator really counts: decoding five txs allocates something, and not much.
    assert!(usage.largest > 0 && usage.peak_live > 0, "{usage:?}");
    assert!(usage.peak_live < 64 * 1024, "{usage:?}");

    let tx: Tx = codec::decode(&codec::encode(&block.txs[3]), MAX_MESSAGE_BYTES).unwrap();
    assert_eq!(tx, block.txs[3]);
    let header: Header = codec::decode(&codec::encode(&block.header), MAX_MESSAGE_BYTES).unwrap();
    assert_eq!(header, block.header);

    // Every seed decodes as exactly the type it was made from.
    let expect = [
        [false, true, false],
        [true, false, false],
        [true, false, false],
        [false, false, true],
        [false, true, false],
    ];
    for (seed, want) in seeds().iter().zip(expect) {
        assert_eq!(decode_all(seed).0, want, "seed {}", hex_prefix(seed));
    }
}

#[test]
fn counting_allocator_sees_large_allocations() {
    // Shows the harness can fail: a 3 MiB allocation inside `measure` is seen as such.
    let (v, usage) = measure(|| vec![1u8; 3 * 1024 * 1024]);
    assert_eq!(v.len(), 3 * 1024 * 1024);
    assert!(usage.largest >= 3 * 1024 * 1024, "{usage:?}");
    assert!(usage.peak_live >= 3 * 1024 * 1024, "{usage:?}");
    drop(v);
    // And allocations outside `measure` are not counted.
    let (_, usage) = measure(|| 0u8);
    assert_eq!(usage.largest, 0);
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    // Bytes that would parse as a header if they were looked at (a valid header followed
    // by padding is still refused for its length alone, and nothing is allocated).
    let header = sample_block().header;
    let mut bytes = codec::encode(&header);
    bytes.resize(MAX_MESSAGE_BYTES + 1, 0);
    let (r, usage) = measure(|| codec::decode::<Header>(&bytes, MAX_MESSAGE_BYTES));
    match r {
        Err(CodecError::TooLarge { len, limit }) => {
            assert_eq!(len, MAX_MESSAGE_BYTES + 1);
            assert_eq!(limit, MAX_MESSAGE_BYTES);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(
        usage.largest, 0,
        "refusing oversized input allocated: {usage:?}"
    );

    for garbage in [
        vec![0xffu8; MAX_MESSAGE_BYTES + 1],
        vec![0x9b; 3 * 1024 * 1024],
    ] {
        for r in [
            codec::decode::<Tx>(&garbage, MAX_MESSAGE_BYTES).err(),
            codec::decode::<Block>(&garbage, MAX_MESSAGE_BYTES).err(),
        ] {
            assert!(
                matches!(r, Some(CodecError::TooLarge { len, limit: MAX_MESSAGE_BYTES }) if len == garbage.len()),
                "{r:?}"
            );
        }
    }

    // The limit is inclusive: exactly `limit` bytes are parsed, one fewer is refused.
    let exact = codec::encode(&header);
    assert_eq!(
        codec::decode::<Header>(&exact, exact.len()).unwrap(),
        header
    );
    assert!(matches!(
        codec::decode::<Header>(&exact, exact.len() - 1),
        Err(CodecError::TooLarge { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// (a) random bytes
// ---------------------------------------------------------------------------------------

#[test]
fn random_bytes_never_panic_or_overallocate() {
    let largest = AtomicUsize::new(0);
    run(
        10_000,
        proptest::collection::vec(any::<u8>(), 0..4096),
        |bytes| {
            let (_, usage) = decode_all(&bytes);
            largest.fetch_max(usage.largest, Ordering::Relaxed);
            Ok(())
        },
    );
    eprintln!(
        "random bytes: largest single allocation {} bytes",
        largest.into_inner()
    );
}

/// Random bytes behind a prefix that looks like the start of a block (array of 2, a
/// 96-byte byte string), so the random part lands in the tx list.
#[test]
fn random_bytes_after_a_block_prefix_never_panic_or_overallocate() {
    let header = codec::encode(&sample_block().header);
    run(
        5_000,
        proptest::collection::vec(any::<u8>(), 0..2048),
        |tail| {
            let mut bytes = vec![0x82];
            bytes.extend_from_slice(&header);
            bytes.extend_from_slice(&tail);
            decode_all(&bytes);
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------
// (b) mutations of valid encodings
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Pick, u8),
    Set(Pick, u8),
    Insert(Pick, Vec<u8>),
    Delete(Pick, usize),
    Truncate(Pick),
    /// Overwrite with a CBOR length header claiming a huge count.
    HugeLength(Pick, u8),
    /// Copy a range of the message to elsewhere in it.
    Splice(Pick, Pick, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Pick>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        2 => (any::<Pick>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        2 => (any::<Pick>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => (any::<Pick>(), 1..32usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<Pick>().prop_map(Mutation::Truncate),
        2 => (any::<Pick>(), 0..3u8).prop_map(|(i, major)| Mutation::HugeLength(i, major)),
        1 => (any::<Pick>(), any::<Pick>(), 1..200usize)
            .prop_map(|(a, b, n)| Mutation::Splice(a, b, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match m {
        Mutation::Flip(i, x) => bytes[i.index(len)] ^= x,
        Mutation::Set(i, b) => bytes[i.index(len)] = *b,
        Mutation::Insert(i, b) => {
            let at = i.index(len + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let at = i.index(len);
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(len)),
        Mutation::HugeLength(i, major) => {
            // byte string, array or map with an 8-byte length of 2^63 - 1.
            let head = [0x5b, 0x9b, 0xbb][*major as usize];
            let at = i.index(len);
            let mut h = vec![head];
            h.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
            let end = (at + h.len()).min(len);
            bytes.splice(at..end, h);
        }
        Mutation::Splice(a, b, n) => {
            let from = a.index(len);
            let chunk: Vec<u8> = bytes[from..(from + n).min(len)].to_vec();
            let at = b.index(len + 1);
            bytes.splice(at..at, chunk);
        }
    }
}

#[test]
fn mutated_valid_encodings_never_panic_or_overallocate() {
    let seeds = seeds();
    let ok = AtomicUsize::new(0);
    let err = AtomicUsize::new(0);
    let ok_block = AtomicUsize::new(0);
    let largest = AtomicUsize::new(0);
    run(
        10_000,
        (0..seeds.len(), proptest::collection::vec(mutation(), 1..6)),
        |(seed, mutations)| {
            let mut bytes = seeds[seed].clone();
            for m in &mutations {
                apply(&mut bytes, m);
            }
            let (oks, usage) = decode_all(&bytes);
            largest.fetch_max(usage.largest, Ordering::Relaxed);
            if oks.iter().any(|&o| o) {
                ok.fetch_add(1, Ordering::Relaxed);
            } else {
                err.fetch_add(1, Ordering::Relaxed);
            }
            if oks[1] && bytes != seeds[seed] {
                ok_block.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        },
    );
    let (ok, err, ok_block) = (ok.into_inner(), err.into_inner(), ok_block.into_inner());
    eprintln!(
        "mutations: {ok} decoded, {err} refused, {ok_block} changed blocks decoded; \
         largest single allocation {} bytes",
        largest.into_inner()
    );
    // The mutations reach past the first bytes: some mutated blocks still decode (e.g. a
    // changed value byte), most are refused somewhere inside.
    assert!(
        ok_block > 0,
        "no mutated block decoded: mutations never got deep"
    );
    assert!(
        err > ok,
        "most mutations should be refused ({ok} ok, {err} err)"
    );
}

// ---------------------------------------------------------------------------------------
// (c) hostile length headers and deep nesting
// ---------------------------------------------------------------------------------------

fn head(major: u8, len: u64) -> Vec<u8> {
    // Always the 8-byte form, as an attacker would send.
    let mut h = vec![(major << 5) | 27];
    h.extend_from_slice(&len.to_be_bytes());
    h
}

fn head32(major: u8, len: u32) -> Vec<u8> {
    let mut h = vec![(major << 5) | 26];
    h.extend_from_slice(&len.to_be_bytes());
    h
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A 32-byte author key as a CBOR byte string.
const AUTHOR_FIELD: &[u8] = &{
    let mut a = [7u8; 34];
    a[0] = 0x58;
    a[1] = 0x20;
    a
};
/// `Op::Put { key: "k", value: b"" }` as the encoder writes it: `{0: {0: "k", 1: h''}}`.
const OP_FIELD: &[u8] = &[0xa1, 0x00, 0xa2, 0x00, 0x61, b'k', 0x01, 0x40];

#[test]
fn hand_made_tx_pieces_are_well_formed() {
    // The pieces the hostile inputs are built from make a valid tx when completed, so the
    // hostile inputs below reach the field they target instead of failing earlier.
    let mut t = vec![0xa5];
    for (i, v) in [AUTHOR_FIELD, OP_FIELD, &[0x00], &[0x00]]
        .iter()
        .enumerate()
    {
        t.push(i as u8);
        t.extend_from_slice(v);
    }
    t.extend_from_slice(&[0x04, 0x58, 0x40]);
    t.extend_from_slice(&[9; 64]);
    let tx: Tx = codec::decode(&t, MAX_MESSAGE_BYTES).expect("hand-made tx decodes");
    assert_eq!(
        tx.op(),
        &kvchain::chain::Op::Put {
            key: "k".into(),
            value: vec![]
        }
    );
    assert_eq!(tx.author().0, [7; 32]);
}

/// Hand-made inputs that claim far more than they hold, or nest far deeper than any
/// message, in every position a message type could reach.
fn hostile_inputs() -> Vec<(String, Vec<u8>)> {
    let block = sample_block();
    let header = codec::encode(&block.header);
    let tx = codec::encode(&block.txs[0]);
    let few = [0u8, 1, 2, 3, 4, 5, 6, 7];
    let author = AUTHOR_FIELD;
    let op = OP_FIELD;
    let mut out = Vec::new();

    for len in [
        1u64 << 32,
        1 << 63,
        u64::MAX,
        u64::MAX >> 1,
        (MAX_MESSAGE_BYTES as u64) + 1,
    ] {
        for (name, major) in [("bytes", 2u8), ("text", 3), ("array", 4), ("map", 5)] {
            out.push((format!("{name} of {len}"), cat(&[&head(major, len), &few])));
            // As the tx list of a block: header first, then the lying array/bytes.
            out.push((
                format!("block with {name} of {len} as txs"),
                cat(&[&[0x82], &header, &head(major, len), &few]),
            ));
            // A lying tx list whose first elements are real txs, cut off.
            out.push((
                format!("block with {name} of {len} then real txs"),
                cat(&[
                    &[0x82],
                    &header,
                    &head(major, len),
                    &tx,
                    &tx,
                    &tx[..tx.len() / 2],
                ]),
            ));
            // As the header of a block.
            out.push((
                format!("block with {name} of {len} as header"),
                cat(&[&[0x82], &head(major, len), &few]),
            ));
            // As each field of a tx (author, op, nonce, timestamp, signature), in both
            // the array form and the map form (field index keys) that the encoder uses.
            let fields: [&[u8]; 4] = [author, op, &[0x00], &[0x00]];
            for field in 0..5 {
                let mut as_array = vec![0x85];
                let mut as_map = vec![0xa5];
                for (i, value) in fields.iter().take(field).enumerate() {
                    as_array.extend_from_slice(value);
                    as_map.push(i as u8);
                    as_map.extend_from_slice(value);
                }
                as_map.push(field as u8);
                for t in [&mut as_array, &mut as_map] {
                    t.extend_from_slice(&head(major, len));
                    t.extend_from_slice(&few);
                }
                out.push((
                    format!("tx array with {name} of {len} as field {field}"),
                    as_array,
                ));
                out.push((
                    format!("tx map with {name} of {len} as field {field}"),
                    as_map,
                ));
            }
            // As the key or the value of a put (op = {0: [key, value]} in map form).
            out.push((
                format!("put with {name} of {len} as key"),
                cat(&[&[0xa1, 0x00, 0xa2, 0x00], &head(major, len), &few]),
            ));
            let mut t = vec![0xa5];
            for (i, value) in fields.iter().enumerate().take(1) {
                t.push(i as u8);
                t.extend_from_slice(value);
            }
            t.extend_from_slice(&[0x01, 0xa1, 0x00, 0xa2, 0x00, 0x61, b'k', 0x01]);
            t.extend_from_slice(&head(major, len));
            t.extend_from_slice(&few);
            out.push((format!("put with {name} of {len} as value"), t));
        }
        // As the outer struct header itself.
        out.push((
            format!("array of {len} of headers"),
            cat(&[&head(4, len), &header, &header]),
        ));
    }
    for len in [u32::MAX, 1 << 31, (MAX_MESSAGE_BYTES as u32) * 2] {
        for major in [2u8, 3, 4, 5] {
            out.push((
                format!("major {major} of {len} (4-byte length)"),
                cat(&[&head32(major, len), &few]),
            ));
            out.push((
                format!("block with major {major} of {len} (4-byte) as txs"),
                cat(&[&[0x82], &header, &head32(major, len), &few]),
            ));
        }
    }
    // A real put tx whose value header ("one" is 0x43 'o' 'n' 'e') is replaced by a
    // header claiming 2^32 or 2^64-1 bytes, the real bytes left behind it.
    let put_tx = codec::encode(&block.txs[0]);
    let value_at = put_tx
        .windows(4)
        .position(|w| w == b"\x43one")
        .expect("value in the encoding");
    for len in [1u64 << 32, u64::MAX] {
        let mut t = put_tx[..value_at].to_vec();
        t.extend_from_slice(&head(2, len));
        t.extend_from_slice(&put_tx[value_at + 1..]);
        out.push((format!("real put with value of {len} bytes"), t));
    }

    // Deep nesting, alone and in the tx slot of a block.
    let depth = 10_000;
    for (name, unit) in [
        ("arrays", vec![0x81u8]),
        ("indefinite arrays", vec![0x9f]),
        ("maps", vec![0xa1, 0x00]),
        ("indefinite maps", vec![0xbf, 0x00]),
        ("tags", vec![0xc6]),
        ("8-byte tags", vec![0xdb, 0, 0, 0, 0, 0, 0, 0, 1]),
        ("huge arrays", head(4, u64::MAX)),
    ] {
        let nest: Vec<u8> = unit.repeat(depth);
        out.push((format!("{depth} nested {name}"), nest.clone()));
        out.push((
            format!("block with {depth} nested {name} as txs"),
            cat(&[&[0x82], &header, &nest]),
        ));
        out.push((
            format!("block with {depth} nested {name} in the tx list"),
            cat(&[&[0x82], &header, &[0x9f], &nest]),
        ));
    }
    // Indefinite byte/text strings made of many tiny chunks (no single big length).
    let mut chunks = vec![0x5f];
    for _ in 0..100_000 {
        chunks.extend_from_slice(&[0x41, 0xaa]);
    }
    out.push((
        "indefinite bytes of 100000 chunks, unterminated".into(),
        chunks.clone(),
    ));
    chunks.push(0xff);
    out.push(("indefinite bytes of 100000 chunks".into(), chunks));
    out
}

#[test]
fn hostile_lengths_and_nesting_are_refused_within_limits() {
    let inputs = hostile_inputs();
    assert!(inputs.len() > 100);
    let mut worst = Usage::default();
    let mut worst_name = String::new();
    for (name, bytes) in &inputs {
        assert!(bytes.len() <= MAX_MESSAGE_BYTES, "{name}");
        let (oks, usage) = decode_all(bytes);
        // None of these is a complete message of any type.
        assert_eq!(oks, [false; 3], "{name} decoded");
        if usage.largest > worst.largest {
            worst_name = name.clone();
        }
        worst = worst.max(usage);
    }
    eprintln!(
        "hostile inputs: {} cases, largest single allocation {} bytes ({worst_name}), peak live {} bytes; \
         largest single allocation of any measured decode so far {} bytes",
        inputs.len(),
        worst.largest,
        worst.peak_live,
        LARGEST_EVER.load(Ordering::Relaxed)
    );
}

/// The hostile inputs again, each cut at random points and with random bytes behind, so
/// the lying lengths meet every kind of following data.
#[test]
fn hostile_inputs_with_random_tails_never_panic_or_overallocate() {
    let inputs = hostile_inputs();
    run(
        3_000,
        (
            0..inputs.len(),
            any::<Pick>(),
            proptest::collection::vec(any::<u8>(), 0..256),
        ),
        |(which, cut, tail)| {
            let base = &inputs[which].1;
            let mut bytes = base[..cut.index(base.len().min(4096) + 1)].to_vec();
            bytes.extend_from_slice(&tail);
            decode_all(&bytes);
            Ok(())
        },
    );
}

/// The largest message the limit admits, shaped as a block full of tiny txs: the decoded
/// value is bigger than its encoding, but the decoder must still stay within the limit.
#[test]
fn largest_admitted_block_of_tiny_txs_stays_within_limits() {
    let kp = key(9);
    let tx = Tx::new(&kp, kvchain::chain::Op::Delete { key: "k".into() }, 0, 0).unwrap();
    let tx_bytes = codec::encode(&tx);
    let header = codec::encode(&sample_block().header);
    let encode_block = |count: usize| {
        let mut bytes = vec![0x82];
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&head(4, count as u64));
        for _ in 0..count {
            bytes.extend_from_slice(&tx_bytes);
        }
        bytes
    };
    // As many tiny txs as fit in a message: far more than a block may hold.
    let room = MAX_MESSAGE_BYTES - 1 - header.len() - 9;
    let count = room / tx_bytes.len();
    assert!(count > MAX_BLOCK_TXS);
    let bytes = encode_block(count);
    assert!(bytes.len() <= MAX_MESSAGE_BYTES);
    let (r, usage) = measure(|| codec::decode::<Block>(&bytes, MAX_MESSAGE_BYTES));
    assert!(
        r.is_err(),
        "a block of {count} txs must be refused while decoding"
    );
    eprintln!(
        "block of {count} tiny txs ({} bytes, Tx is {} bytes in memory): largest single allocation {} bytes, peak live {} bytes",
        bytes.len(),
        std::mem::size_of::<Tx>(),
        usage.largest,
        usage.peak_live
    );
    assert!(
        usage.largest <= MAX_MESSAGE_BYTES && usage.peak_live <= MAX_MESSAGE_BYTES,
        "decoding a {}-byte block allocated {} bytes at once, {} live",
        bytes.len(),
        usage.largest,
        usage.peak_live
    );
    // A full block of them still decodes, within the same limits.
    let bytes = encode_block(MAX_BLOCK_TXS);
    let (r, usage) = measure(|| codec::decode::<Block>(&bytes, MAX_MESSAGE_BYTES));
    assert_eq!(r.expect("a full block decodes").txs.len(), MAX_BLOCK_TXS);
    assert!(usage.largest <= MAX_MESSAGE_BYTES && usage.peak_live <= MAX_MESSAGE_BYTES);
}
