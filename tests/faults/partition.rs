//! Scenario 5: a LAN of network namespaces cut into two halves that both mine, then
//! healed (root only; skipped with the reason otherwise). Half A has a node that mines all
//! the time, so it gathers more work; half B mines only while its writes wait, so it
//! confirms them at depth k on a branch that loses. After the heal B reorgs onto A's
//! chain, its orphaned writes go back to its mempool and are mined again: every write
//! acknowledged as confirmed on either side must be on every node in the end, even though
//! the block that confirmed it is gone. What may change is only where it is (its height).

use crate::faultload::cluster::{Cluster, Endpoints, Options};
use crate::faultload::netns::{self, Lan};
use crate::faultload::workload::{Config, Outcome, Workload};
use crate::faultload::{self, poll_until};
use crate::{confirm_more, finish, took};
use std::time::{Duration, Instant};

/// Writes confirmed by each half's nodes since `since_ms`.
fn confirmed_per_half(load: &Workload, lan: &Lan, since_ms: u64) -> [usize; 2] {
    let mut n = [0, 0];
    for e in load.history.entries() {
        if e.start_ms >= since_ms && matches!(e.outcome, Outcome::Confirmed { .. }) {
            n[lan.half(e.node)] += 1;
        }
    }
    n
}

/// Node `i`'s height and tip.
fn tip(eps: &Endpoints, i: usize) -> (u64, String) {
    let s = eps.status(i).unwrap_or_else(|e| panic!("node {i}: {e:?}"));
    let h = s["height"].as_u64().expect("height");
    (h, s["tip"].as_str().expect("tip").to_string())
}

/// The hash of the block at `height` on node `i`'s chain, if it has one.
fn block_hash(eps: &Endpoints, i: usize, height: u64) -> Option<String> {
    let a = eps
        .request(
            i,
            "GET",
            &format!("/blocks/{height}"),
            b"",
            Duration::from_secs(10),
        )
        .ok()?;
    a.json()["hash"].as_str().map(str::to_string)
}

#[test]
fn s5_partition_both_halves_mine_then_heal() {
    if let Some(why) = netns::unavailable() {
        println!("skipped s5_partition_both_halves_mine_then_heal: {why}");
        return;
    }
    let (started, seed) = (Instant::now(), faultload::seed());
    let lan = Lan::new(4, 2);
    let mut opts = Options::new("s5", 4, 16);
    opts.mine = vec!["always".into()];
    let mut c = Cluster::start(opts, Some(lan));
    let eps = c.endpoints();
    let load = Workload::start(&eps, seed, Config::default());
    confirm_more(&load, 3, Duration::from_secs(30), "before the partition");
    let lan = c.lan().expect("a LAN");
    lan.partition();
    let cut_ms = load.history.now_ms();
    // Apart until each half confirmed writes of its own and A's lead is well past k.
    let a_cut = tip(&eps, 0).0;
    let apart = poll_until(Duration::from_secs(40), || {
        let per_half = confirmed_per_half(&load, c.lan().expect("a LAN"), cut_ms);
        let a_grew = tip(&eps, 0).0.saturating_sub(a_cut);
        (per_half.iter().all(|n| *n >= 4) && a_grew >= 30)
            .then_some(per_half)
            .ok_or(format!(
                "confirmed per half {per_half:?}, A grew {a_grew} blocks"
            ))
    });
    let per_half = apart.unwrap_or_else(|e| panic!("seed {seed}: during the partition: {e}"));
    println!(
        "faultload: confirmed while apart: A {}, B {}",
        per_half[0], per_half[1]
    );
    let (a, b) = (tip(&eps, 0), tip(&eps, 2));
    println!(
        "faultload: before the heal: half A at {} {}, half B at {} {}",
        a.0, a.1, b.0, b.1
    );
    assert_ne!(a.1, b.1, "the halves should have diverged");
    // Each half's block at a height well below both tips: forks inside a half (two
    // miners each) have settled there, and above the cut it is that half's own.
    let deep = a.0.min(b.0).saturating_sub(10).max(a_cut + 2);
    let a_deep = block_hash(&eps, 0, deep).expect("half A's block");
    let b_deep = block_hash(&eps, 2, deep).expect("half B's block");
    assert_ne!(a_deep, b_deep, "the halves share height {deep}");
    let healed_ms = load.history.now_ms();
    lan.heal();
    println!("faultload: healed");
    confirm_more(&load, 2, Duration::from_secs(40), "after the heal");
    let history = load.history.clone();
    let verdict = finish(&mut c, load, seed);
    // Which half's branch survived: the one whose pre-heal tip is on the final chain.
    let a_won = block_hash(&eps, 0, deep).as_deref() == Some(a_deep.as_str());
    let b_won = block_hash(&eps, 0, deep).as_deref() == Some(b_deep.as_str());
    assert!(
        a_won != b_won,
        "exactly one half's tip should survive (A {a_won}, B {b_won})"
    );
    let loser = usize::from(a_won);
    // Writes the losing half confirmed while apart: their blocks were orphaned, so the
    // checker above found them on every node only because they were mined again.
    let (mut orphaned, mut moved) = (0, 0);
    for e in history.entries() {
        let Outcome::Confirmed { tx, height } = &e.outcome else {
            continue;
        };
        if c.lan().expect("a LAN").half(e.node) != loser
            || e.end_ms < cut_ms
            || e.end_ms > healed_ms
        {
            continue;
        }
        orphaned += 1;
        let now = eps.request(0, "GET", &format!("/tx/{tx}"), b"", Duration::from_secs(10));
        let now = now.map(|a| a.json()["height"].as_u64());
        if now != Ok(Some(*height)) {
            moved += 1;
        }
    }
    println!(
        "faultload: half {} won; the losing half confirmed {orphaned} writes while apart, \
         {moved} of them now at another height (mined again after the reorg); {}",
        if a_won { "A" } else { "B" },
        verdict.line()
    );
    took("s5", started);
}
