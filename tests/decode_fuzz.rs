//! Acceptance: "Decoding arbitrary bytes (proptest, many thousands of cases) into any message
//! type returns an error or a value, never a panic, and never allocates past the limits."
//!
//! Checks the harness itself, then decodes every message type (`Tx`, `Block`, `Header`)
//! through `codec::decode` with the node's limit from (a) random bytes and (b) mutated valid
//! encodings. The counting allocator of `support/decode_harness.rs` records, for the
//! measuring thread only, the largest single allocation request and the peak of live bytes
//! during each decode; both must stay within `MAX_MESSAGE_BYTES`. The hand-made hostile
//! CBOR (c) is in `decode_hostile.rs`.

mod common;
#[path = "support/decode_harness.rs"]
mod harness;

use harness::{decode_all, hex_prefix, measure, run, sample_block, seeds};
use kvchain::chain::{Block, Header, Tx};
use kvchain::codec::{self, CodecError, MAX_MESSAGE_BYTES};
use proptest::prelude::*;
use proptest::sample::Index as Pick;
use std::sync::atomic::{AtomicUsize, Ordering};

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
