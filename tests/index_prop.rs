//! The index invariant, by property: build random block trees with competing branches,
//! deliver the blocks in random order, and after every step check that the index equals
//! the index folded from genesis over the chosen chain, that the chosen chain is a
//! heaviest one among the blocks that could connect, and that the mempool holds exactly
//! the txs that were submitted or were once canonical and are not on the chain now.

mod common;

use common::*;
use kvchain::chain::{Block, BlockError, BlockHash, Chain, Index, Tx, TxId};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

const KEYS: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Clone)]
struct Case {
    /// Per tx: key index, delete or put, value.
    txs: Vec<(usize, bool, u8)>,
    /// Which txs are submitted to the mempool before any block.
    submitted: Vec<bool>,
    /// Per block: parent choice (among genesis and the blocks before it) and tx mask.
    blocks: Vec<(usize, u16)>,
    /// Sort keys that give the delivery order.
    order: Vec<u32>,
}

fn case() -> impl Strategy<Value = Case> {
    (4usize..14, 1usize..18).prop_flat_map(|(ntx, nblocks)| {
        (
            prop::collection::vec((0..KEYS.len(), any::<bool>(), any::<u8>()), ntx),
            prop::collection::vec(any::<bool>(), ntx),
            prop::collection::vec((any::<usize>(), any::<u16>()), nblocks),
            prop::collection::vec(any::<u32>(), nblocks),
        )
            .prop_map(|(txs, submitted, blocks, order)| Case {
                txs,
                submitted,
                blocks,
                order,
            })
    })
}

struct Built {
    txs: Vec<Tx>,
    blocks: Vec<Block>,
    /// Parent index in `blocks` (None = genesis).
    parents: Vec<Option<usize>>,
}

fn build(case: &Case) -> Built {
    let kp = key(1);
    let txs: Vec<Tx> = case
        .txs
        .iter()
        .enumerate()
        .map(|(i, &(k, is_del, v))| {
            if is_del {
                del(&kp, KEYS[k], i as u64)
            } else {
                put(&kp, KEYS[k], &v.to_string(), i as u64)
            }
        })
        .collect();
    let genesis = params().genesis().header;
    let mut blocks: Vec<Block> = Vec::new();
    let mut parents = Vec::new();
    let mut ancestry: Vec<HashSet<TxId>> = Vec::new();
    for (i, &(sel, mask)) in case.blocks.iter().enumerate() {
        let choice = sel % (i + 1);
        let parent = choice.checked_sub(1);
        let (parent_header, mut seen) = match parent {
            None => (genesis, HashSet::new()),
            Some(p) => (blocks[p].header, ancestry[p].clone()),
        };
        let chosen: Vec<Tx> = txs
            .iter()
            .enumerate()
            .filter(|(j, tx)| mask & (1 << (j % 16)) != 0 && !seen.contains(&tx.id()))
            .map(|(_, tx)| tx.clone())
            .collect();
        seen.extend(chosen.iter().map(Tx::id));
        blocks.push(block_on(&parent_header, chosen, i as u64));
        parents.push(parent);
        ancestry.push(seen);
    }
    Built {
        txs,
        blocks,
        parents,
    }
}

fn check(
    chain: &Chain,
    built: &Built,
    delivered: &HashSet<usize>,
    expected_pool: &HashSet<TxId>,
) -> Result<(), TestCaseError> {
    // The chosen chain links up from genesis.
    let canonical = chain.canonical_blocks();
    let mut prev: BlockHash = chain.params().genesis_hash();
    for (h, b) in canonical.iter().enumerate() {
        prop_assert_eq!(b.header.prev, prev);
        prop_assert_eq!(b.header.height, h as u64 + 1);
        prev = b.hash();
    }
    prop_assert_eq!(prev, chain.tip_hash());
    // Blocks that can connect: delivered, with every ancestor delivered.
    let connectable = |mut i: usize| loop {
        if !delivered.contains(&i) {
            return false;
        }
        match built.parents[i] {
            None => return true,
            Some(p) => i = p,
        }
    };
    let best = (0..built.blocks.len())
        .filter(|&i| connectable(i))
        .map(|i| built.blocks[i].header.height)
        .max()
        .unwrap_or(0);
    prop_assert_eq!(
        chain.height(),
        best,
        "tip is not a heaviest connectable block"
    );
    // The index is the fold of the chosen chain.
    let index = chain.index().read().unwrap().clone();
    let folded = Index::fold(canonical.iter().map(|b| b.as_ref()));
    prop_assert_eq!(&index, &folded);
    // The digest is a function of the versions alone, however the index got them.
    prop_assert_eq!(index.digest(), folded.digest());
    // The tx index agrees with the chain.
    let mut on_chain = HashMap::new();
    for b in &canonical {
        for tx in &b.txs {
            on_chain.insert(tx.id(), b.header.height);
        }
    }
    for tx in &built.txs {
        prop_assert_eq!(chain.tx_height(&tx.id()), on_chain.get(&tx.id()).copied());
    }
    // The mempool holds what was submitted or once canonical, minus what is on the chain.
    let pool: HashSet<TxId> = chain.mempool().ids().into_iter().collect();
    let want: HashSet<TxId> = expected_pool
        .iter()
        .filter(|id| !on_chain.contains_key(id))
        .copied()
        .collect();
    prop_assert_eq!(pool, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn index_equals_fold_of_best_chain_after_every_step(case in case()) {
        let built = build(&case);
        let mut chain = Chain::new(params());
        let mut expected_pool = HashSet::new();
        for (tx, &submit) in built.txs.iter().zip(&case.submitted) {
            if submit {
                chain.submit_tx(tx.clone()).unwrap();
                expected_pool.insert(tx.id());
            }
        }
        let mut order: Vec<usize> = (0..built.blocks.len()).collect();
        order.sort_by_key(|&i| (case.order[i], i));
        let mut delivered = HashSet::new();
        check(&chain, &built, &delivered, &expected_pool)?;
        for i in order {
            match chain.process_block(built.blocks[i].clone()) {
                Ok(_) | Err(BlockError::UnknownParent { .. }) => {}
                Err(e) => prop_assert!(false, "valid block rejected: {e}"),
            }
            delivered.insert(i);
            // Whatever is canonical now may later be orphaned back into the mempool.
            for b in chain.canonical_blocks() {
                expected_pool.extend(b.txs.iter().map(Tx::id));
            }
            check(&chain, &built, &delivered, &expected_pool)?;
        }
    }
}
