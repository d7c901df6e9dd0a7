//! `kvchain node`: opens the data dir (locked, with a persistent node key), starts the
//! network and the node, serves the console on stdin and on the data dir's socket, and
//! shuts down cleanly on `quit`, SIGINT or SIGTERM.

use crate::node_file;
use anyhow::{bail, Context, Result};
use kvchain::chain::Params;
use kvchain::console::{Console, Flow};
use kvchain::http::ApiState;
use kvchain::net::{self, NetConfig, TransportKind};
use kvchain::node::{self, MiningPolicy, Network, NodeConfig, NodeMetrics};
use libp2p::{identity, Multiaddr};
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::BufReader;
use tokio::sync::mpsc;

/// Options of `kvchain node`.
pub struct NodeOptions {
    pub data_dir: PathBuf,
    pub network: String,
    pub difficulty: u32,
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub mdns: bool,
    pub mining: MiningPolicy,
    pub threads: usize,
    /// Share of gossip messages dropped in and out (experiments only).
    pub omit_gossip: f64,
    pub max_hashrate: Option<std::num::NonZeroU64>,
    /// CPU priority of the mining threads (`--miner-priority`).
    pub miner_priority: kvchain::chain::MinerPriority,
    pub attacker: bool,
    pub confirmations: u64,
    pub limits: net::Limits,
    pub http: Option<std::net::SocketAddr>,
    pub http_config: kvchain::http::HttpConfig,
}

/// The default data dir: `$HOME/.kvchain`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".kvchain"))
        .unwrap_or_else(|| PathBuf::from("kvchain-data"))
}

/// Creates the data dir (owner-only) and takes its lock for the life of the process.
fn lock_data_dir(dir: &Path) -> Result<File> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    }
    let path = dir.join("LOCK");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "data dir {} is in use by another kvchain node; stop it or pass another --data-dir",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => return Err(e).context("cannot lock the data dir"),
    }
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

/// Loads the node key from `dir/node.key`, or makes one (mode 0600).
fn load_or_create_key(dir: &Path) -> Result<identity::Keypair> {
    let path = dir.join("node.key");
    match std::fs::read(&path) {
        Ok(bytes) => identity::Keypair::from_protobuf_encoding(&bytes)
            .with_context(|| format!("{} is not a node key", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = identity::Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .context("cannot encode the node key")?;
            let mut f = OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Runs a node until `quit`, SIGINT or SIGTERM.
pub async fn run(opts: NodeOptions) -> Result<()> {
    // Take over SIGINT and SIGTERM before anything is printed: whoever waits for the
    // node's output and then signals it must always get a clean shutdown.
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let _lock = lock_data_dir(&opts.data_dir)?;
    let key = load_or_create_key(&opts.data_dir)?;
    let params = Params::new(&opts.network, opts.difficulty)?;
    // One registry for libp2p's metrics and the node's, served at /metrics.
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(NodeMetrics::register(&mut registry));
    let (client, events) = net::spawn(
        NetConfig {
            network_id: params.network_id(),
            listen: opts.listen.clone(),
            bootstrap: opts.bootstrap.clone(),
            mdns: opts.mdns,
            transport: TransportKind::Tcp,
            limits: opts.limits.clone(),
        },
        key.clone(),
        Some(&mut registry),
    )?;
    let config = NodeConfig {
        params: params.clone(),
        data_dir: Some(opts.data_dir.clone()),
        keypair: net::signing_key(&key).context("the node key must be ed25519")?,
        confirmations: opts.confirmations,
        mining: opts.mining,
        threads: opts.threads,
        max_hashrate: opts.max_hashrate,
        miner_priority: opts.miner_priority,
        attacker: opts.attacker,
        metrics: metrics.clone(),
        mempool: Default::default(),
        omit_gossip: opts.omit_gossip,
    };
    let started = node::start_with_network(
        config,
        Some(Network {
            client: client.clone(),
            events,
        }),
    )
    .with_context(|| format!("cannot open the chain in {}", opts.data_dir.display()))?;
    if let Some(r) = &started.recovery {
        println!(
            "block log: cut a damaged tail at byte {} (saved to {})",
            r.offset,
            r.saved_to.display()
        );
    }
    let handle = started.handle;
    let info = handle.info().await.context("node did not start")?;
    println!("kvchain node {}", env!("CARGO_PKG_VERSION"));
    println!("peer id: {}", client.peer_id());
    println!(
        "network: {} (id {}, difficulty {} bits)",
        params.network(),
        params.network_id(),
        params.difficulty()
    );
    println!("data dir: {}", opts.data_dir.display());
    println!("height: {} tip {}", info.height, info.tip);
    let mut listening = client.listen_addrs();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        listening.wait_for(|a| !a.is_empty()),
    )
    .await;
    // Already dialable: each address ends in `/p2p/<peer id>`.
    let p2p: Vec<String> = listening.borrow().iter().map(|a| a.to_string()).collect();
    for addr in listening.borrow().iter() {
        println!("listening on {addr}");
    }
    let mut http_url = None;
    if let Some(addr) = opts.http {
        let state = ApiState {
            node: handle.clone(),
            net: Some(client.clone()),
            registry: Arc::new(registry),
            metrics,
            confirmations: opts.confirmations,
        };
        let bound = kvchain::http::serve_with(addr, state, opts.http_config)
            .await
            .with_context(|| format!("cannot serve HTTP on {addr}"))?;
        println!("http: listening on http://{bound}");
        http_url = Some(format!("http://{bound}"));
    }
    tokio::spawn(sync_progress(handle.clone()));
    let peer_id = client.peer_id().to_string();
    let console = Console::new(handle.clone(), Some(client));
    let socket = kvchain::console::socket::serve(&opts.data_dir, console.clone())
        .context("cannot serve the console socket")?;
    let info_file = node_file::write(
        &opts.data_dir,
        &node_file::NodeFile {
            pid: std::process::id(),
            peer_id,
            network: params.network().to_string(),
            network_id: params.network_id(),
            difficulty: params.difficulty(),
            p2p,
            http: http_url,
            console: socket.clone(),
            version: env!("CARGO_PKG_VERSION"),
        },
    )?;
    println!(
        "console: type help; attach from elsewhere with: kvchain attach --data-dir {}",
        opts.data_dir.display()
    );

    let (quit_tx, mut quit_rx) = mpsc::channel::<()>(1);
    tokio::spawn(stdin_console(console, quit_tx));
    tokio::select! {
        _ = sigint.recv() => println!("interrupted; shutting down"),
        _ = sigterm.recv() => println!("terminated; shutting down"),
        // At end of stdin the console task ends and drops its sender: that is no quit.
        Some(()) = quit_rx.recv() => println!("shutting down"),
    }
    handle.shutdown().await;
    let _ = std::fs::remove_file(socket);
    let _ = std::fs::remove_file(info_file);
    Ok(())
}

/// Prints a progress line every few seconds while the node syncs a long chain.
async fn sync_progress(node: kvchain::node::NodeHandle) {
    let every = Duration::from_secs(3);
    let mut last = None;
    loop {
        tokio::time::sleep(every).await;
        let Some(info) = node.info().await else {
            return;
        };
        if info.syncing && info.sync_target > info.height + 1 {
            let rate = last.map_or(0.0, |h: u64| {
                info.height.saturating_sub(h) as f64 / every.as_secs_f64()
            });
            println!(
                "sync: {} of {} blocks ({rate:.0} blocks/s)",
                info.height, info.sync_target
            );
            last = Some(info.height);
        } else {
            last = None;
        }
    }
}

/// Reads commands from stdin; at end of input the node keeps running.
async fn stdin_console(console: Console, quit: mpsc::Sender<()>) {
    let (out, mut lines) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            println!("{line}");
        }
    });
    let prompt = std::io::stdin().is_terminal();
    let mut stdin = BufReader::new(tokio::io::stdin());
    loop {
        if prompt {
            print!("> ");
            let _ = std::io::stdout().flush();
        }
        match kvchain::console::socket::read_line(&mut stdin).await {
            Ok(Some(line)) => {
                if console.run_line(&line, &out).await.1 == Flow::Quit {
                    let _ = quit.send(()).await;
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = out.send(format!("error: {e}"));
            }
        }
    }
}
