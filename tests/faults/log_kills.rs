//! Scenario 4: SIGKILL while the block log is being appended to. Nodes mining at a
//! trivial difficulty under writes of large values append large blocks back to back; it is killed several times, at random moments or the instant its
//! `blocks.log` grows (the kernel stops a write to a file between two pages when the
//! process gets SIGKILL, which tears the frame). On restart a torn tail must be cut (the
//! node says `block log: cut a damaged tail at byte N` and saves the cut bytes to
//! `blocks.cut-N`), never reported as corruption, and no confirmed write may be lost.

use crate::faultload::cluster::{Cluster, Options};
use crate::faultload::workload::{Config, Workload};
use crate::faultload::{self, Rng};
use crate::{confirm_more, finish, took};
use std::time::{Duration, Instant};

/// Kill rounds.
const ROUNDS: usize = 10;
/// The stdout line of a node that cut its block log on start.
const CUT: &str = "block log: cut a damaged tail at byte ";

/// Kills node 0 the moment its block log changes size (within `limit`, else anyway);
/// whether a change was seen.
fn kill_on_append(c: &mut Cluster, limit: Duration) -> bool {
    let Ok(log) = std::fs::File::open(c.data_dir(0).join("blocks.log")) else {
        c.kill_now(0);
        return false;
    };
    // fstat on an open file: the cheapest look at the size there is.
    let size = || log.metadata().map_or(0, |m| m.len());
    let before = size();
    let start = Instant::now();
    // A busy loop on purpose, bounded: reacting within microseconds is what makes the
    // kill land inside a write.
    while start.elapsed() < limit {
        if size() != before {
            c.kill_now(0);
            return true;
        }
        std::hint::spin_loop();
    }
    c.kill_now(0);
    false
}

#[test]
fn s4_kill_during_block_log_appends() {
    let (started, seed) = (Instant::now(), faultload::seed());
    let mut rng = Rng::new(seed, 401);
    // Every node mines only while writes wait, so that every block carries large values.
    let mut c = Cluster::start(Options::new("s4", 3, 10), None);
    let cfg = Config {
        clients: 6,
        value_bytes: 60 * 1024,
        no_wait_every: 2,
        pause: Duration::from_millis(5),
        ..Config::default()
    };
    let load = Workload::start(&c.endpoints(), seed, cfg);
    let (mut torn, mut aimed) = (0, 0);
    for round in 0..ROUNDS {
        confirm_more(&load, 1, Duration::from_secs(30), "before a kill");
        let cuts_before = c
            .stdout_lines(0)
            .iter()
            .filter(|l| l.starts_with(CUT))
            .count();
        if round % 3 == 0 {
            std::thread::sleep(rng.between(Duration::from_millis(50), Duration::from_millis(600)));
            c.kill_now(0);
        } else if kill_on_append(&mut c, Duration::from_secs(3)) {
            aimed += 1;
        }
        c.restart(0);
        let cuts: Vec<String> = c
            .stdout_lines(0)
            .into_iter()
            .filter(|l| l.starts_with(CUT))
            .skip(cuts_before)
            .collect();
        if let Some(line) = cuts.first() {
            torn += 1;
            println!("faultload: round {round}: {line}");
            let at: u64 = line[CUT.len()..]
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no offset in {line:?}"));
            let saved = c.data_dir(0).join(format!("blocks.cut-{at}"));
            assert!(
                saved.exists(),
                "the cut tail was not saved to {}",
                saved.display()
            );
        }
    }
    // A kill can only tear a frame: a checksum mismatch would mean the log wrote garbage.
    let damage = c.log_lines(0, "log had a damaged tail");
    assert!(
        damage.iter().all(|l| l.contains("TornTail")),
        "seed {seed}: a damaged tail that is not torn: {damage:#?}"
    );
    println!(
        "faultload: torn tails seen {torn} in {ROUNDS} kills ({aimed} aimed at a growing log)"
    );
    finish(&mut c, load, seed);
    took("s4", started);
}
