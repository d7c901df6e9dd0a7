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
//! Included by `tests/fuzz_targets.rs` next to `mod common;` and `mod harness;`.
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

pub fn tx_decode(data: &[u8]) -> String {
    let (r, u) = measure(|| codec::decode::<Tx>(data, MAX_MESSAGE_BYTES));
    check_usage("Tx", data, u, MAX_MESSAGE_BYTES);
    let Ok(tx) = r else {
        return label("decode", &r);
    };
    let back: Tx = codec::decode(&codec::encode(&tx), MAX_MESSAGE_BYTES).expect("re-decodes");
    assert_eq!(back, tx);
    assert_eq!(back.id(), tx.id());
    // A decoded tx passed the op rules; the signature may still be bad.
    check_op(tx.op()).expect("a decoded tx has a valid op");
    let sig = tx.verify_signature();
    let _ = check_timestamp(tx.timestamp(), now_ms());
    label("tx", &sig)
}

pub fn block_decode(data: &[u8]) -> String {
    let (header, u) = measure(|| codec::decode::<Header>(data, MAX_MESSAGE_BYTES));
    check_usage("Header", data, u, MAX_MESSAGE_BYTES);
    if let Ok(h) = &header {
        let back: Header = codec::decode(&codec::encode(h), MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(&back, h);
        assert_eq!(Header::from_bytes(&h.to_bytes()), *h);
    }
    let (r, u) = measure(|| codec::decode::<Block>(data, MAX_MESSAGE_BYTES));
    check_usage("Block", data, u, MAX_MESSAGE_BYTES);
    let Ok(block) = r else {
        return format!("{}/{}", label("header", &header), label("block", &r));
    };
    let back: Block = codec::decode(&codec::encode(&block), MAX_MESSAGE_BYTES).unwrap();
    assert_eq!(back, block);
    assert_eq!(back.hash(), block.hash());
    let _ = block.size();
    let f = fixture();
    let rules = check_standalone(&block, &f.params, Some(now_ms()));
    label("standalone", &rules)
}

pub fn gossip_seeds() -> Vec<Vec<u8>> {
    let f = fixture();
    let mut out = vec![];
    for tx in f.spare.iter().take(3).chain(&f.c.txs) {
        out.push([vec![0], codec::encode(tx)].concat());
    }
    for b in [&f.a, &f.b, &f.c] {
        out.push([vec![1], codec::encode(b)].concat());
    }
    out.push([vec![2], codec::encode(&f.c)].concat());
    out
}

/// As the network service decodes gossip (`on_gossip`: by topic, with
/// `MAX_MESSAGE_BYTES`) and the node judges it (`judge_tx`, `judge_block`).
pub fn gossip(data: &[u8]) -> String {
    let mut inp = Input::new(data);
    let topic = inp.u8() % 3;
    let body = inp.rest();
    match topic {
        0 => {
            let (r, u) = measure(|| codec::decode::<Tx>(body, MAX_MESSAGE_BYTES));
            check_usage("gossip Tx", body, u, MAX_MESSAGE_BYTES);
            let Ok(tx) = r else {
                return label("tx", &r);
            };
            if let Err(e) = check_timestamp(tx.timestamp(), now_ms()) {
                return label("tx:clock", &Err::<(), _>(e));
            }
            let mut chain = base_chain();
            let id = tx.id();
            let r = chain.submit_tx(tx);
            if let Ok(true) = r {
                assert!(chain.mempool().contains(&id));
            }
            label("submit", &r)
        }
        1 => {
            let (r, u) = measure(|| codec::decode::<Block>(body, MAX_MESSAGE_BYTES));
            check_usage("gossip Block", body, u, MAX_MESSAGE_BYTES);
            let Ok(block) = r else {
                return label("block", &r);
            };
            let mut chain = base_chain();
            judge(&mut chain, block, Admission::Gossip)
        }
        _ => "unknown topic".into(),
    }
}

/// Processes `block`, checks what an error must leave alone, and labels the result.
fn judge(chain: &mut Chain, block: Block, admission: Admission) -> String {
    let tip = chain.tip_hash();
    let height = chain.height();
    let hash = block.hash();
    let r = chain.process_block_as(block, admission);
    match &r {
        Ok(acc) => {
            assert!(
                acc.blocks.contains(&hash) || acc.blocks.is_empty() || chain.block(&hash).is_some()
            );
            assert!(
                chain.block(&hash).is_some(),
                "an accepted block is in the tree"
            );
        }
        Err(e) => {
            assert_eq!(chain.tip_hash(), tip, "a refused block moved the tip: {e}");
            assert_eq!(chain.height(), height);
            if *e == BlockError::BodyMismatch {
                assert!(
                    !chain.tree().is_invalid(&hash),
                    "a mutated copy was remembered as invalid"
                );
            }
        }
    }
    label("block", &r)
}

fn sync_requests() -> Vec<SyncRequest> {
    let f = fixture();
    vec![
        SyncRequest::Status,
        SyncRequest::Blocks {
            locator: vec![f.b.hash(), f.a.hash(), f.params.genesis_hash()],
            max: MAX_SYNC_BLOCKS,
        },
        SyncRequest::Blocks {
            locator: (0..MAX_LOCATOR as u8)
                .map(|i| BlockHash::digest(&[i]))
                .collect(),
            max: u32::MAX,
        },
        SyncRequest::Block(f.c.hash()),
    ]
}

fn sync_responses() -> Vec<SyncResponse> {
    let f = fixture();
    vec![
        SyncResponse::Status(ChainStatus {
            genesis: f.params.genesis_hash(),
            tip: f.b.hash(),
            height: 2,
            total_work: 12345u128.to_be_bytes(),
        }),
        SyncResponse::Blocks(vec![f.a.clone(), f.b.clone(), f.c.clone()]),
        SyncResponse::Blocks(vec![]),
        SyncResponse::Block(Some(f.c.clone())),
        SyncResponse::Block(None),
    ]
}

pub fn sync_request_seeds() -> Vec<Vec<u8>> {
    sync_requests().iter().map(codec::encode).collect()
}

pub fn sync_response_seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = sync_responses().iter().map(codec::encode).collect();
    out.push(codec::encode(&SyncResponse::Blocks(vec![
        sample_block();
        3
    ])));
    out
}

pub fn sync_request(data: &[u8]) -> String {
    let (r, u) = measure(|| codec::decode::<SyncRequest>(data, MAX_REQUEST_BYTES));
    check_usage("SyncRequest", data, u, MAX_REQUEST_BYTES);
    if let Ok(req) = &r {
        if let SyncRequest::Blocks { locator, .. } = req {
            assert!(locator.len() <= MAX_LOCATOR);
        }
        let back: SyncRequest = codec::decode(&codec::encode(req), MAX_REQUEST_BYTES).unwrap();
        assert_eq!(&back, req);
        return match req {
            SyncRequest::Status => "status".into(),
            SyncRequest::Blocks { .. } => "blocks".into(),
            SyncRequest::Block(_) => "block".into(),
        };
    }
    label("request", &r)
}

pub fn sync_response(data: &[u8]) -> String {
    let (r, u) = measure(|| codec::decode::<SyncResponse>(data, MAX_RESPONSE_BYTES));
    check_usage("SyncResponse", data, u, MAX_RESPONSE_BYTES);
    if let Ok(res) = &r {
        if let SyncResponse::Blocks(blocks) = res {
            assert!(blocks.len() <= MAX_SYNC_BLOCKS as usize);
        }
        let back: SyncResponse = codec::decode(&codec::encode(res), MAX_RESPONSE_BYTES).unwrap();
        assert_eq!(&back, res);
        return match res {
            SyncResponse::Status(_) => "status".into(),
            SyncResponse::Blocks(b) => format!("blocks:{}", b.len().min(4)),
            SyncResponse::Block(b) => format!("block:{}", b.is_some()),
        };
    }
    label("response", &r)
}

/// A stream that hands out at most `chunk` bytes a read, may answer `Pending` every other
/// poll (waking itself), and may fail at `fail_at`.
struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    chunk: usize,
    pause: bool,
    paused: bool,
    fail_at: Option<usize>,
}

impl futures::AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.pause {
            self.paused = !self.paused;
            if self.paused {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        if self.fail_at.is_some_and(|at| self.pos >= at) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, "cut")));
        }
        let n = self.chunk.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Poll::Ready(Ok(n))
    }
}

pub fn sync_frame_seeds() -> Vec<Vec<u8>> {
    let mut out = vec![];
    for req in sync_requests() {
        let mut buf = futures::io::Cursor::new(Vec::new());
        wait(write_frame(&mut buf, &codec::encode(&req))).unwrap();
        out.push([vec![0, 255], buf.into_inner()].concat());
    }
    for res in sync_responses() {
        let mut buf = futures::io::Cursor::new(Vec::new());
        wait(write_frame(&mut buf, &codec::encode(&res))).unwrap();
        out.push([vec![1, 7], buf.into_inner()].concat());
    }
    // A length prefix claiming the whole limit, with little behind it.
    out.push(
        [
            vec![1, 255],
            (MAX_RESPONSE_BYTES as u32).to_le_bytes().to_vec(),
            vec![0x83; 8],
        ]
        .concat(),
    );
    out
}

pub fn sync_frame(data: &[u8]) -> String {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    let chunk = 1 + inp.u8() as usize;
    let stream = inp.rest();
    let mut io = Chunked {
        data: stream,
        pos: 0,
        chunk,
        pause: mode & 8 != 0,
        paused: false,
        fail_at: (mode & 16 != 0).then_some(chunk * 3),
    };
    let proto = Names::new("0badcafe").sync();
    let mut codec = SyncCodec;
    // What was read can be at most the stream, which a buffer doubling as it grows holds
    // in twice its size; a length prefix alone must not reserve more.
    // (`read_frame` reserves up to 64 KiB for a frame; errors allocate a little.)
    let bound = |decoder: usize| 64 * 1024 + 4096 + 2 * stream.len() + decoder;
    let expect_body = || {
        let len = u32::from_le_bytes(stream.get(..4)?.try_into().ok()?) as usize;
        stream.get(4..4 + len)
    };
    match mode % 3 {
        0 => {
            let (r, u) = measure(|| wait(codec.read_request(&proto, &mut io)));
            check_usage("read_request", stream, u, bound(MAX_REQUEST_BYTES));
            if let Ok(req) = &r {
                let body = expect_body().expect("a request was read from a whole frame");
                assert_eq!(
                    codec::decode::<SyncRequest>(body, MAX_REQUEST_BYTES)
                        .ok()
                        .as_ref(),
                    Some(req)
                );
            }
            label("read_request", &r.map_err(|e| e.kind()))
        }
        1 => {
            let (r, u) = measure(|| wait(codec.read_response(&proto, &mut io)));
            check_usage("read_response", stream, u, bound(2 * stream.len()));
            if let Ok(res) = &r {
                let body = expect_body().expect("a response was read from a whole frame");
                assert_eq!(
                    codec::decode::<SyncResponse>(body, MAX_RESPONSE_BYTES)
                        .ok()
                        .as_ref(),
                    Some(res)
                );
            }
            label("read_response", &r.map_err(|e| e.kind()))
        }
        _ => {
            let limit =
                [0, 1, 100, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES][(mode as usize >> 5) % 5];
            let (r, u) = measure(|| wait(read_frame(&mut io, limit)));
            check_usage("read_frame", stream, u, bound(0));
            if let Ok(frame) = &r {
                assert!(frame.len() <= limit);
                assert_eq!(Some(frame.as_slice()), expect_body());
            }
            label("read_frame", &r.map_err(|e| e.kind()))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Files: the block log, the chain's log and the journal
// ---------------------------------------------------------------------------------------

thread_local! {
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// An empty scratch directory of this thread's, reused from case to case.
fn scratch() -> PathBuf {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let dir = s.get_or_insert_with(|| tempfile::tempdir().expect("tempdir"));
        let path = dir.path().to_path_buf();
        for entry in std::fs::read_dir(&path).expect("scratch dir").flatten() {
            let p = entry.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
        path
    })
}

/// Splits bytes into frames loosely (lengths believed as far as the bytes go, checksums
/// ignored) and frames each payload again with a correct checksum: mutations of the
/// payloads then reach whatever reads the frames.
fn reframe(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut pos = 0;
    while pos + FRAME_HEADER <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let start = pos + FRAME_HEADER;
        let end = start.saturating_add(len).min(bytes.len());
        out.extend_from_slice(&frame(&bytes[start..end]));
        pos = end;
    }
    out.extend_from_slice(&bytes[pos..]);
    out
}

/// The file bytes an input stands for: its first byte says whether to re-checksum.
fn file_bytes(data: &[u8]) -> Vec<u8> {
    match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 => reframe(rest),
        Some((_, rest)) => rest.to_vec(),
        None => vec![],
    }
}

fn frames_file(payloads: &[Vec<u8>]) -> Vec<u8> {
    payloads.iter().flat_map(|p| frame(p)).collect()
}

pub fn block_log_seeds() -> Vec<Vec<u8>> {
    let f = fixture();
    let payloads = vec![
        codec::encode(&f.a),
        vec![],
        codec::encode(&f.b),
        b"x".to_vec(),
    ];
    let good = frames_file(&payloads);
    vec![
        [vec![0], good.clone()].concat(),
        [vec![1], good.clone()].concat(),
        [vec![0], good[..good.len() - 3].to_vec()].concat(),
    ]
}

pub fn block_log_open(data: &[u8]) -> String {
    let bytes = file_bytes(data);
    let dir = scratch();
    let path = dir.join("x.log");
    std::fs::write(&path, &bytes).unwrap();
    let (log, payloads, recovery) = FrameLog::open(&path).expect("open never fails on content");
    let good = recovery.as_ref().map_or(bytes.len(), |r| r.offset as usize);
    assert!(good <= bytes.len());
    assert_eq!(
        frames_file(&payloads),
        bytes[..good],
        "payloads are the intact prefix"
    );
    assert_eq!(log.len(), good as u64);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        good as u64,
        "cut at the prefix"
    );
    if let Some(r) = &recovery {
        assert_eq!(
            std::fs::read(&r.saved_to).unwrap(),
            bytes[good..],
            "cut bytes saved"
        );
    }
    drop(log);
    let (_, again, rec) = FrameLog::open(&path).unwrap();
    assert_eq!(again, payloads, "reopen reads the same frames");
    assert!(rec.is_none(), "reopen finds nothing to cut");
    match recovery {
        None => format!("intact:{}", payloads.len().min(4)),
        Some(r) => format!("{:?}:{}", r.damage, payloads.len().min(4)),
    }
}

fn read_dir_file(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_default()
}

pub fn chain_open_seeds() -> Vec<Vec<u8>> {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (mut chain, _) = Chain::open(f.params.clone(), dir.path()).unwrap();
    for b in [&f.a, &f.b, &f.c] {
        chain.process_block(b.clone()).unwrap();
    }
    // A side branch: a sibling of `c`.
    let sib = block_on(&f.b.header, vec![put(&key(5), "side", "1", 0)], 7);
    chain.process_block(sib).unwrap();
    drop(chain);
    let log = read_dir_file(dir.path(), BLOCK_LOG);
    vec![[vec![1], log.clone()].concat(), [vec![0], log].concat()]
}

pub fn chain_open(data: &[u8]) -> String {
    let f = fixture();
    let bytes = file_bytes(data);
    let dir = scratch().join("chain");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(BLOCK_LOG), &bytes).unwrap();
    let r = Chain::open(f.params.clone(), &dir);
    let Ok((chain, _)) = r else {
        return label("open", &r.map(|_| ()));
    };
    let (tip, height) = (chain.tip_hash(), chain.height());
    drop(chain);
    let (again, rec) = Chain::open(f.params.clone(), &dir).expect("reopens");
    assert!(rec.is_none(), "reopen finds nothing to cut");
    assert_eq!(
        (again.tip_hash(), again.height()),
        (tip, height),
        "reopen: same tip"
    );
    format!("open:ok:{}", height.min(4))
}

pub fn journal_seeds() -> Vec<Vec<u8>> {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path()).unwrap();
    j.add(&f.spare[0]).unwrap();
    j.add(&f.spare[1]).unwrap();
    j.add(&f.spare[2]).unwrap();
    j.done(&f.spare[0].id()).unwrap();
    drop(j);
    let bytes = read_dir_file(dir.path(), JOURNAL_FILE);
    vec![[vec![1], bytes.clone()].concat(), [vec![0], bytes].concat()]
}

pub fn journal_open(data: &[u8]) -> String {
    let bytes = file_bytes(data);
    let dir = scratch();
    std::fs::write(dir.join(JOURNAL_FILE), &bytes).unwrap();
    let r = Journal::open(&dir);
    let Ok((journal, pending)) = r else {
        return label("open", &r.map(|_| ()));
    };
    let ids: Vec<_> = pending.iter().map(Tx::id).collect();
    assert_eq!(journal.len(), pending.len());
    let held: Vec<_> = journal.pending().iter().map(Tx::id).collect();
    assert_eq!(held, ids, "pending() is what open returned");
    drop(journal);
    let (_, again) = Journal::open(&dir).expect("reopens");
    let again: Vec<_> = again.iter().map(Tx::id).collect();
    assert_eq!(again, ids, "reopen: the same pending writes");
    format!("open:ok:{}", ids.len().min(4))
}

// ---------------------------------------------------------------------------------------
// Validators: blocks against a real chain, txs through admission
// ---------------------------------------------------------------------------------------

/// Programs for the validator targets: a few ops each, plus one of every op.
pub fn program_seeds() -> Vec<Vec<u8>> {
    let mut out = vec![vec![], vec![0], vec![2], vec![3]];
    for op in 0..18u8 {
        out.push(vec![0, op, 1, 1, 1, 1, 1, 1, 1, 1]);
        out.push(vec![1, op, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
    out
}

pub fn block_validate(data: &[u8]) -> String {
    let f = fixture();
    let mut inp = Input::new(data);
    let flags = inp.u8();
    let real = f.c.clone();
    let mut block = real.clone();
    let now = now_ms();
    let pool: Vec<Tx> = f.a.txs.iter().chain(&f.b.txs).cloned().collect();
    for _ in 0..12 {
        if inp.is_empty() {
            break;
        }
        let n = block.txs.len();
        let h = &mut block.header;
        match inp.u8() % 18 {
            0 => {
                let any = inp.u32();
                h.version = inp.choose(&[0, 2, u32::MAX, any]);
            }
            1 => {
                let d = inp.u8();
                h.height = match d % 4 {
                    0 => h.height.wrapping_add(1),
                    1 => h.height.wrapping_sub(1),
                    2 => u64::MAX,
                    _ => 0,
                }
            }
            2 => {
                h.prev = match inp.u8() % 5 {
                    0 => f.params.genesis_hash(),
                    1 => f.a.hash(),
                    2 => real.hash(),
                    3 => inp.hash(),
                    _ => f.b.hash(),
                }
            }
            3 => {
                h.time = match inp.u8() % 7 {
                    0 => f.b.header.time,
                    1 => f.a.header.time,
                    2 => 0,
                    3 => u64::MAX,
                    4 => now + 2 * 60 * 1000 + 10_000,
                    5 => now,
                    _ => inp.u64(),
                }
            }
            4 => h.bits = inp.choose(&[0, 3, 5, 64, 65, u32::MAX]),
            5 => h.nonce = inp.u64(),
            6 => h.merkle = inp.hash(),
            7 => {
                if n > 0 {
                    block.txs.remove(inp.pick(n));
                }
            }
            8 => {
                if n > 0 {
                    let t = block.txs[inp.pick(n)].clone();
                    block.txs.push(t);
                }
            }
            9 => {
                if n > 1 {
                    block.txs.swap(inp.pick(n), inp.pick(n));
                }
            }
            10 => {
                let t = pool[inp.pick(pool.len())].clone();
                let at = inp.pick(n + 1);
                block.txs.insert(at, t);
            }
            11 => {
                let t = f.spare[inp.pick(f.spare.len())].clone();
                let at = inp.pick(n + 1);
                block.txs.insert(at, t);
            }
            12 => {
                if n > 0 {
                    let i = inp.pick(n);
                    block.txs[i] = mutate_tx(&block.txs[i], &mut inp);
                }
            }
            13 => {
                let mut bytes = codec::encode(&block);
                let at = inp.pick(bytes.len());
                bytes[at] ^= inp.u8() | 1;
                if let Ok(b) = codec::decode::<Block>(&bytes, MAX_MESSAGE_BYTES) {
                    block = b;
                }
            }
            14 => block.txs.truncate(inp.pick(n + 1)),
            15 => {
                if inp.u8() < 16 {
                    block.txs.extend_from_slice(crowd());
                }
            }
            16 => {
                // A maximal value, several times: over the byte limit.
                for _ in 0..(1 + inp.u8() % 20) {
                    block.txs.push(f.spare[3].clone());
                }
            }
            _ => h.merkle = merkle_root(&block.txs),
        }
    }
    if flags & 1 == 0 {
        block.header.merkle = block.compute_merkle();
    }
    if flags & 2 == 0 && block.header.bits <= 12 {
        block.header = pow::solve(block.header);
    }
    let admission = if flags & 4 != 0 {
        Admission::Gossip
    } else {
        Admission::Any
    };
    let mut chain = base_chain();
    let hash = block.hash();
    let same = block == real;
    let out = judge(&mut chain, block, admission);
    // Whatever came before, the honest block is still accepted.
    match chain.process_block(real.clone()) {
        Ok(_) => {}
        Err(BlockError::AlreadyKnown(h)) if h == hash && (same || out == "block:ok") => {}
        Err(e) => panic!("after {out}, the honest block was refused: {e}"),
    }
    out
}

pub fn tx_admit(data: &[u8]) -> String {
    let f = fixture();
    let mut inp = Input::new(data);
    let limits = MempoolLimits {
        max_txs: 1 + inp.u8() as usize % 8,
        max_bytes: 150 + inp.u16() as usize * 4,
        max_per_author: 1 + inp.u8() as usize % 4,
        expiry: Duration::from_secs(1 + inp.u8() as u64),
    };
    let own = inp.bool().then(|| key(3).public());
    let mut mempool = Mempool::with_limits(limits, own);
    let mut chain = base_chain();
    let now = now_ms();
    let mut made: Vec<Tx> = f.spare.clone();
    let mut readded = false;
    let mut last = String::from("none");
    for _ in 0..16 {
        if inp.is_empty() {
            break;
        }
        let tx = match inp.u8() % 9 {
            0 => {
                let kp = key(1 + inp.u8() % 5);
                let op = if inp.bool() {
                    Op::Delete {
                        key: some_key(&mut inp),
                    }
                } else {
                    let k = some_key(&mut inp);
                    let len = inp.choose(&VALUE_LENS);
                    Op::Put {
                        key: k,
                        value: vec![inp.u8(); len],
                    }
                };
                match Tx::new(&kp, op, inp.u8() as u64, timestamp(&mut inp, now)) {
                    Ok(tx) => Some(tx),
                    Err(e) => {
                        last = label("new", &Err::<(), _>(e));
                        None
                    }
                }
            }
            1 | 2 => {
                let base = made[inp.pick(made.len())].clone();
                Some(mutate_tx(&base, &mut inp))
            }
            3 => {
                let all: Vec<&Tx> = f.a.txs.iter().chain(&f.b.txs).collect();
                Some(all[inp.pick(all.len())].clone())
            }
            4 => {
                let n = inp.u8() as usize;
                codec::decode::<Tx>(inp.bytes(n), MAX_MESSAGE_BYTES).ok()
            }
            5 => {
                let id = made[inp.pick(made.len())].id();
                if let Some(t) = mempool.remove(&id) {
                    assert_eq!(t.id(), id);
                }
                assert!(!mempool.contains(&id));
                None
            }
            6 => {
                let t = made[inp.pick(made.len())].clone();
                mempool.readd(t);
                readded = true;
                None
            }
            7 => {
                let later = Instant::now() + Duration::from_secs(inp.u8() as u64 * 30);
                for id in mempool.expire(later) {
                    assert!(!mempool.contains(&id));
                }
                None
            }
            _ => {
                let (n, bytes) = (inp.u8() as usize % 6, inp.u16() as usize * 8);
                let t = mempool.template(n, bytes);
                assert!(t.len() <= n, "template over its count");
                assert!(
                    t.iter().map(Tx::size).sum::<usize>() <= bytes,
                    "template over its bytes"
                );
                None
            }
        };
        if let Some(tx) = tx {
            let _ = check_timestamp(tx.timestamp(), now);
            let id = tx.id();
            let r = chain.submit_tx(tx.clone());
            if let Ok(true) = r {
                assert!(chain.mempool().contains(&id));
                assert!(tx.verify_signature().is_ok(), "admitted a bad signature");
            }
            last = label("submit", &r);
            let r = mempool.insert(tx.clone());
            if let Ok(true) = r {
                assert!(mempool.contains(&id));
            }
            made.push(tx);
        }
        // The pool's bounds and its byte count.
        let ids = mempool.ids();
        assert_eq!(ids.len(), mempool.len());
        let bytes: usize = ids
            .iter()
            .map(|id| mempool.get(id).expect("listed").size())
            .sum();
        assert_eq!(bytes, mempool.bytes(), "byte count drifted");
        if !readded {
            assert!(mempool.len() <= limits.max_txs, "over the count limit");
            assert!(mempool.bytes() <= limits.max_bytes, "over the byte limit");
        }
    }
    last
}

// ---------------------------------------------------------------------------------------
// The console and the HTTP API
// ---------------------------------------------------------------------------------------

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
}

pub fn console_seeds() -> Vec<Vec<u8>> {
    let h = fixture().c.hash().to_hex();
    [
        "put k v".to_string(),
        "put \"a key\" 'a value'".into(),
        "get \"x\\\"y\"".into(),
        "history k".into(),
        "del k".into(),
        format!("block {h}"),
        "block 12".into(),
        format!("tx {h}"),
        "chain 5".into(),
        "mine auto".into(),
        "connect /ip4/127.0.0.1/tcp/4001".into(),
        "unban 12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA".into(),
        "status\npeers\r\ndigest\nquit\n".into(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

pub fn console_parse(data: &[u8]) -> String {
    use kvchain::console::{parse, tokenize};
    let text = String::from_utf8_lossy(data);
    let mut out = String::from("empty");
    for line in text.lines().chain([text.as_ref()]) {
        let r = parse(line);
        out = match &r {
            Ok(Some(cmd)) => format!("{cmd:?}")
                .chars()
                .take_while(|c| c.is_alphanumeric())
                .collect(),
            Ok(None) => "none".into(),
            Err(e) => e.chars().take(12).collect(),
        };
        if let Ok(words) = tokenize(line) {
            // Quoting every word and splitting again gives the same words.
            let quoted: Vec<String> = words
                .iter()
                .map(|w| format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            assert_eq!(
                tokenize(&quoted.join(" ")).as_ref(),
                Ok(&words),
                "re-quoted {line:?}"
            );
        }
    }
    // The attach socket's line reader on the same bytes.
    RUNTIME.with(|rt| {
        rt.block_on(async {
            let mut reader = tokio::io::BufReader::with_capacity(1 + data.len() % 64, data);
            while let Ok(Some(line)) = kvchain::console::socket::read_line(&mut reader).await {
                assert!(line.len() <= kvchain::console::socket::MAX_LINE);
                assert!(!line.ends_with('\n'));
            }
        })
    });
    out
}

pub fn http_guard_seeds() -> Vec<Vec<u8>> {
    vec![
        b"\x00\x00\x00\x01/kvs/a\x00host\x00localhost:8645".to_vec(),
        b"\x01\x01\x01\x03/kvs/a\x00host\x00127.0.0.1\x00authorization\x00Bearer secret".to_vec(),
        b"\x02\x01\x00\x01http://[::1]:80/x\x00host\x00[::1]".to_vec(),
        b"\x03\x02\x02\x02/\x00host\x00evil.example\x00host\x00localhost".to_vec(),
    ]
}

pub fn http_guard(data: &[u8]) -> String {
    use axum::http::{HeaderName, HeaderValue, Method, Request, Version};
    use kvchain::http::guard::Guard;
    use kvchain::http::{HostAllowlist, Token};
    let mut inp = Input::new(data);
    let hosts = match inp.u8() % 4 {
        0 => HostAllowlist::local("127.0.0.1:8645".parse().unwrap()),
        1 => HostAllowlist::local("[::]:1".parse().unwrap()),
        2 => HostAllowlist::Any,
        _ => HostAllowlist::from_names(&["kv.example", "[fe80::1]", "10.0.0.1:80"]),
    };
    let token = inp.bool().then(|| Token::new("secret"));
    let method = inp.choose(&[
        Method::GET,
        Method::PUT,
        Method::DELETE,
        Method::POST,
        Method::HEAD,
    ]);
    let version = inp.choose(&[Version::HTTP_10, Version::HTTP_11, Version::HTTP_2]);
    // The rest: NUL-separated fields: the URI, then header names and values.
    let rest = inp.rest();
    let mut fields = rest.split(|b| *b == 0);
    let uri = fields.next().unwrap_or_default();
    let mut req = Request::builder().method(method).version(version);
    req = match axum::http::Uri::try_from(uri) {
        Ok(u) => req.uri(u),
        Err(_) => req.uri("/"),
    };
    let mut req = req.body(()).unwrap();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            req.headers_mut().append(n, v);
        }
    }
    for name in rest.split(|b| *b == 0 || *b == b',') {
        let _ = kvchain::http::parse_vhost(&String::from_utf8_lossy(name));
    }
    let guard = Guard::new(hosts, token);
    match guard.check(&req) {
        Ok(()) => "pass".into(),
        Err(e) => {
            assert!(
                [400, 401, 403].contains(&e.status.as_u16()),
                "guard answered {}",
                e.status
            );
            format!("{}:{}", e.status.as_u16(), e.code)
        }
    }
}

struct Api {
    service: hyper_util::service::TowerToHyperService<axum::Router>,
    _node: kvchain::node::Started,
}

thread_local! {
    static API: Api = RUNTIME.with(|rt| {
        rt.block_on(async {
            use kvchain::node::{MiningPolicy, NodeConfig, NodeMetrics};
            let f = fixture();
            let mut config = NodeConfig::new(f.params.clone());
            config.mining = MiningPolicy::Off;
            let started = kvchain::node::start(config).expect("node starts");
            for b in [&f.a, &f.b] {
                started.handle.submit_block(b.clone()).await.unwrap().unwrap();
            }
            let state = kvchain::http::ApiState {
                node: started.handle.clone(),
                net: None,
                registry: std::sync::Arc::new(Default::default()),
                metrics: std::sync::Arc::new(NodeMetrics::default()),
                confirmations: 1,
            };
            let router = kvchain::http::router(state, 4);
            Api {
                service: hyper_util::service::TowerToHyperService::new(router),
                _node: started,
            }
        })
    });
}

pub fn http_api_seeds() -> Vec<Vec<u8>> {
    let f = fixture();
    let tx = f.a.txs[0].id().to_hex();
    let block = f.b.hash().to_hex();
    vec![
        b"\x00\x00a\x00".to_vec(),
        b"\x00\x01a\x00min_conf=1".to_vec(),
        b"\x01\x00new%20key\x00timeout=1ms\x00value".to_vec(),
        b"\x02\x00a\x00wait=included&timeout=5ms".to_vec(),
        format!("\x00\x02{tx}\x00").into_bytes(),
        format!("\x00\x03{block}\x00").into_bytes(),
        b"\x00\x032\x00".to_vec(),
        b"\x00\x04\x00".to_vec(),
        b"\x00\x00%ff%fe\x00".to_vec(),
    ]
}

pub fn http_api(data: &[u8]) -> String {
    use axum::http::{Method, Request, StatusCode};
    use hyper::service::Service;
    let mut inp = Input::new(data);
    let method = inp.choose(&[Method::GET, Method::PUT, Method::DELETE, Method::POST]);
    let route = inp.u8() % 7;
    let rest = inp.rest();
    let mut fields = rest.splitn(3, |b| *b == 0);
    let segment = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let query = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let body = fields.next().unwrap_or_default().to_vec();
    let path = match route {
        0 => format!("/kvs/{segment}"),
        1 => format!("/kvs/{segment}/history"),
        2 => format!("/tx/{segment}"),
        3 => format!("/blocks/{segment}"),
        4 => "/status".into(),
        5 => "/digest".into(),
        _ => format!("/{segment}"),
    };
    if path.starts_with("/watch") {
        return "skipped watch".into();
    }
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let Ok(req) = Request::builder()
        .method(method)
        .uri(uri.as_str())
        .header("host", "localhost")
        .body(axum::body::Body::from(body))
    else {
        return "bad uri".into();
    };
    API.with(|api| {
        RUNTIME.with(|rt| {
            rt.block_on(async {
                // A write may wait for its tx to be included (no miner here): cut it short.
                let call = api.service.call(req);
                let Ok(answer) = tokio::time::timeout(Duration::from_millis(50), call).await else {
                    return "timeout".to_string();
                };
                let res = answer.expect("infallible");
                let status = res.status();
                let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                    .await
                    .expect("body");
                assert_ne!(
                    status,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "{uri}: {bytes:?}"
                );
                if status.is_client_error() || status.is_server_error() {
                    let v: serde_json::Value =
                        serde_json::from_slice(&bytes).expect("errors are JSON");
                    assert!(v.get("code").is_some(), "{uri}: error without code: {v}");
                    return format!("{}:{}", status.as_u16(), v["code"].as_str().unwrap_or(""));
                }
                format!("{}", status.as_u16())
            })
        })
    })
}
