//! The interactive console: one command per line, parsed into a [`ConsoleCommand`] and run
//! against the node. The same code serves stdin and every `kvchain attach` session.
//!
//! Replies are lines sent to an [`Output`]; a `put` replies with its tx id at once and
//! later sends one line per change of its receipt, from a task of its own.
//!
//! `parse` is the language, `socket` serves it on the data dir's Unix socket, `attach`
//! is the client `kvchain attach` runs.

pub mod attach;
mod parse;
pub mod socket;

pub use parse::{parse, tokenize, BlockRef, ConsoleCommand, HELP};

use crate::chain::Version;
use crate::net::NetClient;
use crate::node::NodeHandle;
use crate::node::TxStatus;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Where a console's reply lines go.
pub type Output = mpsc::UnboundedSender<String>;

/// Whether the console goes on after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Read the next line.
    Continue,
    /// The user asked to leave.
    Quit,
}

/// A value for display: the text if it is printable UTF-8, else `0x` and hex.
pub fn show_value(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => format!("0x{}", hex::encode(value)),
    }
}

/// Milliseconds since the Unix epoch as a UTC date, `2026-11-24T02:14:41.123Z`.
pub fn utc(ms: u64) -> String {
    let (days, rem) = (ms / 86_400_000, ms % 86_400_000);
    // Days to a civil date (H. Hinnant's algorithm), valid for any u64 day count here.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1_000 % 60,
        rem % 1_000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

fn show_version(v: &Version) -> String {
    let what = match &v.value {
        Some(value) => format!("put {}", show_value(value)),
        None => "del".to_string(),
    };
    format!(
        "height {} tx {} by {}: {what}",
        v.height,
        v.tx_id.short(),
        hex::encode(&v.author.0[..4])
    )
}

/// The console's connection to the node and the network.
#[derive(Clone, Debug)]
pub struct Console {
    node: NodeHandle,
    net: Option<NetClient>,
}

impl Console {
    /// A console on `node`, with `net` for `peers` and `connect`.
    pub fn new(node: NodeHandle, net: Option<NetClient>) -> Console {
        Console { node, net }
    }

    /// Parses and runs one line, sending reply lines to `out`; returns whether the line
    /// was an error, and whether to go on.
    pub async fn run_line(&self, line: &str, out: &Output) -> (bool, Flow) {
        match parse(line) {
            Ok(None) => (true, Flow::Continue),
            Ok(Some(cmd)) => match self.execute(cmd, out).await {
                Ok(flow) => (true, flow),
                Err(e) => {
                    let _ = out.send(format!("error: {e}"));
                    (false, Flow::Continue)
                }
            },
            Err(e) => {
                let _ = out.send(format!("error: {e}"));
                (false, Flow::Continue)
            }
        }
    }

    /// Runs one command.
    pub async fn execute(&self, cmd: ConsoleCommand, out: &Output) -> Result<Flow, String> {
        let say = |s: String| {
            let _ = out.send(s);
        };
        let store = self.node.store();
        match cmd {
            ConsoleCommand::Put { key, value } => {
                let receipt = store
                    .put(key, value.into_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                follow(receipt, out.clone());
            }
            ConsoleCommand::Del(key) => {
                let receipt = store.delete(key).await.map_err(|e| e.to_string())?;
                follow(receipt, out.clone());
            }
            ConsoleCommand::Get(key) => match store.retrieve(&key) {
                Some(v) => say(v.value.as_deref().map(show_value).unwrap_or_default()),
                None => say(format!("(no value for {key:?})")),
            },
            ConsoleCommand::History(key) => {
                let all = store.retrieve_all(&key);
                if all.is_empty() {
                    say(format!("(no history for {key:?})"));
                }
                for v in &all {
                    say(show_version(v));
                }
            }
            ConsoleCommand::Status { json: true } => {
                let i = self.node.info().await.ok_or("node stopped")?;
                let v = serde_json::json!({
                    "network_id": i.network_id,
                    "difficulty": i.difficulty,
                    "height": i.height,
                    "tip": i.tip.to_string(),
                    "total_work": i.total_work.to_string(),
                    "peers": i.peers,
                    "mempool": i.mempool,
                    "orphans": i.orphans,
                    "side_blocks": i.side_blocks,
                    "mining": i.mining.to_string(),
                    "mining_active": i.mining_active,
                    "hashrate": i.hashrate,
                    "syncing": i.syncing,
                    "sync_target": i.sync_target,
                    "digest": store.digest_async().await.to_string(),
                });
                say(v.to_string());
            }
            ConsoleCommand::Status { json: false } => {
                let i = self.node.info().await.ok_or("node stopped")?;
                say(format!(
                    "network: {} (difficulty {} bits)",
                    i.network_id, i.difficulty
                ));
                say(format!("height: {}", i.height));
                say(format!("tip: {}", i.tip));
                say(format!("total work: {}", i.total_work));
                say(format!("peers: {}", i.peers));
                say(format!(
                    "mempool: {} txs, {} blocks waiting for a parent, {} side blocks",
                    i.mempool, i.orphans, i.side_blocks
                ));
                let state = if i.mining_active { "mining" } else { "idle" };
                say(format!(
                    "mining: {} ({state}, {} H/s)",
                    i.mining, i.hashrate
                ));
                say(format!("syncing: {}", if i.syncing { "yes" } else { "no" }));
                say(format!("digest: {}", store.digest_async().await));
            }
            ConsoleCommand::Digest => {
                let height = self.node.info().await.ok_or("node stopped")?.height;
                say(format!(
                    "digest {} at height {height}",
                    store.digest_async().await
                ));
            }
            ConsoleCommand::Peers => {
                let net = self.net.as_ref().ok_or("no network")?;
                let peers = net.peers().await;
                if peers.is_empty() {
                    say("(no peers)".into());
                }
                for p in peers {
                    let addrs: Vec<String> = p.addrs.iter().map(|a| a.to_string()).collect();
                    let penalty = match p.penalty {
                        0 => String::new(),
                        n => format!(" penalty {n}"),
                    };
                    say(format!("{} {}{penalty}", p.id, addrs.join(" ")));
                }
                for b in net.bans().await {
                    let ips: Vec<String> = b.ips.iter().map(|ip| ip.to_string()).collect();
                    let ips = match ips.is_empty() {
                        true => String::new(),
                        false => format!(" ({})", ips.join(" ")),
                    };
                    say(format!(
                        "banned {}{ips} for {} more s: {}",
                        b.peer,
                        b.remaining.as_secs(),
                        b.reason
                    ));
                }
            }
            ConsoleCommand::Chain(n) => {
                let height = self.node.info().await.ok_or("node stopped")?.height;
                for h in (height.saturating_sub(n.saturating_sub(1))..=height).rev() {
                    if let Some(b) = self.node.block_at(h).await {
                        say(format!(
                            "{h} {} {} txs time {} ({})",
                            b.hash(),
                            b.txs.len(),
                            b.header.time,
                            utc(b.header.time)
                        ));
                    }
                }
            }
            ConsoleCommand::Block(r) => {
                let block = match r {
                    BlockRef::Height(h) => self.node.block_at(h).await,
                    BlockRef::Hash(hash) => self.node.block_by_hash(hash).await,
                };
                let b = block.ok_or("no such block")?;
                say(block_lines(&b));
            }
            ConsoleCommand::Tx(id) => {
                let info = self
                    .node
                    .tx(id)
                    .await
                    .ok_or("no such transaction in the chain or the mempool")?;
                let op = match info.tx.op() {
                    crate::chain::Op::Put { key, value } => {
                        format!("put {key} = {}", show_value(value))
                    }
                    crate::chain::Op::Delete { key } => format!("del {key}"),
                };
                let at = info
                    .height
                    .map_or("pending".to_string(), |h| format!("in block {h}"));
                say(format!(
                    "tx {}: {op} by {}, time {} ({}) ({at})",
                    info.tx.id(),
                    info.tx.author(),
                    info.tx.timestamp(),
                    utc(info.tx.timestamp())
                ));
            }
            ConsoleCommand::Mine(policy) => {
                self.node.set_mining(policy).await;
                say(format!("mining: {policy}"));
            }
            ConsoleCommand::Connect(addr) => {
                let net = self.net.as_ref().ok_or("no network")?;
                net.dial(addr.clone()).await?;
                say(format!("dialing {addr}"));
            }
            ConsoleCommand::Unban(peer) => {
                let net = self.net.as_ref().ok_or("no network")?;
                if !net.unban(peer).await {
                    return Err(format!("{peer} is not banned"));
                }
                say(format!("unbanned {peer}"));
            }
            ConsoleCommand::Attack { request, json } => {
                let status = self
                    .node
                    .attack(request)
                    .await
                    .ok_or("node stopped")?
                    .map_err(|e| e.to_string())?;
                say(attack_line(&status, json));
            }
            ConsoleCommand::Help => say(HELP.into()),
            ConsoleCommand::Quit => return Ok(Flow::Quit),
        }
        Ok(Flow::Continue)
    }
}

/// An attack's status as one line, for people or (`json`) for scripts.
fn attack_line(s: &crate::node::attack::AttackStatus, json: bool) -> String {
    if json {
        return serde_json::to_string(s).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    }
    let state = serde_json::to_value(s.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut line = format!(
        "attack: {state}, key {:?}, victim at height {}, fork at {}: private {} blocks vs honest {} (publishes at {} deep and heavier)",
        s.key.as_deref().unwrap_or("-"),
        s.target_height.map_or("-".into(), |h| h.to_string()),
        s.fork_height.map_or("-".into(), |h| h.to_string()),
        s.private_blocks,
        s.honest_blocks,
        s.confirmations,
    );
    if let Some(reason) = &s.reason {
        line.push_str(&format!("; {reason}"));
    }
    if s.published_tip.is_some() {
        line.push_str("; the victim's write went back to the mempools and will be mined again at a new height");
    }
    line
}

fn block_lines(b: &Arc<crate::chain::Block>) -> String {
    let h = &b.header;
    let mut lines = vec![
        format!("block {} height {}", b.hash(), h.height),
        format!("prev {}", h.prev),
        format!("merkle {}", h.merkle),
        format!(
            "time {} ({}) bits {} nonce {}",
            h.time,
            utc(h.time),
            h.bits,
            h.nonce
        ),
        format!("{} txs", b.txs.len()),
    ];
    for tx in &b.txs {
        lines.push(format!("  {} {}", tx.id(), tx.op().key()));
    }
    lines.join("\n")
}

/// Prints the tx id now and one line per later change of the receipt.
fn follow(mut receipt: crate::node::Receipt, out: Output) {
    let id = receipt.id();
    let _ = out.send(format!("tx {id} pending"));
    tokio::spawn(async move {
        while let Some(status) = receipt.changed().await {
            let line = match &status {
                TxStatus::Pending => format!("tx {} back to pending (reorg)", id.short()),
                TxStatus::Included { height } => {
                    format!("tx {} included in block {height}", id.short())
                }
                TxStatus::Confirmed { height, depth } => {
                    format!(
                        "tx {} confirmed in block {height} ({depth} deep)",
                        id.short()
                    )
                }
                TxStatus::Failed { reason } => format!("tx {} failed: {reason}", id.short()),
            };
            if out.send(line).is_err() || status.is_final() {
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_times_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        // The genesis time, and a leap day.
        assert_eq!(utc(1_767_225_600_000), "2026-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_000 + 1_234), "2000-02-29T00:00:01.234Z");
        assert_eq!(utc(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn shows_binary_values_as_hex() {
        assert_eq!(show_value(b"hello"), "hello");
        assert_eq!(show_value(&[0, 255]), "0x00ff");
        assert_eq!(show_value(b"a\nb"), "0x610a62");
    }
}
