//! The interactive console: one command per line, parsed into a [`ConsoleCommand`] and run
//! against the node. The same code serves stdin and every `kvchain attach` session.
//!
//! Replies are lines sent to an [`Output`]; a `put` replies with its tx id at once and
//! later sends one line per change of its receipt, from a task of its own.

use crate::chain::{BlockHash, Hash, TxId, Version};
use crate::net::NetClient;
use crate::node::TxStatus;
use crate::node::{MiningPolicy, NodeHandle};
use libp2p::Multiaddr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Where a console's reply lines go.
pub type Output = mpsc::UnboundedSender<String>;

/// A block named by height or hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockRef {
    /// By height on the canonical chain.
    Height(u64),
    /// By hash (64 hex digits).
    Hash(BlockHash),
}

/// A console command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsoleCommand {
    /// `put <key> <value>`
    Put {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// `get <key>`
    Get(String),
    /// `history <key>`
    History(String),
    /// `del <key>`
    Del(String),
    /// `status`
    Status,
    /// `digest`
    Digest,
    /// `peers`
    Peers,
    /// `chain [n]`
    Chain(u64),
    /// `block <height|hash>`
    Block(BlockRef),
    /// `tx <id>`
    Tx(TxId),
    /// `mine on|off|auto`
    Mine(MiningPolicy),
    /// `connect <multiaddr>`
    Connect(Multiaddr),
    /// `unban <peer id>`
    Unban(libp2p::PeerId),
    /// `help`
    Help,
    /// `quit`
    Quit,
}

/// Help text, one command per line.
pub const HELP: &str = "\
put <key> <value>     write a value (quote values with spaces: put k \"a b\")
get <key>             the latest value
history <key>         every version, oldest first
del <key>             delete a key (a tombstone in its history)
status                height, tip, difficulty, peers, mempool, mining, sync, digest
digest                hash of the whole index: equal on nodes that agree
peers                 connected peers (with penalty points) and bans in force
unban <peer id>       lift a ban before it runs out
chain [n]             the last n blocks (default 10)
block <height|hash>   one block and its transactions
tx <id>               one transaction and where it is
mine on|off|auto      mining policy (auto: only while writes wait)
connect <multiaddr>   dial a peer
help                  this text
quit                  leave the console";

/// Splits a line into words; double or single quotes group words, and inside double quotes
/// a backslash escapes the next character.
pub fn tokenize(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { break };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    c if c == first => {
                        closed = true;
                        break;
                    }
                    '\\' if first == '"' => match chars.next() {
                        Some(e) => word.push(e),
                        None => break,
                    },
                    c => word.push(c),
                }
            }
            if !closed {
                return Err(format!("unclosed quote {first}"));
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err("a closing quote must end the word".into());
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
        }
        words.push(word);
    }
    Ok(words)
}

/// Parses a line; `Ok(None)` for an empty line.
pub fn parse(line: &str) -> Result<Option<ConsoleCommand>, String> {
    let words = tokenize(line)?;
    let Some((name, args)) = words.split_first() else {
        return Ok(None);
    };
    let arity = |n: usize, usage: &str| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("usage: {usage}"))
        }
    };
    let cmd = match name.as_str() {
        "put" => {
            arity(2, "put <key> <value>")?;
            ConsoleCommand::Put {
                key: args[0].clone(),
                value: args[1].clone(),
            }
        }
        "get" => arity(1, "get <key>").map(|_| ConsoleCommand::Get(args[0].clone()))?,
        "history" => arity(1, "history <key>").map(|_| ConsoleCommand::History(args[0].clone()))?,
        "del" | "delete" => arity(1, "del <key>").map(|_| ConsoleCommand::Del(args[0].clone()))?,
        "status" => arity(0, "status").map(|_| ConsoleCommand::Status)?,
        "digest" => arity(0, "digest").map(|_| ConsoleCommand::Digest)?,
        "peers" => arity(0, "peers").map(|_| ConsoleCommand::Peers)?,
        "chain" => match args {
            [] => ConsoleCommand::Chain(10),
            [n] => ConsoleCommand::Chain(n.parse().map_err(|_| format!("not a count: {n}"))?),
            _ => return Err("usage: chain [n]".into()),
        },
        "block" => {
            arity(1, "block <height|hash>")?;
            let a = &args[0];
            match (a.parse::<u64>(), Hash::from_hex(a)) {
                (Ok(h), _) => ConsoleCommand::Block(BlockRef::Height(h)),
                (_, Some(hash)) => ConsoleCommand::Block(BlockRef::Hash(hash)),
                _ => return Err(format!("not a height or a 64-digit hash: {a}")),
            }
        }
        "tx" => {
            arity(1, "tx <id>")?;
            ConsoleCommand::Tx(
                Hash::from_hex(&args[0])
                    .ok_or_else(|| format!("not a 64-digit tx id: {}", args[0]))?,
            )
        }
        "mine" => {
            arity(1, "mine on|off|auto")?;
            ConsoleCommand::Mine(args[0].parse()?)
        }
        "connect" => {
            arity(1, "connect <multiaddr>")?;
            ConsoleCommand::Connect(
                args[0]
                    .parse()
                    .map_err(|e| format!("bad multiaddr {}: {e}", args[0]))?,
            )
        }
        "unban" => {
            arity(1, "unban <peer id>")?;
            ConsoleCommand::Unban(
                args[0]
                    .parse()
                    .map_err(|_| format!("not a peer id: {}", args[0]))?,
            )
        }
        "help" | "?" => ConsoleCommand::Help,
        "quit" | "exit" => ConsoleCommand::Quit,
        other => return Err(format!("unknown command {other:?} (try help)")),
    };
    Ok(Some(cmd))
}

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
            ConsoleCommand::Status => {
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
                say(format!("digest: {}", store.digest()));
            }
            ConsoleCommand::Digest => {
                let height = self.node.info().await.ok_or("node stopped")?.height;
                say(format!("digest {} at height {height}", store.digest()));
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
                            "{h} {} {} txs time {}",
                            b.hash(),
                            b.txs.len(),
                            b.header.time
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
                    "tx {}: {op} by {} ({at})",
                    info.tx.id(),
                    info.tx.author()
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
            ConsoleCommand::Help => say(HELP.into()),
            ConsoleCommand::Quit => return Ok(Flow::Quit),
        }
        Ok(Flow::Continue)
    }
}

fn block_lines(b: &Arc<crate::chain::Block>) -> String {
    let h = &b.header;
    let mut lines = vec![
        format!("block {} height {}", b.hash(), h.height),
        format!("prev {}", h.prev),
        format!("merkle {}", h.merkle),
        format!("time {} bits {} nonce {}", h.time, h.bits, h.nonce),
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
    fn tokenizes_quotes_and_escapes() {
        assert_eq!(tokenize(r#"put k "a b""#).unwrap(), vec!["put", "k", "a b"]);
        assert_eq!(
            tokenize(r#"put 'x y' "say \"hi\"""#).unwrap(),
            vec!["put", "x y", r#"say "hi""#]
        );
        assert_eq!(tokenize("  get   k  ").unwrap(), vec!["get", "k"]);
        assert_eq!(tokenize(r#"put k """#).unwrap(), vec!["put", "k", ""]);
        assert!(tokenize(r#"put k "open"#).is_err());
        assert!(tokenize(r#"put k "a"b"#).is_err());
    }

    #[test]
    fn parses_commands_and_rejects_bad_ones() {
        assert_eq!(
            parse("put k \"v w\"").unwrap(),
            Some(ConsoleCommand::Put {
                key: "k".into(),
                value: "v w".into()
            })
        );
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("chain").unwrap(), Some(ConsoleCommand::Chain(10)));
        assert_eq!(
            parse("block 5").unwrap(),
            Some(ConsoleCommand::Block(BlockRef::Height(5)))
        );
        assert_eq!(
            parse("mine off").unwrap(),
            Some(ConsoleCommand::Mine(MiningPolicy::Off))
        );
        for bad in [
            "put k",
            "get",
            "frobnicate",
            "chain x",
            "block zz",
            "tx 12",
            "mine maybe",
            "connect nope",
            "unban",
            "unban not-a-peer",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shows_binary_values_as_hex() {
        assert_eq!(show_value(b"hello"), "hello");
        assert_eq!(show_value(&[0, 255]), "0x00ff");
        assert_eq!(show_value(b"a\nb"), "0x610a62");
    }
}
