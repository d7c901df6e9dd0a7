//! Acceptance: "Decoding arbitrary bytes (proptest, many thousands of cases) into any message
//! type returns an error or a value, never a panic, and never allocates past the limits."
//!
//! (c) Hand-made hostile CBOR: every message type (`Tx`, `Block`, `Header`) is decoded
//! through `codec::decode` with the node's limit from inputs that claim huge lengths, nest
//! deeply or are indefinite strings of many chunks, alone and with random tails, and from
//! the largest admitted block of tiny txs. The counting allocator of
//! `support/decode_harness.rs` records the largest single allocation request and the peak
//! of live bytes during each decode; both must stay within `MAX_MESSAGE_BYTES`. Random
//! bytes and mutations are in `decode_fuzz.rs`.

mod common;
#[path = "support/decode_harness.rs"]
mod harness;

use common::key;
use harness::{decode_all, measure, run, sample_block, Usage, LARGEST_EVER};
use kvchain::chain::limits::MAX_BLOCK_TXS;
use kvchain::chain::{Block, Tx};
use kvchain::codec::{self, MAX_MESSAGE_BYTES};
use proptest::prelude::*;
use proptest::sample::Index as Pick;
use std::sync::atomic::Ordering;

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
