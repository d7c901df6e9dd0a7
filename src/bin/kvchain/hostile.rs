//! `kvchain hostile`: a Byzantine peer for experiments (hidden from `--help`). It joins a
//! network like a node, through the library's real network service, but sends only what
//! honest nodes must refuse: batches of txs whose signatures do not match, and blocks
//! whose hash misses the difficulty. It never relays or answers anything. It prints a
//! JSON line per second (what it sent, how many peers it still has) and one per peer
//! that comes or goes, so an experiment can see when the honest nodes cut it off.

use anyhow::{Context, Result};
use kvchain::chain::{pow, Keypair, Op, Params, Tx};
use kvchain::net::{self, Gossip, NetCommand, NetConfig, NetEvent, Verdict};
use libp2p::{identity, Multiaddr};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// What the hostile peer is told to do.
pub struct Options {
    /// The network's name and difficulty (they make the protocol names).
    pub network: String,
    /// The network's difficulty.
    pub difficulty: u32,
    /// Peers to join through.
    pub bootstrap: Vec<Multiaddr>,
    /// How long to misbehave.
    pub duration: Duration,
    /// Time between two hostile messages.
    pub every: Duration,
    /// Forged txs per gossip message.
    pub txs_per_message: usize,
}

/// Runs the hostile peer for `opts.duration`.
pub async fn run(opts: Options) -> Result<()> {
    let params = Params::new(&opts.network, opts.difficulty)?;
    let key = identity::Keypair::generate_ed25519();
    let config = NetConfig {
        network_id: params.network_id(),
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().context("listen address")?],
        bootstrap: opts.bootstrap.clone(),
        mdns: false,
        transport: net::TransportKind::Tcp,
        limits: net::Limits::default(),
    };
    let (client, mut events) = net::spawn(config, key, None)?;
    println!(
        "{}",
        serde_json::json!({ "event": "started", "peer_id": client.peer_id().to_string() })
    );
    let author = Keypair::generate();
    let start = Instant::now();
    let mut send = tokio::time::interval(opts.every);
    let mut report = tokio::time::interval(Duration::from_secs(1));
    let mut peers = HashSet::new();
    let (mut sent_txs, mut sent_blocks, mut seq) = (0u64, 0u64, 0u64);
    while start.elapsed() < opts.duration {
        tokio::select! {
            _ = send.tick() => {
                seq += 1;
                // Alternate: a batch of forged txs, then a block with no proof of work.
                let gossip = if seq % 2 == 0 {
                    sent_blocks += 1;
                    Gossip::Block(pow::failing_block(&params, seq))
                } else {
                    sent_txs += opts.txs_per_message as u64;
                    Gossip::Txs(forged_txs(&author, seq, opts.txs_per_message)?)
                };
                client.try_send(NetCommand::Publish(gossip));
            }
            _ = report.tick() => println!("{}", serde_json::json!({
                "t_unix": kvchain::chain::now_ms() as f64 / 1e3,
                "event": "tick",
                "peers": peers.len(),
                "forged_txs_sent": sent_txs,
                "bad_blocks_sent": sent_blocks,
            })),
            event = events.recv() => match event {
                Some(NetEvent::PeerConnected(p)) => {
                    peers.insert(p);
                    print_peer_event("connected", &p, peers.len());
                }
                Some(NetEvent::PeerDisconnected(p)) => {
                    peers.remove(&p);
                    print_peer_event("disconnected", &p, peers.len());
                }
                // Relay nothing honest; answer no request (the asker's timeout is all).
                Some(NetEvent::Gossip { source, id, .. }) => {
                    client.try_send(NetCommand::Validate { id, source, verdict: Verdict::Ignore });
                }
                Some(_) => {}
                None => anyhow::bail!("the network service stopped"),
            },
        }
    }
    Ok(())
}

/// One JSON line: a peer came or went, and how many are left.
fn print_peer_event(event: &str, peer: &libp2p::PeerId, peers: usize) {
    println!(
        "{}",
        serde_json::json!({
            "t_unix": kvchain::chain::now_ms() as f64 / 1e3,
            "event": event,
            "peer": peer.to_string(),
            "peers": peers,
        })
    );
}

/// Txs signed by `author` whose value was changed after signing: well-formed, with a
/// signature that does not match.
fn forged_txs(author: &Keypair, seq: u64, n: usize) -> Result<Vec<Tx>> {
    let now = kvchain::chain::now_ms();
    (0..n as u64)
        .map(|i| {
            let op = Op::Put {
                key: format!("forged-{seq}-{i}"),
                value: b"honest".to_vec(),
            };
            let signed = Tx::new(author, op, seq * 10_000 + i, now)?;
            let other = Tx::new(
                author,
                Op::Put {
                    key: format!("forged-{seq}-{i}"),
                    value: b"forged".to_vec(),
                },
                seq * 10_000 + i,
                now,
            )?;
            // The second tx's content with the first one's signature.
            Ok(other.with_signature(signed.signature()))
        })
        .collect()
}
