//! One test per block rule (`chain/validate.rs`), each asserting its specific error and that the
//! chain is unchanged, in the style of Bitcoin Core's feature_block.

mod common;

use common::*;
use kvchain::chain::limits::{MAX_BLOCK_BYTES, MAX_BLOCK_TXS, MAX_FUTURE_DRIFT_MS};
use kvchain::chain::{now_ms, pow, Block, BlockError, Chain, Op, Signature, Tx};

/// A chain with three blocks, each holding one put.
fn setup() -> Chain {
    let mut chain = Chain::new(params());
    let kp = key(1);
    for i in 0..3 {
        extend(&mut chain, vec![put(&kp, "k", &format!("v{i}"), i)]);
    }
    chain
}

/// Submits `block`, asserts the error and that the tip did not move.
fn assert_rejected(chain: &mut Chain, block: Block, want: BlockError) {
    let tip = chain.tip_hash();
    let got = chain
        .process_block(block)
        .expect_err("block must be rejected");
    assert_eq!(got, want);
    assert_eq!(chain.tip_hash(), tip, "tip moved after a rejected block");
}

fn tip_header(chain: &Chain) -> kvchain::Header {
    chain.tip().block.header
}

#[test]
fn accepts_a_valid_block() {
    let mut chain = setup();
    let b = block_on(&tip_header(&chain), vec![put(&key(2), "x", "y", 0)], 0);
    let hash = b.hash();
    let accepted = chain.process_block(b).unwrap();
    assert_eq!(accepted.blocks, vec![hash]);
    assert_eq!(chain.tip_hash(), hash);
    assert_eq!(chain.height(), 4);
}

#[test]
fn rejects_bad_proof_of_work() {
    let mut chain = setup();
    let mut b = block_on(&tip_header(&chain), vec![], 0);
    while pow::meets(&b.hash(), b.header.bits) {
        b.header.nonce = b.header.nonce.wrapping_add(1);
    }
    let hash = b.hash();
    assert_rejected(
        &mut chain,
        b,
        BlockError::BadProofOfWork {
            hash,
            bits: TEST_BITS,
        },
    );
}

#[test]
fn rejects_wrong_difficulty_bits() {
    let mut chain = setup();
    for bits in [TEST_BITS - 1, TEST_BITS + 1] {
        let mut h = header_on(&tip_header(&chain), &[], tip_header(&chain).time + 1);
        h.bits = bits;
        let b = solved(h, vec![]);
        assert_rejected(
            &mut chain,
            b,
            BlockError::WrongBits {
                got: bits,
                want: TEST_BITS,
            },
        );
    }
}

#[test]
fn holds_a_block_with_an_unknown_parent_until_the_parent_arrives() {
    let mut chain = setup();
    let parent = block_on(&tip_header(&chain), vec![], 0);
    let child = block_on(&parent.header, vec![], 0);
    assert_rejected(
        &mut chain,
        child.clone(),
        BlockError::UnknownParent {
            parent: parent.hash(),
        },
    );
    assert_eq!(chain.tree().orphan_count(), 1);
    let accepted = chain.process_block(parent.clone()).unwrap();
    assert_eq!(accepted.blocks, vec![parent.hash(), child.hash()]);
    assert_eq!(chain.tip_hash(), child.hash());
    assert_eq!(chain.tree().orphan_count(), 0);
}

#[test]
fn rejects_a_wrong_height() {
    let mut chain = setup();
    for height in [3, 5, 0, u64::MAX] {
        let mut h = header_on(&tip_header(&chain), &[], tip_header(&chain).time + 1);
        h.height = height;
        assert_rejected(
            &mut chain,
            solved(h, vec![]),
            BlockError::WrongHeight {
                got: height,
                want: 4,
            },
        );
    }
}

#[test]
fn rejects_a_body_that_does_not_match_its_header_without_remembering_the_hash() {
    let mut chain = setup();
    let txs = vec![put(&key(2), "a", "1", 0), put(&key(2), "b", "2", 1)];
    let real = block_on(&tip_header(&chain), txs.clone(), 0);
    // Right txs, wrong order: the root commits to the order too.
    let swapped = Block {
        header: real.header,
        txs: vec![txs[1].clone(), txs[0].clone()],
    };
    assert_rejected(&mut chain, swapped, BlockError::BodyMismatch);
    assert!(!chain.tree().is_invalid(&real.hash()));
    // The real block, same hash, is still taken.
    chain.process_block(real.clone()).unwrap();
    assert_eq!(chain.tip_hash(), real.hash());
}

#[test]
fn rejects_a_duplicate_tx_in_one_block() {
    let mut chain = setup();
    let tx = put(&key(2), "a", "1", 0);
    let b = block_on(&tip_header(&chain), vec![tx.clone(), tx.clone()], 0);
    assert_rejected(&mut chain, b, BlockError::DuplicateTx(tx.id()));
}

#[test]
fn rejects_a_tx_already_in_the_chain() {
    let mut chain = setup();
    let old = chain.block_at(2).unwrap().txs[0].clone();
    let b = block_on(&tip_header(&chain), vec![old.clone()], 0);
    assert_rejected(&mut chain, b, BlockError::TxAlreadyInChain(old.id()));
}

#[test]
fn rejects_a_tx_already_in_the_side_branch_it_extends() {
    let mut chain = setup();
    let fork = chain.block_at(1).unwrap().header;
    let tx = put(&key(2), "side", "1", 0);
    let s2 = block_on(&fork, vec![tx.clone()], 7);
    chain.process_block(s2.clone()).unwrap();
    // The side branch is lighter, so the tx is not in the canonical chain...
    assert_eq!(chain.tx_height(&tx.id()), None);
    // ...but it is in this block's ancestry.
    let s3 = block_on(&s2.header, vec![tx.clone()], 0);
    assert_rejected(&mut chain, s3, BlockError::TxAlreadyInChain(tx.id()));
    // The same tx is fine on the canonical chain, where it is not an ancestor.
    extend(&mut chain, vec![tx]);
}

#[test]
fn rejects_a_bad_signature() {
    let mut chain = setup();
    let good = put(&key(2), "a", "1", 0);
    let mut sig = good.signature();
    sig.0[10] ^= 0x40;
    let bad = good.with_signature(sig);
    let b = block_on(
        &tip_header(&chain),
        vec![put(&key(3), "b", "2", 0), bad.clone()],
        0,
    );
    assert_rejected(&mut chain, b, BlockError::BadSignature(bad.id()));
    // A signature by another key over the same id is just as bad.
    let stolen = good.with_signature(key(3).sign(&good.id().0));
    let b = block_on(&tip_header(&chain), vec![stolen.clone()], 1);
    assert_rejected(&mut chain, b, BlockError::BadSignature(stolen.id()));
    let zero = good.with_signature(Signature([0; 64]));
    let b = block_on(&tip_header(&chain), vec![zero.clone()], 2);
    assert_rejected(&mut chain, b, BlockError::BadSignature(zero.id()));
}

#[test]
fn rejects_a_forged_signature_on_a_tx_the_mempool_holds() {
    let mut chain = setup();
    let good = put(&key(2), "a", "1", 0);
    chain.submit_tx(good.clone()).unwrap();
    let forged = good.with_signature(key(3).sign(&good.id().0));
    assert_eq!(
        forged.id(),
        good.id(),
        "the id does not cover the signature"
    );
    let b = block_on(&tip_header(&chain), vec![forged.clone()], 0);
    assert_rejected(&mut chain, b, BlockError::BadSignature(good.id()));
    // With the signature that was verified, the pending tx is taken without a second check.
    let b = block_on(&tip_header(&chain), vec![good.clone()], 1);
    chain.process_block(b).unwrap();
    assert!(chain.mempool().is_empty());
}

#[test]
fn rejects_a_timestamp_not_above_the_median_of_the_last_11() {
    let mut chain = Chain::new(params());
    // Twelve blocks 1 s apart: the median of the last 11 is the 7th newest.
    for _ in 0..12 {
        extend(&mut chain, vec![]);
    }
    let times: Vec<u64> = (2..=12)
        .map(|h| chain.block_at(h).unwrap().header.time)
        .collect();
    let median = times[5];
    let parent = tip_header(&chain);
    for time in [median, median - 1, parent.height] {
        let h = header_on(&parent, &[], time);
        assert_rejected(
            &mut chain,
            solved(h, vec![]),
            BlockError::TimeTooOld { time, median },
        );
    }
    // One millisecond above the median is enough, even though it is before the parent.
    let h = header_on(&parent, &[], median + 1);
    assert!(median + 1 < parent.time);
    chain.process_block(solved(h, vec![])).unwrap();
}

#[test]
fn rejects_a_timestamp_too_far_ahead() {
    let mut chain = setup();
    let time = now_ms() + MAX_FUTURE_DRIFT_MS + 60_000;
    let h = header_on(&tip_header(&chain), &[], time);
    let b = solved(h, vec![]);
    let got = chain.process_block(b.clone()).unwrap_err();
    assert!(
        matches!(got, BlockError::TimeTooNew { time: t, .. } if t == time),
        "{got:?}"
    );
    // Not remembered as invalid: once the clock catches up the block may be fine.
    assert!(!chain.tree().is_invalid(&b.hash()));
}

#[test]
fn rejects_too_many_txs() {
    let mut chain = setup();
    let kp = key(2);
    let txs: Vec<Tx> = (0..=MAX_BLOCK_TXS as u64)
        .map(|i| Tx::new(&kp, Op::Delete { key: "k".into() }, i, 0).unwrap())
        .collect();
    let b = block_on(&tip_header(&chain), txs, 0);
    assert_rejected(&mut chain, b, BlockError::TooManyTxs(MAX_BLOCK_TXS + 1));
}

#[test]
fn rejects_too_many_bytes() {
    let mut chain = setup();
    let kp = key(2);
    let big = vec![7u8; kvchain::chain::limits::MAX_VALUE_BYTES];
    let txs: Vec<Tx> = (0..17u64)
        .map(|i| {
            let op = Op::Put {
                key: format!("big{i}"),
                value: big.clone(),
            };
            Tx::new(&kp, op, i, 0).unwrap()
        })
        .collect();
    let b = block_on(&tip_header(&chain), txs, 0);
    let size = b.size();
    assert!(size > MAX_BLOCK_BYTES);
    assert_rejected(&mut chain, b, BlockError::TooLarge(size));
}

#[test]
fn rejects_an_unknown_version() {
    let mut chain = setup();
    let mut h = header_on(&tip_header(&chain), &[], tip_header(&chain).time + 1);
    h.version = 2;
    assert_rejected(&mut chain, solved(h, vec![]), BlockError::BadVersion(2));
}

#[test]
fn remembers_invalid_blocks_and_rejects_their_descendants() {
    let mut chain = setup();
    // Invalid although its body matches its header: a bad signature, committed to.
    let good = put(&key(2), "a", "1", 0);
    let tx = good.with_signature(Signature([3; 64]));
    let bad = block_on(&tip_header(&chain), vec![tx.clone()], 0);
    assert_rejected(&mut chain, bad.clone(), BlockError::BadSignature(tx.id()));
    assert!(chain.tree().is_invalid(&bad.hash()));
    assert_rejected(
        &mut chain,
        bad.clone(),
        BlockError::KnownInvalid(bad.hash()),
    );
    let child = block_on(&bad.header, vec![], 0);
    assert_rejected(&mut chain, child, BlockError::InvalidParent(bad.hash()));
}

#[test]
fn drops_held_descendants_of_a_block_that_turns_out_invalid() {
    let mut chain = setup();
    let parent_tx = put(&key(2), "p", "1", 0);
    let bad_tx = parent_tx.with_signature(Signature([1; 64]));
    let parent = block_on(&tip_header(&chain), vec![bad_tx.clone()], 0);
    let child = block_on(&parent.header, vec![], 0);
    let grandchild = block_on(&child.header, vec![], 0);
    for b in [&grandchild, &child] {
        assert!(matches!(
            chain.process_block(b.clone()),
            Err(BlockError::UnknownParent { .. })
        ));
    }
    assert_rejected(&mut chain, parent, BlockError::BadSignature(bad_tx.id()));
    assert_eq!(chain.tree().orphan_count(), 0);
    assert!(chain.tree().is_invalid(&child.hash()));
    assert!(chain.tree().is_invalid(&grandchild.hash()));
}

#[test]
fn rejects_a_block_it_already_has() {
    let mut chain = setup();
    let tip = chain.tip().block.as_ref().clone();
    assert_rejected(
        &mut chain,
        tip.clone(),
        BlockError::AlreadyKnown(tip.hash()),
    );
    let genesis = chain.params().genesis().clone();
    assert_rejected(
        &mut chain,
        genesis.clone(),
        BlockError::AlreadyKnown(genesis.hash()),
    );
}
