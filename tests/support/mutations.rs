//! Every way to change the body of an honest block while keeping its header (and so its
//! proof of work and hash): the copies a hostile relay might send first.
#![allow(dead_code)]

use kvchain::chain::limits::{MAX_BLOCK_BYTES, MAX_BLOCK_TXS, MAX_VALUE_BYTES};
use kvchain::chain::{Block, Keypair, Op, Tx};

fn signed(kp: &Keypair, op: Op, nonce: u64) -> Tx {
    Tx::new(kp, op, nonce, 1_000 + nonce).expect("valid tx")
}

fn with_txs(real: &Block, txs: Vec<Tx>) -> Block {
    Block {
        header: real.header,
        txs,
    }
}

/// Every way to change the body of `real` while keeping its header.
pub fn mutations(real: &Block) -> Vec<(&'static str, Block)> {
    let txs = &real.txs;
    let mut flipped = txs.clone();
    let mut sig = flipped[1].signature();
    sig.0[7] ^= 0x01;
    flipped[1] = flipped[1].with_signature(sig);
    let mut reordered = txs.clone();
    reordered.swap(0, 3);
    let mut duplicated = txs.clone();
    duplicated.push(txs[2].clone());
    let mut added = txs.clone();
    added.push(signed(
        &Keypair::from_seed([3; 32]),
        Op::Delete {
            key: "extra".into(),
        },
        9,
    ));
    let mut too_many = txs.clone();
    let kp = Keypair::from_seed([9; 32]);
    too_many
        .extend((0..MAX_BLOCK_TXS as u64).map(|i| signed(&kp, Op::Delete { key: "d".into() }, i)));
    let mut too_big = txs.clone();
    let value = vec![0u8; MAX_VALUE_BYTES];
    let big = (0..MAX_BLOCK_BYTES / MAX_VALUE_BYTES + 1).map(|i| {
        let op = Op::Put {
            key: format!("big{i}"),
            value: value.clone(),
        };
        Tx::new(&kp, op, i as u64, 1).unwrap()
    });
    too_big.extend(big);
    vec![
        ("signature flipped", with_txs(real, flipped)),
        ("tx removed", with_txs(real, txs[1..].to_vec())),
        ("tx added", with_txs(real, added)),
        ("txs reordered", with_txs(real, reordered)),
        ("tx duplicated", with_txs(real, duplicated)),
        ("over the tx count", with_txs(real, too_many)),
        ("over the size limit", with_txs(real, too_big)),
        ("emptied", with_txs(real, vec![])),
    ]
}
