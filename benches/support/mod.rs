//! What the benchmarks that print figures after their criterion group share.

use std::time::{Duration, Instant};

/// The first field of /proc/loadavg, where there is one: on a shared machine the
/// figures move with it.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// Whether this is a `cargo bench` run, not `cargo test --benches` (which runs each
/// benchmark once) nor a `--list`: only then are the extra figures worth their time.
pub fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--list")
}

/// Units per second of `step` (which does `units` of work each call), timed for about
/// `duration` after a short warm-up (caches, CPU frequency).
pub fn rate(duration: Duration, units: u64, mut step: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(200) {
        step();
    }
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < duration {
        step();
        done += units;
    }
    done as f64 / start.elapsed().as_secs_f64()
}
