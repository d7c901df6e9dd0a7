//! Mutated copies of an honest block, in the style of Bitcoin Core's "mutated blocks are
//! never cached as invalid": each copy keeps the real header (so the real proof of work
//! and hash) with a changed body. Each is refused as a body mismatch, the hash is not
//! remembered as invalid, the sender is at fault, and the real block is accepted after.

mod common;
#[path = "support/mutations.rs"]
mod mutations;

use common::*;
use kvchain::chain::limits::{MAX_BLOCK_BYTES, MAX_BLOCK_TXS};
use kvchain::chain::{Block, BlockError, Chain};
use mutations::mutations;

fn honest_chain() -> (Chain, Block) {
    let mut chain = Chain::new(params());
    extend(&mut chain, vec![put(&key(1), "k", "v0", 0)]);
    let tip = chain.tip().block.header;
    let txs = (0..4)
        .map(|i| put(&key(2), &format!("k{i}"), "v", i))
        .collect();
    let real = block_on(&tip, txs, 0);
    (chain, real)
}

#[test]
fn every_body_mutation_is_refused_and_the_real_block_is_still_accepted() {
    let (mut chain, real) = honest_chain();
    let tip = chain.tip_hash();
    for (what, copy) in mutations(&real) {
        assert_eq!(
            copy.hash(),
            real.hash(),
            "{what}: the copy keeps the header"
        );
        let err = chain.process_block(copy).expect_err(what);
        assert_eq!(err, BlockError::BodyMismatch, "{what}");
        assert!(err.sender_at_fault(), "{what}: the sender made it up");
        assert!(!err.is_permanent(), "{what}");
        assert!(!chain.tree().is_invalid(&real.hash()), "{what}");
        assert_eq!(chain.tip_hash(), tip, "{what}: tip moved");
        assert_eq!(chain.tree().orphan_count(), 0, "{what}: held");
    }
    chain.process_block(real.clone()).unwrap();
    assert_eq!(chain.tip_hash(), real.hash());
}

#[test]
fn a_mutated_copy_of_a_block_with_an_unknown_parent_is_not_held() {
    let (mut chain, real) = honest_chain();
    let txs = (0..4)
        .map(|i| put(&key(4), &format!("c{i}"), "1", i))
        .collect();
    let child = block_on(&real.header, txs, 0);
    for (what, copy) in mutations(&child) {
        let err = chain.process_block(copy).expect_err(what);
        assert_eq!(err, BlockError::BodyMismatch, "{what}");
        assert_eq!(chain.tree().orphan_count(), 0, "{what}");
    }
    // The real child is held, and connects when its parent comes.
    assert!(matches!(
        chain.process_block(child.clone()),
        Err(BlockError::UnknownParent { .. })
    ));
    chain.process_block(real).unwrap();
    assert_eq!(chain.tip_hash(), child.hash());
}

#[test]
fn who_is_to_blame_for_each_rejection() {
    use kvchain::chain::Hash;
    let h = Hash::digest(b"x");
    let innocent = [
        BlockError::AlreadyKnown(h),
        BlockError::UnknownParent { parent: h },
        BlockError::TimeTooNew { time: 2, max: 1 },
        BlockError::Storage("disk full".into()),
    ];
    for e in innocent {
        assert!(!e.sender_at_fault(), "{e}");
        assert!(!e.is_permanent(), "{e}");
    }
    let guilty = [
        BlockError::KnownInvalid(h),
        BlockError::BadProofOfWork { hash: h, bits: 8 },
        BlockError::WrongBits { got: 1, want: 2 },
        BlockError::BadVersion(9),
        BlockError::InvalidParent(h),
        BlockError::WrongHeight { got: 1, want: 2 },
        BlockError::BodyMismatch,
        BlockError::DuplicateTx(h),
        BlockError::TxAlreadyInChain(h),
        BlockError::BadSignature(h),
        BlockError::TimeTooOld { time: 1, median: 2 },
        BlockError::TooManyTxs(MAX_BLOCK_TXS + 1),
        BlockError::TooLarge(MAX_BLOCK_BYTES + 1),
    ];
    for e in guilty {
        assert!(e.sender_at_fault(), "{e}");
    }
}
