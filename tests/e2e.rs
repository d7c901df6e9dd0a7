//! End-to-end tests: the built `kvchain` binary run as separate node processes on
//! loopback (ephemeral ports, no mDNS, a network name per test), driven through
//! `kvchain attach`, the console socket and the nodes' stdin.

#[path = "support/procs.rs"]
mod procs;

use procs::{attach_stdin, poll, tx_id, Node, Proc, Spec, CONFIRMATIONS, LONG, SHORT};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// One parsed `history` line: `height H tx ID8 by AUTHOR8: put VALUE` (or `: del`).
#[derive(Debug)]
struct Version {
    height: u64,
    tx: String,
    author: String,
    what: String,
}

fn parse_history(out: &str) -> Result<Vec<Version>, String> {
    out.lines()
        .map(|line| {
            let (left, what) = line.split_once(": ").ok_or(line)?;
            match left.split_whitespace().collect::<Vec<_>>()[..] {
                ["height", h, "tx", tx, "by", author] => Ok(Version {
                    height: h.parse().map_err(|_| line)?,
                    tx: tx.to_string(),
                    author: author.to_string(),
                    what: what.to_string(),
                }),
                _ => Err(line),
            }
        })
        .collect::<Result<_, &str>>()
        .map_err(|line| format!("bad history line {line:?} in {out:?}"))
}

/// Sends raw bytes straight to a node's console socket; returns the reply lines up to the
/// end marker (or the end of the stream) and whether the marker said success.
fn socket_exchange(dir: &Path, bytes: &[u8]) -> (Vec<String>, bool) {
    let mut stream = UnixStream::connect(dir.join("console.sock")).expect("connect socket");
    stream.set_read_timeout(Some(SHORT)).expect("timeout");
    // The node may close the session before taking every byte: the reply tells.
    let _ = stream.write_all(bytes);
    let mut lines = Vec::new();
    for line in BufReader::new(stream).lines() {
        match line
            .expect("read from the console socket (timed out?)")
            .as_str()
        {
            "\u{1e}ok" => return (lines, true),
            "\u{1e}err" => return (lines, false),
            other => lines.push(other.to_string()),
        }
    }
    (lines, false)
}

/// Console lines that must each be refused, with a part of the error they must give.
fn bad_lines() -> Vec<(String, &'static str)> {
    vec![
        ("frobnicate".into(), "unknown command \"frobnicate\""),
        ("put onlykey".into(), "usage: put <key> <value>"),
        ("block zz".into(), "not a height or a 64-digit hash: zz"),
        ("put k \"unclosed".into(), "unclosed quote"),
        (
            format!("put {} v", "k".repeat(300)),
            "key is 300 bytes, over the limit of 256",
        ),
    ]
}

/// Whether a console line says the write `id` is in a block. A receipt reports its
/// latest status, so a fast miner can take it from pending straight to confirmed.
fn in_a_block(line: &str, id: &str) -> bool {
    let id8 = &id[..8];
    line.starts_with(&format!("tx {id8} included in block "))
        || line.starts_with(&format!("tx {id8} confirmed in block "))
}

/// A line over the console's 256 KiB limit.
fn overlong_line() -> String {
    format!("put big {}", "x".repeat(300 * 1024))
}

/// Node 1, and nodes 2 and 3 joined through it, all connected.
fn three_nodes(spec: &Spec) -> (Node, Node, Node) {
    let n1 = Node::start("node1", spec);
    let join = spec.clone().bootstrap(&n1.addr);
    let n2 = Node::start("node2", &join);
    let n3 = Node::start("node3", &join);
    n1.wait_peers(2, LONG);
    n2.wait_peers(1, LONG);
    n3.wait_peers(1, LONG);
    (n1, n2, n3)
}

#[test]
fn three_nodes_replicate_a_write() {
    let spec = Spec::new("e2e-replicate");
    let (n1, n2, n3) = three_nodes(&spec);

    let id = n1.put("greeting", "\"hello world\"");
    n3.wait_value("greeting", Some("hello world"), LONG);
    n1.wait_included(&id, LONG);

    // Node 3 holds the very write where node 1 sees it (polled together: both may still
    // settle a race between blocks mined at once), and confirmed: blocks on top of it.
    let (height, line) = poll("node3 to hold the write where node1 sees it", LONG, || {
        let height = n1.tx_height(&id)?;
        let out = n3.attach("history greeting").ok();
        let want = format!("height {height} tx {}", &id[..8]);
        let line = out.lines().find(|l| l.starts_with(&want));
        line.map(|l| (height, l.to_string())).ok_or(out)
    });
    assert!(height >= 1, "included at height {height}");
    assert!(line.ends_with(": put hello world"), "{line}");
    poll("node3 to confirm the write", LONG, || {
        let s = n3.status();
        if s.height >= height + CONFIRMATIONS - 1 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    });
    n2.wait_value("greeting", Some("hello world"), LONG);
}

#[test]
fn history_shows_every_version_in_order() {
    let spec = Spec::new("e2e-history");
    let writer = Node::start("writer", &spec);
    let reader = Node::start("reader", &spec.clone().bootstrap(&writer.addr));
    writer.wait_peers(1, LONG);
    reader.wait_peers(1, LONG);

    // Each write waits until it is in the chain (visible to `get`) before the next.
    for (cmd, want) in [
        ("put doc v1", Some("v1")),
        ("put doc v2", Some("v2")),
        ("del doc", None),
        ("put doc v3", Some("v3")),
    ] {
        tx_id(&writer.attach(cmd).ok());
        writer.wait_value("doc", want, LONG);
    }

    let versions = poll("4 versions of doc on the reader", LONG, || {
        let out = reader.attach("history doc").ok();
        let versions = parse_history(&out)?;
        if versions.len() == 4 {
            Ok(versions)
        } else {
            Err(out)
        }
    });
    let what: Vec<&str> = versions.iter().map(|v| v.what.as_str()).collect();
    assert_eq!(what, ["put v1", "put v2", "del", "put v3"], "{versions:?}");
    assert!(
        versions.windows(2).all(|w| w[0].height <= w[1].height),
        "heights go down: {versions:?}"
    );
    assert!(
        versions
            .iter()
            .all(|v| v.author == versions[0].author && v.tx.len() == 8),
        "{versions:?}"
    );
    reader.wait_value("doc", Some("v3"), SHORT);
}

#[test]
fn a_late_node_bootstraps_the_whole_chain() {
    let spec = Spec::new("e2e-late");
    let (n1, n2, n3) = three_nodes(&spec);

    // Writes from every node in turn, each waited for, until the chain is 5 blocks high.
    let writers = [&n1, &n2, &n3];
    let mut written = Vec::new();
    while n1.status().height < 5 {
        assert!(written.len() < 10, "10 writes and still below height 5");
        let (key, value) = (
            format!("late{}", written.len()),
            format!("value{}", written.len()),
        );
        let node = writers[written.len() % 3];
        node.wait_included(&node.put(&key, &value), LONG);
        written.push((key, value));
    }

    let n4 = Node::start("node4", &spec.clone().bootstrap(&n2.addr));
    let tip = poll("node4 to reach node1's tip", LONG, || {
        let (s1, s4) = (n1.status(), n4.status());
        if s4.tip == s1.tip && s4.height >= 5 {
            Ok(s4)
        } else {
            Err(format!("node1 {s1:?}, node4 {s4:?}"))
        }
    });
    for (key, value) in &written {
        n4.wait_value(key, Some(value), SHORT);
    }
    let block = n4.attach(&format!("block {}", tip.height)).ok();
    assert!(
        block.starts_with(&format!("block {} height {}", tip.tip, tip.height)),
        "{block}"
    );
}

#[test]
fn bad_console_input_gets_an_error_and_the_node_keeps_serving() {
    let node = Node::start("node", &Spec::new("e2e-bad-attach"));
    for (line, error) in bad_lines() {
        let reply = node.attach(&line);
        assert_eq!(reply.code, Some(1), "{line:.40}: {reply:?}");
        assert!(
            reply.out.starts_with("error: ") && reply.out.contains(error),
            "{line:.40}: want {error:?}, got {reply:?}"
        );
    }
    // A key over the limit cannot be written, but reading it is just a miss.
    let long_key = "k".repeat(300);
    let reply = node.attach(&format!("get {long_key}"));
    assert_eq!(reply.code, Some(0), "{reply:?}");
    assert_eq!(reply.out.trim(), format!("(no value for \"{long_key}\")"));

    // A line over 256 KiB cannot pass through `attach -c` (the kernel caps one argument
    // at 128 KiB), so it goes straight to the console socket: refused, session closed.
    let (lines, ok) = socket_exchange(&node.dir, format!("{}\n", overlong_line()).as_bytes());
    assert!(!ok, "{lines:?}");
    assert_eq!(lines, ["error: line too long"]);
    let (lines, ok) = socket_exchange(&node.dir, b"get big\n");
    assert!(ok && lines == ["(no value for \"big\")"], "{lines:?}");

    // An interactive attach session answers each bad line with an error and goes on.
    let mut input: String = bad_lines().iter().map(|(l, _)| format!("{l}\n")).collect();
    input.push_str("get big\nquit\n");
    let reply = attach_stdin(&node.dir, input.as_bytes());
    assert_eq!(reply.code, Some(0), "{reply:?}");
    let errors: Vec<&str> = reply
        .out
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), bad_lines().len(), "{reply:?}");
    for ((line, error), got) in bad_lines().iter().zip(&errors) {
        assert!(
            got.contains(error),
            "{line:.40}: want {error:?}, got {got:?}"
        );
    }
    assert!(reply.out.ends_with("(no value for \"big\")\n"), "{reply:?}");
    // An over-long line typed into attach fails there (the message blames the node).
    let reply = attach_stdin(&node.dir, format!("{}\n", overlong_line()).as_bytes());
    assert_ne!(reply.code, Some(0), "{reply:?}");
    assert!(reply.err.contains("line too long"), "{reply:?}");

    // And the node still serves.
    tx_id(&node.attach("put after \"still fine\"").ok());
    node.wait_value("after", Some("still fine"), LONG);
    assert!(node.status().height >= 1);
}

#[test]
fn bad_stdin_input_gets_an_error_and_the_node_keeps_serving() {
    let mut node = Node::start("node", &Spec::new("e2e-bad-stdin").stdin());
    for (line, error) in bad_lines() {
        node.send(&line);
        let got = node.wait_line("`error: ...`", SHORT, |l| l.starts_with("error: "));
        assert!(
            got.contains(error),
            "{line:.40}: want {error:?}, got {got:?}"
        );
    }
    node.send(overlong_line());
    node.wait_line("`error: line too long`", SHORT, |l| {
        l == "error: line too long"
    });
    // Whatever the rest of that line gave, the console answers the next command.
    node.send("get sentinel");
    node.wait_line("the reply to get sentinel", SHORT, |l| {
        l == "(no value for \"sentinel\")"
    });

    assert!(node.running(), "the node died on bad input");
    node.send("put s t");
    let pending = node.wait_line("`tx <id> pending`", SHORT, |l| l.ends_with(" pending"));
    let id = tx_id(&pending);
    node.wait_line("the write's inclusion", LONG, |l| in_a_block(l, &id));
    node.wait_value("s", Some("t"), SHORT);
}

/// The bytes past the limit of an over-long stdin line are run as a command of their own:
/// here ` status` (after exactly MAX_LINE + 1 bytes) prints a status. Over the socket the
/// session is closed instead, so nothing runs there.
#[test]

fn the_tail_of_an_overlong_stdin_line_does_not_run() {
    let mut node = Node::start("node", &Spec::new("e2e-tail").stdin());
    node.send(format!("{} status", "x".repeat(256 * 1024 + 1)));
    node.wait_line("`error: line too long`", SHORT, |l| {
        l == "error: line too long"
    });
    node.send("get sentinel");
    let next = node.wait_line("the next reply", SHORT, |_| true);
    assert_eq!(
        next, "(no value for \"sentinel\")",
        "the tail ran as a command"
    );
}

#[test]
fn piped_stdin_console_and_eof() {
    let mut node = Node::start("node", &Spec::new("e2e-stdin").stdin());
    node.send("put a b");
    let id = tx_id(&node.wait_line("`tx <id> pending`", SHORT, |l| l.ends_with(" pending")));
    node.wait_line("the write's inclusion", LONG, |l| in_a_block(l, &id));
    node.send("get a");
    node.wait_line("the value of a", SHORT, |l| l == "b");

    // End of input leaves the node running and serving the socket.
    node.close_stdin();
    assert_eq!(node.get("a"), "b");
    assert!(node.status().height >= 1);
    assert!(node.running(), "the node stopped at end of stdin");

    assert!(node.terminate());
    let status = node.wait_exit(SHORT);
    assert!(status.success(), "exit status {status}");
    node.wait_line("the shutdown line", SHORT, |l| {
        l == "terminated; shutting down"
    });
    let socket = node.dir.join("console.sock");
    assert!(!socket.exists(), "{} is left behind", socket.display());
}

#[test]
fn restart_keeps_peer_id_and_chain() {
    let spec = Spec::new("e2e-restart").stdin();
    let mut node = Node::start("first run", &spec);
    node.send("put kept \"across restarts\"");
    let id = tx_id(&node.wait_line("`tx <id> pending`", SHORT, |l| l.ends_with(" pending")));
    let confirmed = format!("tx {} confirmed in block ", &id[..8]);
    node.wait_line("the write's confirmation", LONG, |l| {
        l.starts_with(&confirmed)
    });
    // Stop mining and let the chain settle, so that the tip read here is the one saved.
    node.attach("mine off").ok();
    let mut last = node.status();
    let before = poll("a settled chain", SHORT, || {
        let s = node.status();
        let settled = s == last;
        last = s.clone();
        if settled {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    });

    // A second node on the same data dir is refused while the first runs.
    let second_log = node.dir.with_file_name("second.log");
    let mut second = Proc::spawn("second", &spec.args(&node.dir), &second_log, false);
    let status = second.wait_exit(SHORT);
    assert!(!status.success(), "a second node ran on the same data dir");
    let log = second.log_text();
    assert!(
        log.contains("is in use") && log.contains(&node.dir.display().to_string()),
        "{log}"
    );
    assert_eq!(
        node.get("kept"),
        "across restarts",
        "the first node was disturbed"
    );

    let peer_id = node.peer_id.clone();
    // End stdin first: with stdin open SIGTERM does not end the process (see the ignored
    // test `sigterm_stops_a_node_whose_stdin_stays_open`).
    node.close_stdin();
    let tmp = node.stop();
    let node = Node::start_in("second run", tmp, &spec);
    assert_eq!(node.peer_id, peer_id);
    assert_eq!(
        node.start_line,
        format!("height: {} tip {}", before.height, before.tip)
    );
    let after = node.status();
    assert_eq!((after.height, after.tip), (before.height, before.tip));
    assert_eq!(node.get("kept"), "across restarts");
}

/// SIGTERM (or SIGINT, Ctrl-C at a terminal) while stdin is open and idle: the node
/// prints `terminated; shutting down` and removes its socket, but the process only exits
/// once stdin yields a line or ends. Tokio's stdin reads on a blocking thread that cannot
/// be cancelled, and dropping the runtime waits for it.
#[test]

fn sigterm_stops_a_node_whose_stdin_stays_open() {
    let mut node = Node::start("node", &Spec::new("e2e-sigterm").stdin());
    assert!(node.terminate());
    node.wait_line("the shutdown line", SHORT, |l| {
        l == "terminated; shutting down"
    });
    let status = node.wait_exit(SHORT);
    assert!(status.success(), "exit status {status}");
}

#[test]
fn quit_on_stdin_stops_the_node() {
    let mut node = Node::start("node", &Spec::new("e2e-quit").stdin());
    node.send("quit");
    let status = node.wait_exit(SHORT);
    assert!(status.success(), "exit status {status}");
    node.wait_line("the shutdown line", SHORT, |l| l == "shutting down");
    assert!(!node.dir.join("console.sock").exists());
    let reply = node.attach("status");
    assert_eq!(reply.code, Some(2), "{reply:?}");
    assert!(reply.err.contains("no node is running"), "{reply:?}");
}
