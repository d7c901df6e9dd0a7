//! The console language: a line is split into words (quotes and escapes as a shell
//! would) and parsed into a [`ConsoleCommand`], or refused with a message saying why.

use crate::chain::{BlockHash, Hash, TxId};
use crate::node::attack::{AttackPlan, AttackRequest, Target};
use crate::node::MiningPolicy;
use libp2p::Multiaddr;
use std::time::Duration;

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
    /// `status [--json]`: for people, or one line of JSON for scripts.
    Status {
        /// Whether to answer in JSON.
        json: bool,
    },
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
    /// `attack start|status|stop ...` (experimental, `kvchain node --attacker` only)
    Attack {
        /// What to do.
        request: AttackRequest,
        /// Whether to answer in JSON.
        json: bool,
    },
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
status [--json]       height, tip, difficulty, peers, mempool, mining, sync, digest
digest                hash of the whole index: equal on nodes that agree
peers                 connected peers (with penalty points) and bans in force
unban <peer id>       lift a ban before it runs out
chain [n]             the last n blocks (default 10)
block <height|hash>   one block and its transactions
tx <id>               one transaction and where it is
mine on|off|auto      mining policy (auto: only while writes wait)
connect <multiaddr>   dial a peer
attack ...            experimental, nodes started with --attacker only: see below
help                  this text
quit                  leave the console
attack start <key> <height|next> <value> [--confirmations Z] [--give-up-behind B]
      [--give-up-after SECS]   rewrite the version of <key> at <height> (or the next one
                               included): mine a private branch from its parent, publish
                               it once Z deep and heavier (defaults 1, 0 = never, 600)
attack status [--json]         the attack's state, private and honest blocks
attack stop                    drop the private branch";

/// Parses `attack start|status|stop ...`.
fn parse_attack(args: &[String]) -> Result<ConsoleCommand, String> {
    let usage = "usage: attack start <key> <height|next> <value> [--confirmations Z] \
                 [--give-up-behind B] [--give-up-after SECS] | attack status [--json] | attack stop";
    let number = |flag: &str, v: Option<&String>| -> Result<u64, String> {
        v.and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} needs a whole number"))
    };
    let (request, json) = match args {
        [cmd] if cmd == "status" => (AttackRequest::Status, false),
        [cmd, flag] if cmd == "status" && flag == "--json" => (AttackRequest::Status, true),
        [cmd] if cmd == "stop" => (AttackRequest::Stop, false),
        [cmd, key, target, value, rest @ ..] if cmd == "start" => {
            let target = match target.as_str() {
                "next" => Target::Next,
                h => Target::Height(h.parse().map_err(|_| format!("not a height: {h}"))?),
            };
            let mut plan = AttackPlan {
                key: key.clone(),
                target,
                value: value.clone().into_bytes(),
                confirmations: 1,
                give_up_behind: 0,
                give_up_after: Duration::from_secs(600),
            };
            let mut rest = rest.iter();
            while let Some(flag) = rest.next() {
                let n = number(flag, rest.next())?;
                match flag.as_str() {
                    "--confirmations" => plan.confirmations = n,
                    "--give-up-behind" => plan.give_up_behind = n,
                    "--give-up-after" => plan.give_up_after = Duration::from_secs(n),
                    _ => return Err(usage.into()),
                }
            }
            (AttackRequest::Start(plan), false)
        }
        _ => return Err(usage.into()),
    };
    Ok(ConsoleCommand::Attack { request, json })
}

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
        "status" => match args {
            [] => ConsoleCommand::Status { json: false },
            [flag] if flag == "--json" => ConsoleCommand::Status { json: true },
            _ => return Err("usage: status [--json]".into()),
        },
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
        "attack" => parse_attack(args)?,
        "help" | "?" => ConsoleCommand::Help,
        "quit" | "exit" => ConsoleCommand::Quit,
        other => return Err(format!("unknown command {other:?} (try help)")),
    };
    Ok(Some(cmd))
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
        let Some(ConsoleCommand::Attack {
            request: AttackRequest::Start(plan),
            json: false,
        }) = parse("attack start k next \"v w\" --confirmations 4 --give-up-behind 9").unwrap()
        else {
            panic!("attack start parses");
        };
        assert_eq!(
            (
                plan.target,
                plan.value,
                plan.confirmations,
                plan.give_up_behind
            ),
            (Target::Next, b"v w".to_vec(), 4, 9)
        );
        assert_eq!(
            parse("attack status --json").unwrap(),
            Some(ConsoleCommand::Attack {
                request: AttackRequest::Status,
                json: true
            })
        );
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
            "attack",
            "attack start k",
            "attack start k x v",
            "attack start k 3 v --confirmations",
            "attack start k 3 v --frob 2",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
