//! The soak test (ignored; run by `scripts/soak.sh`): the same harness for
//! `KVCHAIN_SOAK_SECS` seconds (default 600) of random SIGKILLs, restarts and, as root,
//! partitions and heals under load, then the same check and summary line.

use crate::faultload::cluster::{Cluster, Options};
use crate::faultload::netns::{self, Lan};
use crate::faultload::workload::{Config, Workload};
use crate::faultload::{self, Rng};
use crate::{finish, took};
use std::time::{Duration, Instant};

#[test]
#[ignore = "long: run by scripts/soak.sh"]
fn soak_random_kills_restarts_and_partitions() {
    let (started, seed) = (Instant::now(), faultload::seed());
    let secs = std::env::var("KVCHAIN_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let mut rng = Rng::new(seed, 901);
    let nodes = 4;
    let lan = netns::unavailable().is_none().then(|| Lan::new(nodes, 2));
    // A block every second or two on this machine's release build, as a LAN network
    // would be run (a block every few milliseconds would only measure replay speed).
    let difficulty = std::env::var("KVCHAIN_SOAK_DIFFICULTY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(22);
    let mut c = Cluster::start(Options::new("soak", nodes, difficulty), lan);
    let load = Workload::start(
        &c.endpoints(),
        seed,
        Config {
            max_ops: usize::MAX,
            ..Config::default()
        },
    );
    let (mut kills, mut partitions, mut apart) = (0, 0, false);
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(rng.between(Duration::from_millis(300), Duration::from_secs(3)));
        let i = rng.below(nodes as u64) as usize;
        match rng.below(4) {
            0 | 1 if c.is_up(i) && (0..nodes).filter(|&j| c.is_up(j)).count() > 1 => {
                c.kill(i);
                kills += 1;
            }
            0..=2 if !c.is_up(i) => c.restart(i),
            _ => match c.lan() {
                Some(lan) if apart => {
                    lan.heal();
                    apart = false;
                }
                Some(lan) => {
                    lan.partition();
                    (apart, partitions) = (true, partitions + 1);
                }
                None => {}
            },
        }
    }
    if let (Some(lan), true) = (c.lan(), apart) {
        lan.heal();
    }
    for i in 0..nodes {
        if !c.is_up(i) {
            c.restart(i);
        }
    }
    println!("faultload: soak: {kills} kills, {partitions} partitions in {secs} s");
    finish(&mut c, load, seed);
    took("soak", started);
}
