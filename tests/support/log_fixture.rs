//! Shared setup of the block log tests (`block_log.rs`): a chain of five blocks written to
//! a data dir with the log length and a snapshot after each block, and helpers to open a
//! dir, read the log's length, write a log of given bytes, list the other files and hand
//! out signed writes.
//!
//! Included as `#[path = "support/log_fixture.rs"] mod fixture;` next to `mod common;`.
#![allow(dead_code)]

use crate::common::{block_on, del, key, params, put};
use kvchain::chain::log::{Recovery, FRAME_HEADER};
use kvchain::chain::state::BLOCK_LOG;
use kvchain::chain::{Block, BlockHash, Chain, Index, Keypair, Tx};
use std::path::{Path, PathBuf};

pub fn open(dir: &Path) -> (Chain, Option<Recovery>) {
    Chain::open(params(), dir).expect("chain opens")
}

pub fn log_path(dir: &Path) -> PathBuf {
    dir.join(BLOCK_LOG)
}

pub fn log_len(dir: &Path) -> u64 {
    std::fs::metadata(log_path(dir)).expect("log exists").len()
}

/// Everything a reopen must reproduce.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub tip: BlockHash,
    pub height: u64,
    pub work: u128,
    pub index: Index,
    pub canonical: Vec<BlockHash>,
}

pub fn snapshot(chain: &Chain) -> Snapshot {
    Snapshot {
        tip: chain.tip_hash(),
        height: chain.height(),
        work: chain.total_work(),
        index: chain.index().read().unwrap().clone(),
        canonical: chain.canonical_blocks().iter().map(|b| b.hash()).collect(),
    }
}

/// Files in `dir` other than the block log.
pub fn other_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != BLOCK_LOG)
        .collect();
    v.sort();
    v
}

/// A fresh data dir whose block log holds exactly `bytes`.
pub fn dir_with_log(bytes: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(log_path(dir.path()), bytes).unwrap();
    dir
}

/// Hands out signed writes with fresh nonces.
pub struct Writer {
    kp: Keypair,
    nonce: u64,
}

impl Writer {
    pub fn new(seed: u8) -> Writer {
        Writer {
            kp: key(seed),
            nonce: 0,
        }
    }
    pub fn put(&mut self, k: &str, v: &str) -> Tx {
        self.nonce += 1;
        put(&self.kp, k, v, self.nonce)
    }
    pub fn del(&mut self, k: &str) -> Tx {
        self.nonce += 1;
        del(&self.kp, k, self.nonce)
    }
}

/// A chain written to `dir`: the log length after the log header and after each block,
/// the blocks, and a snapshot of the chain after each block (index 0: genesis only).
pub struct Built {
    pub blocks: Vec<Block>,
    /// `ends[0]` is the end of the log header frame, `ends[i]` the end of block i's frame.
    pub ends: Vec<u64>,
    pub snapshots: Vec<Snapshot>,
}

impl Built {
    /// Byte range `[start, end)` of block `i`'s frame (1-based like heights).
    pub fn frame(&self, i: usize) -> (u64, u64) {
        (self.ends[i - 1], self.ends[i])
    }
}

/// Five blocks of puts and deletes over a few keys, one with a 2 KiB value.
pub fn build(dir: &Path) -> Built {
    let (mut chain, rec) = open(dir);
    assert!(rec.is_none());
    assert_eq!(chain.height(), 0);
    let mut a = Writer::new(1);
    let mut b = Writer::new(2);
    let big = "x".repeat(2048);
    let batches = vec![
        vec![a.put("alpha", "1"), b.put("beta", "2")],
        vec![a.put("alpha", "3"), b.del("beta")],
        vec![a.put("gamma", &big), b.put("beta", "4"), a.put("delta", "")],
        vec![a.del("alpha"), b.put("beta", "5")],
        vec![b.put("epsilon", "6")],
    ];
    let mut ends = vec![log_len(dir)];
    let mut snapshots = vec![snapshot(&chain)];
    let mut blocks = Vec::new();
    for txs in batches {
        let block = block_on(&chain.tip().block.header, txs, 0);
        let accepted = chain.process_block(block.clone()).expect("valid block");
        assert!(accepted.tip.is_some(), "block extends the tip");
        assert_eq!(chain.tip_hash(), block.hash());
        ends.push(log_len(dir));
        snapshots.push(snapshot(&chain));
        blocks.push(block);
    }
    // Each append grew the log by one frame.
    for w in ends.windows(2) {
        assert!(w[1] > w[0] + FRAME_HEADER as u64, "{ends:?}");
    }
    Built {
        blocks,
        ends,
        snapshots,
    }
}

pub fn expect_value(chain: &Chain, k: &str, want: Option<&[u8]>) {
    let index = chain.index();
    let index = index.read().unwrap();
    let latest = index
        .latest(k)
        .unwrap_or_else(|| panic!("{k} has a version"));
    assert_eq!(latest.value.as_deref(), want, "latest value of {k}");
}
