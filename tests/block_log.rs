//! Acceptance: "Block log tests: reopen after a clean close gives the same tip and index; a
//! log cut at every byte offset of its last frame reopens to the previous tip without error;
//! a flipped byte in a frame is detected."
//!
//! Also: a log of another network is refused, and the journal, which shares the frame log,
//! recovers from a torn tail the same way. The built chain and helpers are in
//! `support/log_fixture.rs`.

mod common;
#[path = "support/log_fixture.rs"]
mod fixture;

use common::{block_on, params, TEST_BITS};
use fixture::{
    build, dir_with_log, expect_value, log_len, log_path, open, other_files, snapshot, Writer,
};
use kvchain::chain::journal::{Journal, JOURNAL_FILE};
use kvchain::chain::log::{frame, Damage, Recovery, FRAME_HEADER};
use kvchain::chain::{Chain, OpenError, Params, Tx};

// ---------------------------------------------------------------------------------------
// Reopen after a clean close
// ---------------------------------------------------------------------------------------

#[test]
fn reopen_after_clean_close_gives_same_tip_work_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let built = build(dir.path());
    let before = built.snapshots.last().unwrap().clone();
    let full_len = log_len(dir.path());
    assert_eq!(before.height, 5);
    assert_eq!(before.index.version_count(), 10);

    // The same blocks fed to a chain in memory give the same index: the log reproduces
    // the chain, not merely itself.
    let mut memory = Chain::new(params());
    for b in &built.blocks {
        memory.process_block(b.clone()).unwrap();
    }
    assert_eq!(snapshot(&memory), before);

    for round in 0..2 {
        let (chain, rec) = open(dir.path());
        assert_eq!(rec, None, "round {round}");
        let after = snapshot(&chain);
        assert_eq!(after.tip, before.tip);
        assert_eq!(after.height, before.height);
        assert_eq!(after.work, before.work);
        assert_eq!(after.index, before.index);
        assert_eq!(after.canonical, before.canonical);
        expect_value(&chain, "alpha", None);
        expect_value(&chain, "beta", Some(b"5"));
        expect_value(&chain, "gamma", Some("x".repeat(2048).as_bytes()));
        expect_value(&chain, "delta", Some(b""));
        assert_eq!(chain.index().read().unwrap().history("beta").len(), 4);
        // Opening an intact log neither cuts nor appends anything.
        drop(chain);
        assert_eq!(log_len(dir.path()), full_len, "round {round}");
        assert!(other_files(dir.path()).is_empty());
    }

    // A block appended after the reopen is kept by the next one.
    let (mut chain, _) = open(dir.path());
    let next = block_on(
        &chain.tip().block.header,
        vec![Writer::new(3).put("zeta", "7")],
        0,
    );
    chain.process_block(next.clone()).unwrap();
    let grown = snapshot(&chain);
    drop(chain);
    let (chain, rec) = open(dir.path());
    assert_eq!(rec, None);
    assert_eq!(snapshot(&chain), grown);
    assert_eq!(chain.tip_hash(), next.hash());
    expect_value(&chain, "zeta", Some(b"7"));
}

#[test]
fn reopen_after_a_reorg_keeps_the_heavier_branch() {
    let dir = tempfile::tempdir().unwrap();
    let (mut chain, _) = open(dir.path());
    let mut w = Writer::new(1);
    let g = chain.tip().block.header;

    // Main branch a1 - a2 - a3.
    let a1 = block_on(&g, vec![w.put("k", "a1")], 0);
    let a2 = block_on(&a1.header, vec![w.put("k", "a2"), w.put("only-a", "x")], 0);
    let a3 = block_on(&a2.header, vec![w.put("k", "a3")], 0);
    for b in [&a1, &a2, &a3] {
        chain.process_block(b.clone()).unwrap();
    }
    assert_eq!(chain.tip_hash(), a3.hash());

    // A lighter side branch on a1 does not move the tip...
    let b2 = block_on(&a1.header, vec![w.put("k", "b2")], 1);
    let accepted = chain.process_block(b2.clone()).unwrap();
    assert!(accepted.tip.is_none());
    assert_eq!(chain.tip_hash(), a3.hash());

    // ...until it grows heavier: reorg to b4.
    let b3 = block_on(&b2.header, vec![w.put("only-b", "y")], 1);
    chain.process_block(b3.clone()).unwrap();
    assert_eq!(chain.tip_hash(), a3.hash(), "equal work: first seen wins");
    let b4 = block_on(&b3.header, vec![w.put("k", "b4")], 1);
    let accepted = chain.process_block(b4.clone()).unwrap();
    let change = accepted.tip.expect("reorg");
    assert_eq!(change.disconnected.len(), 2);
    assert_eq!(change.connected.len(), 3);
    assert_eq!(chain.tip_hash(), b4.hash());
    let before = snapshot(&chain);
    assert_eq!(before.height, 4);
    drop(chain);

    let (chain, rec) = open(dir.path());
    assert_eq!(rec, None);
    assert_eq!(snapshot(&chain), before);
    assert_eq!(chain.tip_hash(), b4.hash());
    assert_eq!(
        chain
            .canonical_blocks()
            .iter()
            .map(|b| b.hash())
            .collect::<Vec<_>>(),
        vec![a1.hash(), b2.hash(), b3.hash(), b4.hash()]
    );
    // The losing branch was logged too and is still known, just not canonical.
    assert!(chain.block(&a2.hash()).is_some());
    assert!(chain.block(&a3.hash()).is_some());
    assert!(!chain.tree().is_canonical(&a3.hash()));
    expect_value(&chain, "k", Some(b"b4"));
    expect_value(&chain, "only-b", Some(b"y"));
    assert!(chain.index().read().unwrap().latest("only-a").is_none());
    assert_eq!(chain.index().read().unwrap().history("k").len(), 3);

    // The reopened tree still reorgs back if the old branch outgrows the new one.
    let mut chain = chain;
    let a4 = block_on(&a3.header, vec![w.put("k", "a4")], 0);
    let a5 = block_on(&a4.header, vec![], 0);
    chain.process_block(a4).unwrap();
    chain.process_block(a5.clone()).unwrap();
    assert_eq!(chain.tip_hash(), a5.hash());
    let after = snapshot(&chain);
    drop(chain);
    let (chain, _) = open(dir.path());
    assert_eq!(snapshot(&chain), after);
    expect_value(&chain, "k", Some(b"a4"));
    expect_value(&chain, "only-a", Some(b"x"));
}

// ---------------------------------------------------------------------------------------
// Torn tail: the log cut at every byte offset of its last frame
// ---------------------------------------------------------------------------------------

#[test]
fn log_cut_at_every_offset_of_its_last_frame_reopens_to_the_previous_tip() {
    let src = tempfile::tempdir().unwrap();
    let built = build(src.path());
    let full = std::fs::read(log_path(src.path())).unwrap();
    let (start, end) = built.frame(5);
    assert_eq!(end as usize, full.len());
    let previous = &built.snapshots[4];
    assert_eq!(previous.tip, built.blocks[3].hash());

    // A block that is not the lost block 5, to append after the recovery.
    let replacement = block_on(
        &built.blocks[3].header,
        vec![Writer::new(7).put("after-cut", "ok")],
        3,
    );
    assert_ne!(replacement.hash(), built.blocks[4].hash());

    for cut in start..end {
        let dir = dir_with_log(&full[..cut as usize]);
        let (mut chain, rec) = Chain::open(params(), dir.path())
            .unwrap_or_else(|e| panic!("cut at {cut}: open failed: {e}"));
        if cut == start {
            assert_eq!(rec, None, "cut at the frame boundary is a clean log");
            assert!(other_files(dir.path()).is_empty(), "cut at {cut}");
        } else {
            let saved = dir.path().join(format!("blocks.cut-{start}"));
            assert_eq!(
                rec,
                Some(Recovery {
                    offset: start,
                    damage: Damage::TornTail,
                    saved_to: saved.clone(),
                }),
                "cut at {cut} (frame {start}..{end})"
            );
            // Even a torn tail is kept aside, byte for byte, before it is cut.
            assert_eq!(
                std::fs::read(&saved).unwrap(),
                full[start as usize..cut as usize]
            );
            assert_eq!(other_files(dir.path()), vec![saved], "cut at {cut}");
        }
        assert_eq!(&snapshot(&chain), previous, "cut at {cut}");
        assert_eq!(
            log_len(dir.path()),
            start,
            "cut at {cut}: torn bytes removed"
        );

        // The log is usable again: a new block is appended and survives a reopen.
        chain
            .process_block(replacement.clone())
            .unwrap_or_else(|e| panic!("cut at {cut}: append failed: {e}"));
        let grown = snapshot(&chain);
        drop(chain);
        let (chain, rec) = open(dir.path());
        assert_eq!(rec, None, "cut at {cut}: reopen after append");
        assert_eq!(snapshot(&chain), grown, "cut at {cut}");
        assert_eq!(chain.tip_hash(), replacement.hash());
        assert_eq!(chain.height(), 5);
        expect_value(&chain, "after-cut", Some(b"ok"));
    }
}

/// Cuts in earlier frames reopen to the block before the cut frame (no panic, no error),
/// including cuts inside the log header frame, which leave a fresh log.
#[test]
fn log_cut_anywhere_reopens_to_the_last_whole_block() {
    let src = tempfile::tempdir().unwrap();
    let built = build(src.path());
    let full = std::fs::read(log_path(src.path())).unwrap();
    for cut in (0..full.len()).step_by(7).chain([1, FRAME_HEADER]) {
        // The whole frames before the cut: ends[k] <= cut.
        let whole = built.ends.iter().filter(|&&e| e <= cut as u64).count();
        let dir = dir_with_log(&full[..cut]);
        let (chain, rec) = Chain::open(params(), dir.path())
            .unwrap_or_else(|e| panic!("cut at {cut}: open failed: {e}"));
        let on_boundary = cut == 0 || built.ends.contains(&(cut as u64));
        assert_eq!(rec.is_none(), on_boundary, "cut at {cut}: {rec:?}");
        if let Some(rec) = &rec {
            assert_eq!(rec.damage, Damage::TornTail, "cut at {cut}");
        }
        let height = whole.saturating_sub(1);
        assert_eq!(&snapshot(&chain), &built.snapshots[height], "cut at {cut}");
        drop(chain);
        // A log cut inside its header frame is started afresh with a new header.
        let expected_len = if whole == 0 {
            built.ends[0]
        } else {
            built.ends[whole - 1]
        };
        assert_eq!(log_len(dir.path()), expected_len, "cut at {cut}");
    }
}

// ---------------------------------------------------------------------------------------
// Flipped bytes
// ---------------------------------------------------------------------------------------

#[test]
fn flipped_byte_in_a_middle_frame_is_detected_and_the_rest_saved() {
    let src = tempfile::tempdir().unwrap();
    let built = build(src.path());
    let full = std::fs::read(log_path(src.path())).unwrap();
    // Block 2 of 5: three intact frames follow it.
    let (start, end) = built.frame(2);
    let expected = &built.snapshots[1];

    // Every byte of the checksum and the payload of block 2's frame.
    for pos in start + 4..end {
        let mut bytes = full.clone();
        bytes[pos as usize] ^= 0x20;
        let dir = dir_with_log(&bytes);
        let (chain, rec) = Chain::open(params(), dir.path())
            .unwrap_or_else(|e| panic!("flip at {pos}: open failed: {e}"));
        let rec = rec.unwrap_or_else(|| panic!("flip at {pos} not detected"));
        assert_eq!(rec.offset, start, "flip at {pos}");
        assert_eq!(rec.damage, Damage::Corrupt, "flip at {pos}");
        // The chain ends just before the damaged block.
        assert_eq!(chain.height(), built.blocks[1].header.height - 1);
        assert_eq!(&snapshot(&chain), expected, "flip at {pos}");
        // Everything from the damaged frame on is kept aside, byte for byte.
        let saved = rec.saved_to;
        assert_eq!(saved.parent(), Some(dir.path()));
        assert_eq!(other_files(dir.path()), vec![saved.clone()]);
        let kept = std::fs::read(&saved).expect("side file exists");
        assert_eq!(
            kept.len() as u64,
            full.len() as u64 - start,
            "flip at {pos}"
        );
        assert_eq!(kept, bytes[start as usize..], "flip at {pos}");
        assert_eq!(log_len(dir.path()), start, "flip at {pos}: log cut");
        drop(chain);

        // The cut is durable: the next open finds a clean log with the same chain.
        let (chain, rec) = open(dir.path());
        assert_eq!(rec, None, "flip at {pos}: second open");
        assert_eq!(&snapshot(&chain), expected);
    }
}

#[test]
fn flipped_byte_in_the_last_frame_is_detected() {
    let src = tempfile::tempdir().unwrap();
    let built = build(src.path());
    let full = std::fs::read(log_path(src.path())).unwrap();
    let (start, end) = built.frame(5);
    for pos in start + 4..end {
        let mut bytes = full.clone();
        bytes[pos as usize] ^= 0x01;
        let dir = dir_with_log(&bytes);
        let (chain, rec) = Chain::open(params(), dir.path())
            .unwrap_or_else(|e| panic!("flip at {pos}: open failed: {e}"));
        let rec = rec.unwrap_or_else(|| panic!("flip at {pos} in the last frame not detected"));
        assert_eq!(rec.offset, start, "flip at {pos}");
        assert_eq!(&snapshot(&chain), &built.snapshots[4], "flip at {pos}");
        assert_eq!(log_len(dir.path()), start);
        assert!(chain.tree().get(&built.blocks[4].hash()).is_none());
    }
}

/// A flipped bit in the length field of a middle frame must not make the intact frames
/// after it vanish without a copy: whatever the length now claims, the open detects the
/// damage, ends the chain before that block, and saves the bytes it cut.
#[test]
fn flipped_length_of_a_middle_frame_is_detected_and_the_rest_saved() {
    let src = tempfile::tempdir().unwrap();
    let built = build(src.path());
    let full = std::fs::read(log_path(src.path())).unwrap();
    let (start, _) = built.frame(3);
    let mut failures = Vec::new();
    for byte in 0..4u64 {
        for bit in 0..8 {
            let pos = start + byte;
            let mut bytes = full.clone();
            bytes[pos as usize] ^= 1 << bit;
            let dir = dir_with_log(&bytes);
            let (chain, rec) = Chain::open(params(), dir.path())
                .unwrap_or_else(|e| panic!("flip at {pos} bit {bit}: open failed: {e}"));
            let claimed = u32::from_le_bytes(
                bytes[pos as usize - byte as usize..][..4]
                    .try_into()
                    .unwrap(),
            );
            let Some(rec) = rec else {
                failures.push(format!(
                    "length byte {byte} bit {bit} (claims {claimed}): not detected"
                ));
                continue;
            };
            assert_eq!(rec.offset, start);
            assert_eq!(&snapshot(&chain), &built.snapshots[2]);
            // Whatever the damage looks like, the cut bytes are kept aside.
            assert_eq!(
                std::fs::read(&rec.saved_to).unwrap(),
                bytes[start as usize..]
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Another network's log
// ---------------------------------------------------------------------------------------

#[test]
fn log_of_another_network_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let built = build(dir.path());
    let bytes = std::fs::read(log_path(dir.path())).unwrap();

    for other in [
        Params::new("other", TEST_BITS).unwrap(),
        Params::new("test", TEST_BITS + 1).unwrap(),
    ] {
        match Chain::open(other.clone(), dir.path()) {
            Err(OpenError::WrongNetwork { found, expected }) => {
                assert_eq!(found, params().genesis_hash().to_hex());
                assert_eq!(expected, other.genesis_hash().to_hex());
            }
            Err(e) => panic!("expected WrongNetwork, got {e}"),
            Ok(_) => panic!("opened the log of another network as {other:?}"),
        }
        // Refusing it changed nothing on disk.
        assert_eq!(std::fs::read(log_path(dir.path())).unwrap(), bytes);
        assert!(other_files(dir.path()).is_empty());
    }

    // The right network still opens it.
    let (chain, rec) = open(dir.path());
    assert_eq!(rec, None);
    assert_eq!(&snapshot(&chain), built.snapshots.last().unwrap());

    // A log whose first frame is intact but is not a log header is refused too.
    let dir = dir_with_log(&frame(b"not a log header"));
    match Chain::open(params(), dir.path()) {
        Err(OpenError::WrongNetwork { found, expected }) => {
            assert_eq!(found, "unreadable");
            assert_eq!(expected, params().genesis_hash().to_hex());
        }
        Err(e) => panic!("expected WrongNetwork, got {e}"),
        Ok(_) => panic!("opened a log without a header"),
    }
}

// ---------------------------------------------------------------------------------------
// The journal shares the frame log: same torn-tail recovery
// ---------------------------------------------------------------------------------------

#[test]
fn journal_cut_at_every_offset_of_its_last_record_keeps_the_earlier_ones() {
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join(JOURNAL_FILE);
    let mut w = Writer::new(4);
    let txs: Vec<Tx> = vec![w.put("j1", "a"), w.put("j2", "b"), w.del("j3")];
    let late = w.put("j4", "d");

    let (mut journal, pending) = Journal::open(src.path()).unwrap();
    assert!(pending.is_empty());
    journal.add(&txs[0]).unwrap();
    journal.add(&txs[1]).unwrap();
    let before_add = std::fs::metadata(&path).unwrap().len();
    journal.add(&txs[2]).unwrap();
    let before_done = std::fs::metadata(&path).unwrap().len();
    journal.done(&txs[0].id()).unwrap();
    drop(journal);
    let full = std::fs::read(&path).unwrap();
    assert!(before_add < before_done && (before_done as usize) < full.len());

    // (cut range, what the journal must hold after the cut)
    let cases = [
        // A torn "added" record: that write was never acknowledged, the others stay.
        (
            before_add..before_done,
            vec![txs[0].clone(), txs[1].clone()],
        ),
        // A torn "done" record: the write stays pending (kept rather than lost).
        (before_done..full.len() as u64, txs.clone()),
    ];
    for (range, want) in cases {
        for cut in range {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(JOURNAL_FILE), &full[..cut as usize]).unwrap();
            let (mut journal, pending) = Journal::open(dir.path())
                .unwrap_or_else(|e| panic!("cut at {cut}: open failed: {e}"));
            assert_eq!(pending, want, "cut at {cut}");
            assert_eq!(journal.len(), want.len());
            // Still writable, and the new record survives a reopen.
            journal.add(&late).unwrap();
            drop(journal);
            let (_, pending) = Journal::open(dir.path()).unwrap();
            let mut want_after = want.clone();
            want_after.push(late.clone());
            assert_eq!(pending, want_after, "cut at {cut}: after append");
        }
    }

    // The intact journal: the done record is honoured.
    let (_, pending) = Journal::open(src.path()).unwrap();
    assert_eq!(pending, vec![txs[1].clone(), txs[2].clone()]);
}
