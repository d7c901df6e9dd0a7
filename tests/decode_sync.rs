//! The block-sync messages decode like the block decoders: from any bytes, a value or an
//! error, never a panic, and within bounded memory.
//!
//! Every variant of `SyncRequest` and `SyncResponse` is decoded through `codec::decode`
//! with the protocol's limits (`MAX_REQUEST_BYTES`, `MAX_RESPONSE_BYTES`) from random
//! bytes (alone and behind each tag), mutated valid encodings and hand-made hostile input
//! (lying lengths, a locator of 10^6 hashes declared, deep nesting, payloads under wrong
//! tags, truncations, answers over `MAX_SYNC_BLOCKS`), with the counting allocator of
//! `support/decode_harness.rs` bounding each decode's largest allocation and peak. Then
//! the real `SyncCodec` on in-memory streams: round trips, a length over the limit refused
//! before the body is read, truncated frames and garbage refused with the right errors.
//! A locator over `MAX_LOCATOR` hashes and a batch over `MAX_SYNC_BLOCKS` blocks are
//! refused while decoding, so even the most crowded message the byte limits admit stays
//! within them.

mod common;
#[path = "support/decode_harness.rs"]
mod harness;

use common::{block_on, params};
use futures::executor::block_on as wait;
use futures::io::Cursor;
use harness::{hex_prefix, measure, run, sample_block, Usage};
use kvchain::chain::{Block, BlockHash};
use kvchain::codec;
use kvchain::net::protocol::{
    SyncCodec, MAX_LOCATOR, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, MAX_SYNC_BLOCKS,
};
use kvchain::net::{ChainStatus, Names, SyncRequest, SyncResponse};
use libp2p::request_response::Codec;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index as Pick;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What decoding a request may allocate: its limit (a declared length is not reserved).
const REQUEST_BOUND: usize = MAX_REQUEST_BYTES;

fn hash(seed: &[u8]) -> BlockHash {
    BlockHash::digest(seed)
}

/// Decodes `bytes` as a `T`, measured; asserts the allocations stay within `bound` and
/// that a value decoded re-encodes to an equal one.
fn decodes<T: DeserializeOwned + Serialize + PartialEq + Debug>(
    bytes: &[u8],
    limit: usize,
    bound: usize,
) -> (bool, Usage) {
    let (r, u) = measure(|| codec::decode::<T>(bytes, limit));
    assert!(
        u.largest <= bound && u.peak_live <= bound,
        "decoding {} bytes as {}: {u:?} (bound {bound}); input starts {}",
        bytes.len(),
        std::any::type_name::<T>(),
        hex_prefix(bytes)
    );
    if let Ok(v) = &r {
        let again = codec::decode::<T>(&codec::encode(v), limit);
        assert_eq!(again.ok().as_ref(), Some(v));
    }
    (r.is_ok(), u)
}

/// Decodes `bytes` as a request and as a response, with the protocol's limits.
fn decode_sync(bytes: &[u8]) -> ([bool; 2], Usage) {
    let (req, u) = decodes::<SyncRequest>(bytes, MAX_REQUEST_BYTES, REQUEST_BOUND);
    let (res, v) = decodes::<SyncResponse>(bytes, MAX_RESPONSE_BYTES, MAX_RESPONSE_BYTES);
    ([req, res], u.max(v))
}

fn requests() -> Vec<SyncRequest> {
    vec![
        SyncRequest::Status,
        SyncRequest::Blocks {
            locator: vec![],
            max: 0,
        },
        SyncRequest::Blocks {
            locator: vec![hash(b"tip"), params().genesis_hash()],
            max: MAX_SYNC_BLOCKS,
        },
        SyncRequest::Blocks {
            locator: (0..MAX_LOCATOR as u32)
                .map(|i| hash(&i.to_le_bytes()))
                .collect(),
            max: u32::MAX,
        },
        SyncRequest::Block(hash(b"wanted")),
    ]
}

fn responses() -> Vec<SyncResponse> {
    let block = sample_block();
    let empty = block_on(&block.header, vec![], 1);
    vec![
        SyncResponse::Status(ChainStatus {
            genesis: params().genesis_hash(),
            tip: block.hash(),
            height: 1,
            total_work: (u128::MAX - 1).to_be_bytes(),
        }),
        SyncResponse::Blocks(vec![]),
        SyncResponse::Blocks(vec![block.clone(), empty]),
        SyncResponse::Block(Some(block)),
        SyncResponse::Block(None),
    ]
}

/// Valid encodings of every variant of both messages.
fn seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = requests().iter().map(codec::encode).collect();
    out.extend(responses().iter().map(codec::encode));
    out
}

// --- Random bytes and mutations ---

/// Random bytes, alone or behind a tag (real ones first), so that they reach the payload
/// decoders instead of failing at the first byte.
const TAGS: [&[u8]; 8] = [
    b"\xa1\x01",
    b"\xa1\x65Block",
    b"\xa1\x66Blocks",
    b"\xa1\x66Status",
    b"\x00",
    b"\xa1\x01\xa2\x00",
    b"\xa1\x02",
    b"\xa1\x67Blockss",
];

#[test]
fn random_bytes_never_panic_or_overallocate() {
    let bytes = vec(any::<u8>(), 0..2048);
    run(12_000, (0..=TAGS.len(), bytes), |(tag, bytes)| {
        decode_sync(&[TAGS.get(tag).copied().unwrap_or_default(), &bytes].concat());
        Ok(())
    });
}

#[derive(Debug, Clone)]
enum Edit {
    Xor(Pick, u8),
    Cut(Pick),
    Insert(Pick, Vec<u8>),
    /// A string, array or map head claiming `len` items, written over the bytes there.
    Claim(Pick, u8, u64),
}

fn edit() -> impl Strategy<Value = Edit> {
    let len = prop_oneof![0..64u64, Just(1 << 20), Just(1 << 32), any::<u64>()];
    let bytes = vec(any::<u8>(), 1..40);
    prop_oneof![
        4 => (any::<Pick>(), 1..=255u8).prop_map(|(i, x)| Edit::Xor(i, x)),
        1 => any::<Pick>().prop_map(Edit::Cut),
        2 => (any::<Pick>(), bytes).prop_map(|(i, b)| Edit::Insert(i, b)),
        3 => (any::<Pick>(), 2..6u8, len).prop_map(|(i, m, n)| Edit::Claim(i, m, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, e: &Edit) {
    let len = bytes.len();
    match e {
        _ if len == 0 => {}
        Edit::Xor(i, x) => bytes[i.index(len)] ^= x,
        Edit::Cut(i) => bytes.truncate(i.index(len)),
        Edit::Insert(i, b) => {
            let at = i.index(len + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Edit::Claim(i, major, n) => {
            let at = i.index(len);
            let end = (at + 9).min(len);
            bytes.splice(at..end, head(*major, *n));
        }
    }
}

#[test]
fn mutated_valid_encodings_never_panic_or_overallocate() {
    let seeds = seeds();
    let (decoded, changed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let edited = (0..seeds.len(), vec(edit(), 1..5));
    run(8_000, edited, |(seed, edits)| {
        let mut bytes = seeds[seed].clone();
        for e in &edits {
            apply(&mut bytes, e);
        }
        if decode_sync(&bytes).0.contains(&true) {
            decoded.fetch_add(1, Ordering::Relaxed);
            if bytes != seeds[seed] {
                changed.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    });
    let (decoded, changed) = (decoded.into_inner(), changed.into_inner());
    eprintln!("mutations: {decoded} decoded, {changed} of them changed");
    // The edits reach past the tags: some changed messages still decode, most do not.
    assert!(
        changed > 0 && decoded < 4_000,
        "{decoded} decoded, {changed} changed"
    );
}

// --- Hand-made hostile input ---

/// A CBOR head of major type `major` claiming `len`, in the 8-byte form.
fn head(major: u8, len: u64) -> Vec<u8> {
    [&[(major << 5) | 27][..], &len.to_be_bytes()].concat()
}

/// Input that is no message of either kind: lying lengths and deep nesting in every place
/// of every variant, wrong tags.
fn hostile() -> Vec<Vec<u8>> {
    let hash = [&[0x58, 0x20][..], &[7; 32]].concat();
    let block = codec::encode(&sample_block());
    let header = codec::encode(&sample_block().header);
    let to_txs = [&b"\xa1\x65Block\xa2\x00"[..], &header, b"\x01"].concat();
    let mut to_work = b"\xa1\x66Status\xa4\x00".to_vec();
    to_work.extend([&hash[..], b"\x01", &hash, b"\x02\x00\x03"].concat());
    let few = [1u8, 2, 3, 4, 5, 6, 7, 8];
    // Where a lying head goes (what comes before it), and what follows it.
    let places: [(&[u8], &[u8]); 10] = [
        (b"\xa1\x01\xa2\x00", &hash),         // the locator
        (b"\xa1\x01\xa2\x01\x05\x00", &hash), // the locator, after `max`
        (b"\xa1\x66Blocks", &block),          // the answer's block list
        (&to_txs, &few),                      // a block's txs
        (b"\xa1\x65Block", &few),             // the hash asked for, the block answered
        (b"\xa1\x65Block\xa2\x00", &few),     // a block's header
        (b"\xa1\x66Status\xa4\x00", &few),    // a status's genesis
        (&to_work, &few),                     // a status's work
        (b"\xa1", &few),                      // the tag
        (b"", b"\x01\xa2\x00\x80\x01\x05"),   // the message
    ];
    let mut out = Vec::new();
    for (before, after) in places {
        for major in 2..=5 {
            for len in [1_000_000u64, 1 << 32, 1 << 63, u64::MAX] {
                out.push([before, &head(major, len), after, after].concat());
            }
        }
        let units: [&[u8]; 5] = [b"\x81", b"\x9f", b"\xa1\x00", b"\xc6", &head(4, u64::MAX)];
        out.extend(units.map(|unit| [before, &unit.repeat(10_000)].concat()));
    }
    // A locator of 10^6 hashes in the 4-byte head an encoder would write.
    let million = 1_000_000u32.to_be_bytes();
    out.push([&b"\xa1\x01\xa2\x00\x9a"[..], &million, &hash].concat());
    // Wrong tags: indices past the last variant, names of none, other types.
    let mut tags: Vec<Vec<u8>> = [3, 23, 255, u64::MAX].map(|n| head(0, n)).into();
    let others: [&[u8]; 6] = [
        b"\x20",
        b"\x60",
        b"\x65block",
        b"\x66Blockz",
        b"\xf5",
        b"\x40",
    ];
    tags.extend(others.map(<[u8]>::to_vec));
    for tag in &tags {
        out.push(tag.clone());
        out.push([b"\xa1", &tag[..], &hash].concat());
        out.push([b"\xa1", &tag[..], b"\x81", &block].concat());
    }
    out.push([&b"\xa2\x65Block"[..], &hash, b"\x66Blocks\x80"].concat());
    out.push(b"\xa0".to_vec());
    out.push(vec![]);
    out
}

/// Splits a seed into the tag it starts with and its payload.
fn split(seed: &[u8]) -> (&[u8], &[u8]) {
    let real = TAGS[..4].iter();
    let tag = real.filter(|t| seed.starts_with(t)).max_by_key(|t| t.len());
    seed.split_at(tag.map_or(seed.len(), |t| t.len()))
}

#[test]
fn hostile_and_truncated_input_is_refused_within_bounds() {
    let mut worst = Usage::default();
    let inputs = hostile();
    assert!(inputs.len() > 100, "{}", inputs.len());
    for (i, bytes) in inputs.iter().enumerate() {
        let (ok, usage) = decode_sync(bytes);
        assert_eq!(ok, [false, false], "input {i}: {}", hex_prefix(bytes));
        worst = worst.max(usage);
    }
    // Every payload under every tag: what decodes is one of the messages the payloads were
    // taken from (a tag may name a variant by index or by name), never another.
    let (requests, responses) = (requests(), responses());
    for seed in seeds() {
        for tag in TAGS[..5].iter().chain([&&b""[..]]) {
            let bytes = [tag, split(&seed).1].concat();
            decode_sync(&bytes);
            if let Ok(r) = codec::decode::<SyncRequest>(&bytes, MAX_REQUEST_BYTES) {
                assert!(requests.contains(&r), "{}: {r:?}", hex_prefix(&bytes));
            }
            if let Ok(r) = codec::decode::<SyncResponse>(&bytes, MAX_RESPONSE_BYTES) {
                assert!(responses.contains(&r), "{}: {r:?}", hex_prefix(&bytes));
            }
        }
    }
    // Every truncation of every message is refused.
    for seed in seeds() {
        for cut in 0..seed.len() {
            let (ok, _) = decode_sync(&seed[..cut]);
            assert_eq!(ok, [false, false], "{} cut at {cut}", hex_prefix(&seed));
        }
    }
    eprintln!("hostile: {} inputs, worst {worst:?}", inputs.len());
}

/// A batch of `MAX_SYNC_BLOCKS + 1` real blocks is refused while decoding, within the limit.
#[test]
fn an_answer_over_the_batch_limit_is_refused_while_decoding() {
    let mut parent = params().genesis().header;
    let blocks: Vec<Block> = (0..=MAX_SYNC_BLOCKS)
        .map(|_| {
            let b = block_on(&parent, vec![], 0);
            parent = b.header;
            b
        })
        .collect();
    let bytes = codec::encode(&SyncResponse::Blocks(blocks));
    let (ok, usage) = decode_sync(&bytes);
    assert_eq!(ok, [false, false]);
    assert!(usage.peak_live <= MAX_RESPONSE_BYTES, "{usage:?}");
    assert!(codec::decode::<SyncResponse>(&bytes, MAX_RESPONSE_BYTES).is_err());
}

/// The most crowded lists the byte limits admit: a locator of ~1900 hashes and an answer
/// of ~123k empty blocks. Both are refused while decoding, within the limits.
#[test]
fn the_most_crowded_messages_the_limits_admit_are_refused_within_bounds() {
    let hash = [&[0x58, 0x20][..], &[7; 32]].concat();
    let count = (MAX_REQUEST_BYTES - 16) / hash.len();
    assert!(count > MAX_LOCATOR);
    let mut bytes = [&b"\xa1\x01\xa2\x00\x99"[..], &(count as u16).to_be_bytes()].concat();
    bytes.extend([&hash.repeat(count)[..], b"\x01\x05"].concat());
    let (r, usage) = measure(|| codec::decode::<SyncRequest>(&bytes, MAX_REQUEST_BYTES));
    assert!(r.is_err(), "a locator of {count} hashes was taken");
    assert!(usage.peak_live <= REQUEST_BOUND, "{usage:?}");

    let empty = codec::encode(&block_on(&params().genesis().header, vec![], 0));
    let count = (MAX_RESPONSE_BYTES - 32) / empty.len();
    let mut bytes = [&b"\xa1\x66Blocks"[..], &head(4, count as u64)].concat();
    bytes.extend(empty.repeat(count));
    assert!(bytes.len() <= MAX_RESPONSE_BYTES);
    let (r, usage) = measure(|| codec::decode::<SyncResponse>(&bytes, MAX_RESPONSE_BYTES));
    assert!(r.is_err(), "{count} blocks were taken");
    assert!(usage.peak_live <= MAX_RESPONSE_BYTES, "{usage:?}");
}

// --- The stream codec ---

fn frame(len: u32, body: &[u8]) -> Vec<u8> {
    [&len.to_le_bytes()[..], body].concat()
}

/// Either message, as the codec read it.
#[derive(Debug, PartialEq)]
enum Msg {
    Request(SyncRequest),
    Response(SyncResponse),
}

/// Reads one request (or response) from `stream` with the real codec, measured; returns
/// what was read, how far into the stream the codec read, and what it allocated.
fn read(stream: &[u8], response: bool) -> (std::io::Result<Msg>, u64, Usage) {
    let protocol = Names::new(&params().network_id()).sync();
    let mut io = Cursor::new(stream);
    let (r, usage) = measure(|| {
        wait(async {
            if response {
                let r = SyncCodec.read_response(&protocol, &mut io).await;
                r.map(Msg::Response)
            } else {
                let r = SyncCodec.read_request(&protocol, &mut io).await;
                r.map(Msg::Request)
            }
        })
    });
    (r, io.position(), usage)
}

fn kind<T: std::fmt::Debug>(r: &std::io::Result<T>) -> Option<ErrorKind> {
    r.as_ref().err().map(|e| e.kind())
}

#[test]
fn every_variant_round_trips_and_decodes_as_its_own_kind_only() {
    let protocol = Names::new(&params().network_id()).sync();
    let mut written = Vec::new();
    for r in requests() {
        let mut out = Cursor::new(Vec::new());
        wait(SyncCodec.write_request(&protocol, &mut out, r.clone())).unwrap();
        written.push((out.into_inner(), Msg::Request(r)));
    }
    for r in responses() {
        let mut out = Cursor::new(Vec::new());
        wait(SyncCodec.write_response(&protocol, &mut out, r.clone())).unwrap();
        written.push((out.into_inner(), Msg::Response(r)));
    }
    for ((stream, msg), seed) in written.into_iter().zip(seeds()) {
        let response = matches!(msg, Msg::Response(_));
        assert_eq!(decode_sync(&seed).0, [!response, response], "{msg:?}");
        assert_eq!(stream, frame(seed.len() as u32, &seed));
        let (back, read_to, _) = read(&stream, response);
        assert_eq!(back.unwrap(), msg);
        assert_eq!(read_to, stream.len() as u64);
    }
}

#[test]
fn a_length_over_the_limit_is_refused_before_the_body_is_read() {
    let valid = codec::encode(&requests()[2]);
    for (limit, response) in [(MAX_REQUEST_BYTES, false), (MAX_RESPONSE_BYTES, true)] {
        // The whole declared body is there: reading it would succeed, were it read.
        let mut body = valid.clone();
        body.resize(limit + 1, 0);
        for stream in [frame(limit as u32 + 1, &body), frame(u32::MAX, &valid)] {
            let (r, read_to, usage) = read(&stream, response);
            assert_eq!(kind(&r), Some(ErrorKind::InvalidData), "{r:?}");
            assert_eq!(read_to, 4, "read past the length prefix");
            assert!(usage.largest < 4096, "allocated for the body: {usage:?}");
        }
        // At the limit exactly, the frame is read and parsed (garbage, so refused).
        let (r, read_to, _) = read(&frame(limit as u32, &vec![0xff; limit]), response);
        assert_eq!(kind(&r), Some(ErrorKind::InvalidData), "{r:?}");
        assert_eq!(read_to, 4 + limit as u64);
    }
}

#[test]
fn a_truncated_frame_is_an_error() {
    for seed in seeds() {
        let whole = frame(seed.len() as u32, &seed);
        for cut in 0..whole.len() {
            for response in [false, true] {
                let (r, _, _) = read(&whole[..cut], response);
                let what = format!("{} cut at {cut}: {r:?}", hex_prefix(&seed));
                assert_eq!(kind(&r), Some(ErrorKind::UnexpectedEof), "{what}");
            }
        }
    }
}

#[test]
fn garbage_in_a_frame_is_invalid_data() {
    let mut bodies = hostile();
    bodies.push(b"\xffthis is not cbor".to_vec());
    bodies.push(codec::encode(&sample_block()));
    let seeds = seeds();
    let n_requests = requests().len();
    for (response, wrong) in [(false, &seeds[n_requests..]), (true, &seeds[..n_requests])] {
        // Hostile bytes, and the other direction's messages.
        for body in bodies.iter().chain(wrong) {
            let (r, _, _) = read(&frame(body.len() as u32, body), response);
            let what = format!("{}: {r:?}", hex_prefix(body));
            assert_eq!(kind(&r), Some(ErrorKind::InvalidData), "{what}");
        }
    }
}

#[test]
fn any_stream_is_read_as_a_message_or_refused() {
    let seeds = seeds();
    let n_requests = requests().len();
    let streams = (
        any::<bool>(),
        0..4u8,
        0..seeds.len(),
        vec(any::<u8>(), 0..512),
    );
    run(4_000, streams, |(response, shape, seed, bytes)| {
        let stream = match shape {
            0 => bytes.clone(),
            1 => frame(bytes.len() as u32, &bytes),
            2 => frame(bytes.len() as u32 + 1, &bytes),
            _ => {
                let body = [&seeds[seed][..], &bytes].concat();
                frame(body.len() as u32, &body)
            }
        };
        let (r, read_to, _) = read(&stream, response);
        prop_assert!(read_to <= stream.len() as u64);
        match kind(&r) {
            None | Some(ErrorKind::InvalidData) | Some(ErrorKind::UnexpectedEof) => {}
            other => prop_assert!(false, "error of kind {other:?}"),
        }
        if shape == 3 {
            // A whole message, then more in the same frame: only the message alone,
            // read in its own direction, is taken.
            let own = (seed >= n_requests) == response;
            prop_assert_eq!(r.is_ok(), own && bytes.is_empty(), "{:?}", r);
        }
        Ok(())
    });
}
