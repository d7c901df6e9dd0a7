//! The fuzz targets of `tests/fuzz_targets.rs`: one body per decoder or validator, each a
//! `fn(&[u8]) -> String` that must not panic on any input and returns a short label of what
//! happened (the driver keeps inputs that reach a label not seen before).
//!
//! Bodies read their input as a small program where structure matters ([`Input`]): a mode
//! byte, then operations on a valid message (change a header field, drop or duplicate a
//! tx, re-sign, re-solve the proof of work...), so random bytes reach past the decoders
//! into the validators. Decoders run under the counting allocator of
//! `support/decode_harness.rs`, their allocations bounded.
//!
//! Included by `tests/fuzz_targets.rs` next to `mod common;` and `mod harness;`. The
//! bodies: `decode` (wire formats), `files` (the block log, the chain and the journal on
//! damaged files), `validate` (blocks and txs against a real chain), `front` (the console
//! and the HTTP API).
#![allow(dead_code)]

use crate::common::{block_on, del, key, params, put};
use crate::harness::{measure, sample_block, seeds as decode_seeds, Usage};
use futures::executor::block_on as wait;
use kvchain::chain::block::merkle_root;
use kvchain::chain::journal::{Journal, JOURNAL_FILE};
use kvchain::chain::limits::{MAX_BLOCK_TXS, MAX_VALUE_BYTES};
use kvchain::chain::log::{frame, FrameLog, FRAME_HEADER};
use kvchain::chain::mempool::{check_timestamp, Mempool, MempoolLimits};
use kvchain::chain::side::Admission;
use kvchain::chain::state::BLOCK_LOG;
use kvchain::chain::tx::check_op;
use kvchain::chain::validate::check_standalone;
use kvchain::chain::{
    now_ms, pow, AuthorKey, Block, BlockError, BlockHash, Chain, Hash, Header, Op, Params,
    Signature, Tx,
};
use kvchain::codec::{self, MAX_MESSAGE_BYTES};
use kvchain::net::protocol::{
    read_frame, write_frame, SyncCodec, MAX_LOCATOR, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES,
    MAX_SYNC_BLOCKS,
};
use kvchain::net::{ChainStatus, Names, SyncRequest, SyncResponse};
use libp2p::request_response::Codec;
use serde::Serialize;
use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A target: its name, what it covers, its body, the valid inputs it starts from, the
/// longest input the driver makes for it, and its cases in the default (smoke) run.
pub struct Target {
    pub name: &'static str,
    pub about: &'static str,
    pub body: fn(&[u8]) -> String,
    pub seeds: fn() -> Vec<Vec<u8>>,
    pub max_len: usize,
    pub smoke_cases: u32,
}

/// Every target, in the order the script runs them.
pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "tx_decode",
            about: "Tx from bytes (bounded allocation, round trip), then its signature and op rules",
            body: tx_decode,
            seeds: decode_seeds,
            max_len: 4096,
            smoke_cases: 300,
        },
        Target {
            name: "block_decode",
            about: "Block and Header from bytes (bounded allocation, round trip), then the standalone block rules",
            body: block_decode,
            seeds: decode_seeds,
            max_len: 8192,
            smoke_cases: 300,
        },
        Target {
            name: "gossip",
            about: "a gossip message on the tx, block or an unknown topic: decoded as the service does, then judged by a real Chain",
            body: gossip,
            seeds: gossip_seeds,
            max_len: 8192,
            smoke_cases: 60,
        },
        Target {
            name: "sync_request",
            about: "SyncRequest from bytes with MAX_REQUEST_BYTES: bounded allocation, locator within MAX_LOCATOR, round trip",
            body: sync_request,
            seeds: sync_request_seeds,
            max_len: 4096,
            smoke_cases: 300,
        },
        Target {
            name: "sync_response",
            about: "SyncResponse from bytes with MAX_RESPONSE_BYTES: bounded allocation, batch within MAX_SYNC_BLOCKS, round trip",
            body: sync_response,
            seeds: sync_response_seeds,
            max_len: 16384,
            smoke_cases: 200,
        },
        Target {
            name: "sync_frame",
            about: "SyncCodec read_request/read_response and read_frame on a stream delivered in chunks, with pauses and read errors",
            body: sync_frame,
            seeds: sync_frame_seeds,
            max_len: 16384,
            smoke_cases: 200,
        },
        Target {
            name: "block_log_open",
            about: "FrameLog::open on arbitrary or re-checksummed file bytes: intact prefix kept, cut tail saved, reopen stable",
            body: block_log_open,
            seeds: block_log_seeds,
            max_len: 16384,
            smoke_cases: 60,
        },
        Target {
            name: "chain_open",
            about: "Chain::open on a mutated blocks.log (frames re-checksummed so payloads reach the block decoder and rules); reopen stable",
            body: chain_open,
            seeds: chain_open_seeds,
            max_len: 16384,
            smoke_cases: 30,
        },
        Target {
            name: "journal_open",
            about: "Journal::open on a mutated journal.log (records re-checksummed); reopen gives the same pending writes",
            body: journal_open,
            seeds: journal_seeds,
            max_len: 16384,
            smoke_cases: 40,
        },
        Target {
            name: "block_validate",
            about: "structure-aware mutations of a valid block (header fields, txs, bytes; PoW re-solved) against a real Chain; the honest block is never poisoned",
            body: block_validate,
            seeds: program_seeds,
            max_len: 256,
            smoke_cases: 40,
        },
        Target {
            name: "tx_admit",
            about: "mutated and fresh txs through Chain::submit_tx, check_timestamp and a small Mempool (insert, readd, remove, expire, template) with its bounds checked",
            body: tx_admit,
            seeds: program_seeds,
            max_len: 256,
            smoke_cases: 40,
        },
        Target {
            name: "console_parse",
            about: "console tokenize/parse of any line (quoting round-trips) and the attach socket's read_line on any byte stream",
            body: console_parse,
            seeds: console_seeds,
            max_len: 1024,
            smoke_cases: 300,
        },
        Target {
            name: "http_guard",
            about: "the HTTP Guard (Host, Authorization, absolute URIs, HTTP versions) and --http-vhosts parsing",
            body: http_guard,
            seeds: http_guard_seeds,
            max_len: 512,
            smoke_cases: 300,
        },
        Target {
            name: "http_api",
            about: "the API router in process on a real node: any path, key, id, query and body; never a 500, errors are JSON",
            body: http_api,
            seeds: http_api_seeds,
            max_len: 512,
            smoke_cases: 40,
        },
    ]
}

// ---------------------------------------------------------------------------------------
// Reading an input as a program
// ---------------------------------------------------------------------------------------

/// Reads values off the input; past its end every read gives zeros.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data, pos: 0 }
    }
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(std::array::from_fn(|_| self.u8()))
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|_| self.u8()))
    }
    /// An index below `n` (0 when `n` is 0).
    pub fn pick(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.u16() as usize % n
        }
    }
    /// One of `choices`.
    pub fn choose<T: Clone>(&mut self, choices: &[T]) -> T {
        choices[self.pick(choices.len())].clone()
    }
    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = (start + n).min(self.data.len());
        self.pos = end.max(self.pos);
        &self.data[start..end]
    }
    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        &self.data[start..]
    }
    pub fn hash(&mut self) -> Hash {
        Hash(std::array::from_fn(|_| self.u8()))
    }
}

fn label<T, E: std::fmt::Debug>(what: &str, r: &Result<T, E>) -> String {
    match r {
        Ok(_) => format!("{what}:ok"),
        Err(e) => {
            let dbg = format!("{e:?}");
            let kind: String = dbg
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            format!("{what}:{kind}")
        }
    }
}

fn check_usage(what: &str, bytes: &[u8], u: Usage, bound: usize) {
    assert!(
        u.largest <= bound && u.peak_live <= bound,
        "{what}: decoding {} bytes allocated {u:?}, over the bound {bound}",
        bytes.len()
    );
}

// ---------------------------------------------------------------------------------------
// Fixtures: a short chain and a valid block on its tip
// ---------------------------------------------------------------------------------------

pub struct Fixture {
    pub params: Params,
    /// On genesis.
    pub a: Block,
    /// On `a`.
    pub b: Block,
    /// On `b`: the honest block the validator targets mutate.
    pub c: Block,
    /// Signed txs in no block (key 3; one with a 1 KiB value, one with a maximal value).
    pub spare: Vec<Tx>,
    /// `MAX_BLOCK_TXS + 1` small signed txs, for the over-the-count mutation.
    pub crowd: OnceLock<Vec<Tx>>,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let params = params();
        let a = block_on(&params.genesis().header, vec![put(&key(1), "a", "1", 0)], 0);
        let b = block_on(
            &a.header,
            vec![put(&key(1), "b", "2", 1), del(&key(2), "a", 0)],
            0,
        );
        let c = block_on(
            &b.header,
            vec![
                put(&key(2), "c0", "x", 1),
                put(&key(2), "c1", "", 2),
                del(&key(1), "b", 2),
                put(&key(4), "ключ", "ü", 0),
            ],
            0,
        );
        let k3 = key(3);
        let now = now_ms();
        let spare = vec![
            Tx::new(
                &k3,
                Op::Put {
                    key: "s".into(),
                    value: b"v".to_vec(),
                },
                0,
                now,
            )
            .unwrap(),
            Tx::new(&k3, Op::Delete { key: "s".into() }, 1, now).unwrap(),
            Tx::new(
                &k3,
                Op::Put {
                    key: "kib".into(),
                    value: vec![7; 1024],
                },
                2,
                now,
            )
            .unwrap(),
            Tx::new(
                &k3,
                Op::Put {
                    key: "max".into(),
                    value: vec![1; MAX_VALUE_BYTES],
                },
                3,
                now,
            )
            .unwrap(),
            put(&key(1), "old", "stamp", 9),
        ];
        Fixture {
            params,
            a,
            b,
            c,
            spare,
            crowd: OnceLock::new(),
        }
    })
}

fn crowd() -> &'static [Tx] {
    fixture().crowd.get_or_init(|| {
        let kp = key(9);
        (0..=MAX_BLOCK_TXS as u64)
            .map(|i| del(&kp, "d", i))
            .collect()
    })
}

/// A chain holding genesis, `a` and `b`.
pub fn base_chain() -> Chain {
    let f = fixture();
    let mut chain = Chain::new(f.params.clone());
    chain.process_block(f.a.clone()).expect("fixture block a");
    chain.process_block(f.b.clone()).expect("fixture block b");
    chain
}

/// The wire form of a tx, to make txs with any field (bad signatures included).
#[derive(Serialize)]
struct TxWire {
    author: AuthorKey,
    op: Op,
    nonce: u64,
    timestamp: u64,
    sig: Signature,
}

/// A tx with these fields, signed or not; `None` if the op breaks the rules.
pub fn forge(author: AuthorKey, op: Op, nonce: u64, timestamp: u64, sig: Signature) -> Option<Tx> {
    let wire = TxWire {
        author,
        op,
        nonce,
        timestamp,
        sig,
    };
    codec::decode(&codec::encode(&wire), MAX_MESSAGE_BYTES).ok()
}

const VALUE_LENS: [usize; 6] = [
    0,
    1,
    100,
    MAX_VALUE_BYTES - 1,
    MAX_VALUE_BYTES,
    MAX_VALUE_BYTES + 1,
];

fn some_key(inp: &mut Input) -> String {
    // Zeros (the end of the input) give a valid key.
    match inp.u8() % 6 {
        1 => String::new(),
        2 => "k".repeat(inp.choose(&[255usize, 256, 257])),
        3 => String::from_utf8_lossy(inp.bytes(12)).into_owned(),
        4 => "a/b c\u{0}\n".into(),
        _ => format!("k{}", inp.u8() % 8),
    }
}

fn timestamp(inp: &mut Input, now: u64) -> u64 {
    match inp.u8() % 8 {
        1 => 0,
        2 => u64::MAX,
        3 => now + 2 * 60 * 1000 + 1,
        4 => now.saturating_sub(3600 * 1000 + 1),
        5 => inp.u64(),
        _ => now,
    }
}

/// One change to a tx: a field changed (the signature left as it was), or re-signed.
pub fn mutate_tx(tx: &Tx, inp: &mut Input) -> Tx {
    let mut author = tx.author();
    let mut op = tx.op().clone();
    let mut nonce = tx.nonce();
    let mut ts = tx.timestamp();
    let mut sig = tx.signature();
    match inp.u8() % 9 {
        0 => sig.0[inp.pick(64)] ^= inp.u8() | 1,
        1 => nonce = nonce.wrapping_add(1 + inp.u8() as u64),
        2 => ts = timestamp(inp, now_ms()),
        3 => author.0[inp.pick(32)] ^= inp.u8() | 1,
        4 => {
            op = match op {
                Op::Put { key, .. } => Op::Delete { key },
                Op::Delete { key } => Op::Put {
                    key,
                    value: inp.bytes(32).to_vec(),
                },
            }
        }
        5 => {
            let k = some_key(inp);
            op = match op {
                Op::Put { value, .. } => Op::Put { key: k, value },
                Op::Delete { .. } => Op::Delete { key: k },
            }
        }
        6 => {
            let len = inp.choose(&VALUE_LENS);
            op = Op::Put {
                key: op.key().to_string(),
                value: vec![inp.u8(); len],
            };
        }
        7 => sig = Signature([0; 64]),
        _ => {
            // Re-signed by some key: a valid tx, or refused for its op.
            let kp = key(1 + inp.u8() % 5);
            return Tx::new(&kp, op, nonce, ts).unwrap_or_else(|_| tx.clone());
        }
    }
    forge(author, op, nonce, ts, sig).unwrap_or_else(|| tx.clone())
}

// ---------------------------------------------------------------------------------------
// Decoders
// ---------------------------------------------------------------------------------------

mod decode;
mod files;
mod front;
mod validate;

pub use decode::*;
pub use files::*;
pub use front::*;
pub use validate::*;
