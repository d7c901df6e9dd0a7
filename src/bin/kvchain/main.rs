//! The `kvchain` command line: parses arguments and runs the chosen subcommand.

mod bench;
mod daemon;
mod hostile;
mod node_file;
mod remote;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use kvchain::chain::pow;
use kvchain::node::MiningPolicy;
use libp2p::Multiaddr;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// mimalloc instead of glibc's malloc, whose arenas and consolidation took some 9% of a
/// loaded node's CPU (perf, one node at 256 writes in flight).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A decentralized, tamper-evident key-value store on a proof-of-work blockchain.
#[derive(Parser)]
#[command(name = "kvchain", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node with an interactive console on stdin.
    Node {
        /// Where the block log, the journal, the node key and the console socket live
        /// [default: $HOME/.kvchain].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Network name; nodes only talk to nodes of the same name and difficulty.
        #[arg(long, default_value = "kvchain")]
        network: String,
        /// Leading zero bits every block hash needs (see `kvchain hashrate`).
        #[arg(long, default_value_t = 22)]
        difficulty: u32,
        /// Address to listen on (repeatable).
        #[arg(long, default_value = "/ip4/0.0.0.0/tcp/4100")]
        listen: Vec<Multiaddr>,
        /// Peer to join through, as /ip4/HOST/tcp/PORT/p2p/PEERID (repeatable).
        #[arg(long)]
        bootstrap: Vec<Multiaddr>,
        /// Do not discover peers on the LAN with mDNS.
        #[arg(long)]
        no_mdns: bool,
        /// When to mine: auto (while writes wait), always, off.
        #[arg(long, default_value = "auto")]
        mine: MiningPolicy,
        /// Mining threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Most hashes per second all mining threads together try [default: unlimited];
        /// gives nodes chosen shares of the hashrate on one machine.
        #[arg(long, value_name = "H")]
        max_hashrate: Option<std::num::NonZeroU64>,
        /// CPU priority of the mining threads: `idle` (Linux's SCHED_IDLE: they mine only
        /// on CPU time the node does not want) or a nice value, 0 (as the node) to 19.
        #[arg(long, value_name = "idle|N", alias = "miner-nice",
              default_value_t = kvchain::chain::MinerPriority::default())]
        miner_priority: kvchain::chain::MinerPriority,
        /// Experimental, for the 51% attack experiment only: enables the console's
        /// `attack` commands (a private branch that rewrites a version of a key).
        #[arg(long)]
        attacker: bool,
        /// Blocks (the including one counts) after which a write is confirmed.
        #[arg(long, default_value_t = 3)]
        confirmations: u64,
        /// Log filter (overrides RUST_LOG), e.g. info or kvchain=debug.
        #[arg(long)]
        log: Option<String>,
        /// Write logs to this file instead of stderr.
        #[arg(long)]
        log_file: Option<PathBuf>,
        /// How long a misbehaving peer stays banned, in seconds.
        #[arg(long, default_value_t = 3600)]
        ban_duration: u64,
        /// Most connections to other peers in all.
        #[arg(long, default_value_t = 128)]
        max_peers: u32,
        /// Most inbound connections from one IP address (loopback is exempt).
        #[arg(long, default_value_t = 8)]
        max_peers_per_ip: usize,
        /// Serve the HTTP API on this address (bare --http: 127.0.0.1:8645).
        #[arg(long, num_args = 0..=1, default_missing_value = kvchain::http::DEFAULT_ADDR)]
        http: Option<std::net::SocketAddr>,
        /// Hosts the HTTP API answers to, comma-separated; * for any [default: localhost,
        /// 127.0.0.1, [::1] and the --http address].
        #[arg(long, requires = "http", value_delimiter = ',', value_parser = kvchain::http::parse_vhost)]
        http_vhosts: Option<Vec<String>>,
        /// File holding the bearer token every HTTP write (PUT, DELETE) must carry.
        #[arg(long, requires = "http")]
        http_token_file: Option<PathBuf>,
        /// Experiments only: drop this share (0 to 1) of gossip messages, in and out.
        #[arg(long, default_value_t = 0.0, hide = true)]
        omit_gossip: f64,
    },
    /// Write a value through a node's HTTP API.
    Put {
        key: String,
        value: String,
        /// Answer once the write is `included` or `confirmed`.
        #[arg(long)]
        wait: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Read the latest value of a key.
    Get {
        key: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Every version of a key.
    History {
        key: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Delete a key.
    Del {
        key: String,
        /// Answer once the delete is `included` or `confirmed`.
        #[arg(long)]
        wait: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// A node's status.
    Status {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Open a console to a node running on this machine.
    Attach {
        /// The node's data dir [default: $HOME/.kvchain].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Run one command, print its reply and exit (non-zero if it failed).
        #[arg(short = 'c', long)]
        command: Option<String>,
        /// With `-c status`: answer in one line of JSON.
        #[arg(long, requires = "command")]
        json: bool,
    },
    /// Offer writes to nodes' HTTP APIs and measure them: a load generator.
    Bench {
        /// A node's HTTP API base URL (repeatable: connections go to each in turn).
        #[arg(long = "node", required = true)]
        nodes: Vec<String>,
        /// Writes kept in flight at all times (closed loop), one per connection.
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
        /// Offer this many writes per second instead (open loop).
        #[arg(long)]
        rate: Option<f64>,
        /// Connections the --rate load is spread over.
        #[arg(long, default_value_t = 256, requires = "rate")]
        connections: usize,
        /// What each write waits for before the node answers.
        #[arg(long, value_enum, default_value = "confirmed")]
        wait: bench::Wait,
        /// Seconds measured.
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        /// Seconds of load before measuring starts.
        #[arg(long, default_value_t = 5.0)]
        warmup: f64,
        /// Bytes per value.
        #[arg(long, default_value_t = 32)]
        value_size: usize,
        /// Longest wait of one write, in seconds.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        /// Key prefix [default: bench-<pid>-<time>].
        #[arg(long)]
        prefix: Option<String>,
        /// File holding the nodes' HTTP token [default: $KVCHAIN_TOKEN].
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Print the report as one line of JSON.
        #[arg(long)]
        json: bool,
        /// Also write every write as a CSV row (due and answer times, node, outcome,
        /// latency) to this file, for plots over time.
        #[arg(long)]
        samples: Option<PathBuf>,
    },
    /// A Byzantine peer for experiments: joins a network and sends only forged txs and
    /// blocks without proof of work, until the honest nodes cut it off.
    #[command(hide = true)]
    Hostile {
        /// The network's name.
        #[arg(long, default_value = "kvchain")]
        network: String,
        /// The network's difficulty.
        #[arg(long, default_value_t = 22)]
        difficulty: u32,
        /// Peer to join through (repeatable).
        #[arg(long, required = true)]
        bootstrap: Vec<Multiaddr>,
        /// How long to misbehave, in seconds.
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        /// Milliseconds between two hostile messages.
        #[arg(long, default_value_t = 50)]
        every_ms: u64,
        /// Forged txs per gossip message.
        #[arg(long, default_value_t = 10)]
        txs_per_message: usize,
    },
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

/// Where and how the client subcommands talk to a node.
#[derive(clap::Args)]
struct RemoteArgs {
    /// The node's HTTP API.
    #[arg(long, default_value = kvchain::http::client::DEFAULT_NODE)]
    node: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Longest wait, in seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// File holding the node's HTTP token, sent with writes [default: $KVCHAIN_TOKEN].
    #[arg(long)]
    token_file: Option<PathBuf>,
}

impl RemoteArgs {
    fn run(self, call: remote::Remote) -> Result<ExitCode> {
        let timeout = Duration::try_from_secs_f64(self.timeout)
            .ok()
            .filter(|d| *d <= Duration::from_secs(600))
            .context("--timeout must be 0 to 600 seconds")?;
        let token = client_token(self.token_file.as_deref())?;
        Ok(remote::run(&self.node, call, self.json, timeout, token))
    }
}

/// The HTTP token a client sends: from `file`, else `$KVCHAIN_TOKEN`, else none.
fn client_token(file: Option<&std::path::Path>) -> Result<Option<String>> {
    Ok(match file {
        Some(path) => Some(kvchain::http::read_token_file(path).context("--token-file")?),
        None => std::env::var("KVCHAIN_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()),
    })
}

/// Seconds from a flag, checked to lie in `min..=max`.
fn seconds_flag(flag: &str, secs: f64, min: f64, max: f64) -> Result<Duration> {
    anyhow::ensure!(
        secs.is_finite() && (min..=max).contains(&secs),
        "{flag} must be {min} to {max} seconds"
    );
    Ok(Duration::from_secs_f64(secs))
}

/// The HTTP API's settings from `kvchain node`'s flags; the token file is read now, so
/// that a bad one stops the node before it starts.
fn http_config(
    vhosts: Option<Vec<String>>,
    token_file: Option<PathBuf>,
) -> Result<kvchain::http::HttpConfig> {
    let token = token_file
        .map(|path| kvchain::http::Token::from_file(&path))
        .transpose()
        .context("--http-token-file")?;
    Ok(kvchain::http::HttpConfig {
        vhosts,
        token,
        ..Default::default()
    })
}

fn init_logs(filter: Option<String>, file: Option<PathBuf>) -> Result<()> {
    let filter = match filter {
        Some(f) => tracing_subscriber::EnvFilter::try_new(f).context("bad --log filter")?,
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .init();
        }
        // Colours only for a person at a terminal, not for a file stderr is captured in.
        None => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init(),
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            // One line with every cause, without a backtrace: this is for people.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Node {
            data_dir,
            network,
            difficulty,
            listen,
            bootstrap,
            no_mdns,
            mine,
            threads,
            max_hashrate,
            miner_priority,
            attacker,
            confirmations,
            log,
            log_file,
            ban_duration,
            max_peers,
            max_peers_per_ip,
            http,
            http_vhosts,
            http_token_file,
            omit_gossip,
        } => {
            init_logs(log, log_file)?;
            anyhow::ensure!(
                (0.0..=1.0).contains(&omit_gossip),
                "--omit-gossip must be 0 to 1"
            );
            anyhow::ensure!(threads >= 1, "--threads must be at least 1");
            anyhow::ensure!(max_peers >= 1, "--max-peers must be at least 1");
            let limits = kvchain::net::Limits {
                ban_duration: Duration::from_secs(ban_duration),
                max_connections: max_peers,
                max_inbound_per_ip: max_peers_per_ip,
                ..Default::default()
            };
            let opts = daemon::NodeOptions {
                data_dir: data_dir.unwrap_or_else(daemon::default_data_dir),
                network,
                difficulty,
                listen,
                bootstrap,
                mdns: !no_mdns,
                mining: mine,
                threads,
                omit_gossip,
                max_hashrate,
                miner_priority,
                attacker,
                confirmations,
                limits,
                http,
                http_config: http_config(http_vhosts, http_token_file)?,
            };
            let rt = tokio::runtime::Runtime::new()?;
            let result = rt.block_on(daemon::run(opts));
            // The stdin reader sits in a blocking read that nothing can cancel: do not
            // wait for it, or a signal would not end a node whose stdin stays open.
            rt.shutdown_background();
            result?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Attach {
            data_dir,
            command,
            json,
        } => {
            let command = command.map(|c| if json { format!("{c} --json") } else { c });
            let dir = data_dir.unwrap_or_else(daemon::default_data_dir);
            let socket = dir.join(kvchain::console::socket::SOCKET);
            let rt = tokio::runtime::Runtime::new()?;
            // Only a failed connect means there is no node; other errors speak for themselves.
            let context = |e: std::io::Error| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    anyhow::anyhow!("no node is running with data dir {}", dir.display())
                }
                _ => anyhow::Error::new(e),
            };
            let result = match command {
                Some(cmd) => rt.block_on(kvchain::console::attach::run_once(&socket, &cmd)),
                None => rt
                    .block_on(kvchain::console::attach::interactive(&socket))
                    .map(|()| true),
            };
            // Interactive stdin sits in a blocking read: do not wait for it.
            rt.shutdown_background();
            let ok = result.map_err(context)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Put {
            key,
            value,
            wait,
            remote,
        } => remote.run(remote::Remote::Put { key, value, wait }),
        Command::Get { key, remote } => remote.run(remote::Remote::Get { key }),
        Command::History { key, remote } => remote.run(remote::Remote::History { key }),
        Command::Del { key, wait, remote } => remote.run(remote::Remote::Del { key, wait }),
        Command::Status { remote } => remote.run(remote::Remote::Status),
        Command::Bench {
            nodes,
            in_flight,
            rate,
            connections,
            wait,
            seconds,
            warmup,
            value_size,
            timeout,
            prefix,
            token_file,
            json,
            samples,
        } => {
            init_logs(None, None)?;
            let range = 1..=4096;
            anyhow::ensure!(range.contains(&in_flight), "--in-flight must be 1 to 4096");
            anyhow::ensure!(
                range.contains(&connections),
                "--connections must be 1 to 4096"
            );
            let load = match rate {
                Some(r) if r.is_finite() && r > 0.0 => bench::Load::Rate {
                    per_sec: r,
                    connections,
                },
                Some(_) => anyhow::bail!("--rate must be a positive number"),
                None => bench::Load::InFlight(in_flight),
            };
            anyhow::ensure!(
                value_size <= kvchain::chain::limits::MAX_VALUE_BYTES,
                "--value-size must be at most {} bytes",
                kvchain::chain::limits::MAX_VALUE_BYTES
            );
            let prefix = prefix.unwrap_or_else(|| {
                let now = kvchain::chain::now_ms() / 1000;
                format!("bench-{}-{now}", std::process::id())
            });
            let opts = bench::Options {
                nodes,
                load,
                wait,
                duration: seconds_flag("--seconds", seconds, 0.1, 3600.0)?,
                warmup: seconds_flag("--warmup", warmup, 0.0, 600.0)?,
                value_size,
                timeout: seconds_flag("--timeout", timeout, 0.1, 600.0)?,
                prefix,
                token: client_token(token_file.as_deref())?,
                samples,
            };
            // One thread: the generator shares the machine with the nodes it measures, and
            // a single event loop spends less CPU per write than a work-stealing pool.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(bench::run(opts, json))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Hostile {
            network,
            difficulty,
            bootstrap,
            seconds,
            every_ms,
            txs_per_message,
        } => {
            init_logs(None, None)?;
            anyhow::ensure!(every_ms > 0, "--every-ms must be positive");
            anyhow::ensure!(
                (1..=kvchain::net::protocol::MAX_GOSSIP_TXS).contains(&txs_per_message),
                "--txs-per-message must be 1 to {}",
                kvchain::net::protocol::MAX_GOSSIP_TXS
            );
            let opts = hostile::Options {
                network,
                difficulty,
                bootstrap,
                duration: seconds_flag("--seconds", seconds, 0.1, 3600.0)?,
                every: Duration::from_millis(every_ms),
                txs_per_message,
            };
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(hostile::run(opts))?;
            rt.shutdown_background();
            Ok(ExitCode::SUCCESS)
        }
        Command::Hashrate { threads, seconds } => {
            init_logs(None, None)?;
            hashrate(threads, seconds)?;
            Ok(ExitCode::SUCCESS)
        }
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
