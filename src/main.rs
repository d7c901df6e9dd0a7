//! The `kvchain` command line: parses arguments and runs the chosen subcommand.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use kvchain::chain::pow;
use std::time::Duration;

/// A decentralized, tamper-evident key-value store on a proof-of-work blockchain.
#[derive(Parser)]
#[command(name = "kvchain", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure this machine's mining speed and the block time it gives at each difficulty.
    Hashrate {
        /// Mining threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// How long to measure, in seconds.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Hashrate { threads, seconds } => hashrate(threads, seconds),
    }
}

fn hashrate(threads: usize, seconds: f64) -> Result<()> {
    anyhow::ensure!(threads >= 1, "--threads must be at least 1");
    let duration = Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero() && *d <= Duration::from_secs(3600))
        .context("--seconds must be above 0 and at most 3600")?;
    let rate = pow::measure_hashrate(threads, duration);
    println!("hashrate: {rate} H/s");
    println!("threads: {threads}");
    println!();
    println!("{:>10}  {:>16}", "difficulty", "expected block");
    for bits in (8..=40).step_by(2) {
        let secs = pow::work(bits) as f64 / rate.max(1) as f64;
        println!("{bits:>10}  {:>16}", human_duration(secs));
    }
    Ok(())
}

/// Seconds as a short human string ("850 us", "2.3 s", "4.1 h").
fn human_duration(secs: f64) -> String {
    match secs {
        s if s < 1e-3 => format!("{:.0} us", s * 1e6),
        s if s < 1.0 => format!("{:.1} ms", s * 1e3),
        s if s < 120.0 => format!("{s:.1} s"),
        s if s < 7200.0 => format!("{:.1} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} days", s / 86400.0),
    }
}
