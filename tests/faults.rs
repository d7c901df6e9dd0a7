//! Fault scenarios (issue 8, part 5): real `kvchain` node processes under a seeded HTTP
//! workload, killed with SIGKILL, restarted, partitioned and healed, then checked: every
//! write a node acknowledged as confirmed is on every node, no value appears that no client
//! wrote, and the nodes converge on one tip and digest. Each scenario prints the harness's
//! seed (`KVCHAIN_FAULT_SEED=N` replays its choices) and its summary line
//! `writes: confirmed N, lost L, nodes agreeing k/n`.
//!
//! Run one with e.g. `cargo test --test faults -- s3 --nocapture`.

#[path = "support/faultload/mod.rs"]
mod faultload;
#[path = "faults/log_kills.rs"]
mod log_kills;
#[path = "faults/partition.rs"]
mod partition;
#[path = "faults/soak.rs"]
mod soak;

use faultload::checker::{self, Verdict};
use faultload::cluster::{Cluster, Options};
use faultload::workload::{write_outcome, Config, Entry, Op, Outcome, Workload};
use faultload::{key_path, poll_until, Rng};
use std::time::{Duration, Instant};

/// How long the nodes get to agree at the end of a scenario.
const CONVERGE: Duration = Duration::from_secs(60);

/// Prints how long a scenario took, with its name.
fn took(name: &str, started: Instant) {
    println!(
        "faultload: {name} took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Checks the end state and that the run did confirm writes (a run that confirmed none
/// proved nothing).
fn finish(c: &mut Cluster, load: Workload, seed: u64) -> Verdict {
    let history = load.stop();
    c.quiesce();
    let v = checker::finish(&c.endpoints(), &history, c.dir(), seed, CONVERGE);
    assert!(v.confirmed > 0, "no write was confirmed (seed {seed})");
    v
}

/// Waits until the workload confirmed `n` more writes, failing the test after `limit`.
fn confirm_more(load: &Workload, n: usize, limit: Duration, what: &str) {
    assert!(
        load.wait_confirmed(n, limit),
        "{what}: fewer than {n} writes confirmed within {limit:?} (now {})",
        load.confirmed()
    );
}

#[test]
fn s1_kill_a_miner_mid_block() {
    let (started, seed) = (Instant::now(), faultload::seed());
    let mut rng = Rng::new(seed, 101);
    // Node 0 mines all the time at a difficulty where a block takes a while: a kill at
    // any moment lands in the middle of one.
    let mut opts = Options::new("s1", 3, 19);
    opts.mine = vec!["always".into()];
    let mut c = Cluster::start(opts, None);
    let eps = c.endpoints();
    let load = Workload::start(&eps, seed, Config::default());
    confirm_more(&load, 3, Duration::from_secs(30), "before the kills");
    for round in 0..4 {
        std::thread::sleep(rng.between(Duration::from_millis(200), Duration::from_millis(1500)));
        let mining = eps.status(0).map(|s| s["mining_active"] == true);
        c.kill(0);
        println!("faultload: round {round}: miner killed while mining_active={mining:?}");
        assert_eq!(mining, Ok(true), "node 0 should have been mining");
        confirm_more(&load, 1, Duration::from_secs(30), "with the miner down");
        c.restart(0);
    }
    confirm_more(&load, 3, Duration::from_secs(30), "after the last restart");
    finish(&mut c, load, seed);
    took("s1", started);
}

#[test]
fn s2_kill_right_after_202_and_find_the_write_everywhere() {
    let (started, seed) = (Instant::now(), faultload::seed());
    // A block takes a few tens of ms: most writes are still pending when they are answered.
    let mut c = Cluster::start(Options::new("s2", 3, 18), None);
    let eps = c.endpoints();
    let cfg = Config {
        clients: 2,
        ..Config::default()
    };
    let load = Workload::start(&eps, seed, cfg);
    confirm_more(&load, 2, Duration::from_secs(30), "before the kills");
    let (mut acked, mut pending) = (Vec::new(), 0);
    for round in 0..5 {
        let node = round % c.len();
        let (key, value) = (format!("ack{round}"), format!("s2-{round}-{seed}"));
        let start_ms = load.history.now_ms();
        let path = format!("/kvs/{}", key_path(&key));
        let answer = eps.request(
            node,
            "PUT",
            &path,
            value.as_bytes(),
            Duration::from_secs(10),
        );
        let outcome = write_outcome(answer);
        // SIGKILL at once: the node answered 202, so the write must already be on disk.
        c.kill(node);
        load.history.record(Entry {
            client: 100,
            node,
            op: Op::Put {
                key: key.clone(),
                value: value.clone(),
            },
            outcome: outcome.clone(),
            start_ms,
            end_ms: load.history.now_ms(),
        });
        // 202 pending, or 200 included when a block took it before the answer went out
        // (both acknowledge the write without waiting for its confirmation).
        let Outcome::Accepted { status, .. } = &outcome else {
            panic!("seed {seed}: round {round}: the write was not acknowledged: {outcome:?}");
        };
        pending += usize::from(status == "pending");
        acked.push((key, value));
        c.restart(node);
        confirm_more(&load, 1, Duration::from_secs(30), "after a restart");
    }
    // Every 202 write must reach every node, not only the one that acknowledged it.
    for (key, value) in &acked {
        for n in 0..c.len() {
            let seen = poll_until(Duration::from_secs(60), || {
                let rows = checker::history(&eps, n, key)?;
                rows.iter()
                    .any(|r| r.value.as_deref() == Some(value.as_str()))
                    .then_some(())
                    .ok_or(format!("{} versions, not this one", rows.len()))
            });
            assert!(
                seen.is_ok(),
                "seed {seed}: the write {key}={value} answered 202 is not on node {n}: {seen:?}"
            );
        }
    }
    println!(
        "faultload: all {} writes acknowledged ({pending} of them 202 pending) right before a \
         kill are on every node",
        acked.len()
    );
    finish(&mut c, load, seed);
    took("s2", started);
}

#[test]
fn s3_kill_a_minority_then_a_majority() {
    let (started, seed) = (Instant::now(), faultload::seed());
    let mut c = Cluster::start(Options::new("s3", 5, 14), None);
    let load = Workload::start(&c.endpoints(), seed, Config::default());
    confirm_more(&load, 3, Duration::from_secs(30), "with all nodes up");
    for n in [3, 4] {
        c.kill(n);
    }
    confirm_more(&load, 3, Duration::from_secs(30), "with a minority down");
    for n in [3, 4] {
        c.restart(n);
    }
    confirm_more(
        &load,
        2,
        Duration::from_secs(30),
        "after the minority came back",
    );
    for n in [0, 1, 2] {
        c.kill(n);
    }
    // Proof of work has no quorum: the remaining two still confirm writes.
    confirm_more(&load, 3, Duration::from_secs(30), "with a majority down");
    for n in [0, 1, 2] {
        c.restart(n);
    }
    confirm_more(
        &load,
        3,
        Duration::from_secs(30),
        "after the majority came back",
    );
    finish(&mut c, load, seed);
    took("s3", started);
}

#[test]
fn s6_a_node_offline_for_1000_blocks_catches_up() {
    let (started, seed) = (Instant::now(), faultload::seed());
    // One node mines all the time at a trivial difficulty: blocks come fast.
    let mut opts = Options::new("s6", 3, 8);
    opts.mine = vec!["always".into(), "off".into(), "off".into()];
    let mut c = Cluster::start(opts, None);
    let eps = c.endpoints();
    let cfg = Config {
        clients: 2,
        pause: Duration::from_millis(100),
        ..Config::default()
    };
    let load = Workload::start(&eps, seed, cfg);
    confirm_more(&load, 2, Duration::from_secs(30), "before the kill");
    let left_at = eps.height(2).expect("node 2 answers");
    c.kill(2);
    let gone = Instant::now();
    let target = left_at + 1000;
    let reached = poll_until(Duration::from_secs(90), || {
        let h = eps.height(0).unwrap_or(0);
        (h >= target).then_some(h).ok_or(format!("height {h}"))
    });
    let height = reached.unwrap_or_else(|h| panic!("node 0 did not reach {target}: {h}"));
    println!(
        "faultload: {} blocks mined in {:.1} s while node 2 was down",
        height - left_at,
        gone.elapsed().as_secs_f64()
    );
    c.restart(2);
    let caught_up = Instant::now();
    let v = finish(&mut c, load, seed);
    let now = eps.height(2).expect("node 2 answers");
    assert!(now >= target, "node 2 is at {now}, below {target}");
    println!(
        "faultload: node 2 caught up from {left_at} to {now} in {:.1} s ({})",
        caught_up.elapsed().as_secs_f64(),
        v.line()
    );
    took("s6", started);
}
