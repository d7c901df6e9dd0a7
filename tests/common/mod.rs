//! Builders shared by the integration tests: keys, signed writes and solved blocks.
#![allow(dead_code)]

use kvchain::chain::block::merkle_root;
use kvchain::chain::{pow, Block, BlockHash, Chain, Header, Keypair, Op, Params, Tx};

/// Low difficulty so that tests mine instantly.
pub const TEST_BITS: u32 = 4;

/// Parameters of a test network.
pub fn params() -> Params {
    Params::new("test", TEST_BITS).expect("valid test params")
}

/// A deterministic key.
pub fn key(seed: u8) -> Keypair {
    Keypair::from_seed([seed; 32])
}

/// A signed put.
pub fn put(kp: &Keypair, key: &str, value: &str, nonce: u64) -> Tx {
    let op = Op::Put {
        key: key.into(),
        value: value.as_bytes().to_vec(),
    };
    Tx::new(kp, op, nonce, 1_000 + nonce).expect("valid tx")
}

/// A signed delete.
pub fn del(kp: &Keypair, key: &str, nonce: u64) -> Tx {
    Tx::new(kp, Op::Delete { key: key.into() }, nonce, 1_000 + nonce).expect("valid tx")
}

/// An unsolved header on `parent` (height, prev, merkle, time, bits filled in).
pub fn header_on(parent: &Header, txs: &[Tx], time: u64) -> Header {
    Header {
        version: 1,
        height: parent.height + 1,
        prev: parent.hash(),
        merkle: merkle_root(txs),
        time,
        bits: parent.bits,
        nonce: 0,
    }
}

/// A valid block on `parent` holding `txs`, `spacing` ms after it. `salt` makes sibling
/// blocks with the same txs differ.
pub fn block_on(parent: &Header, txs: Vec<Tx>, salt: u64) -> Block {
    let mut header = header_on(parent, &txs, parent.time + 1_000 + salt);
    header.nonce = salt << 32;
    Block {
        header: pow::solve(header),
        txs,
    }
}

/// Solves a header whose fields the caller has set.
pub fn solved(header: Header, txs: Vec<Tx>) -> Block {
    Block {
        header: pow::solve(header),
        txs,
    }
}

/// The header of a block the chain knows.
pub fn header_of(chain: &Chain, hash: &BlockHash) -> Header {
    chain.block(hash).expect("known block").header
}

/// Extends the chain's tip with a block holding `txs` and returns its hash.
pub fn extend(chain: &mut Chain, txs: Vec<Tx>) -> BlockHash {
    let parent = chain.tip().block.header;
    let b = block_on(&parent, txs, 0);
    let h = b.hash();
    chain.process_block(b).expect("valid block");
    h
}
