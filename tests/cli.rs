//! The command-line client (`kvchain put|get|history|del|status`) against a real node
//! process: output, `--json` answers and exit codes. Each test starts its own node on
//! loopback (port 0, no mDNS, temp data dir); every wait is a bounded poll, and every
//! node is stopped by pid when its guard drops.

#[path = "support/http_proc.rs"]
mod http_proc;

use serde_json::Value;
use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

use http_proc::BIN;
/// Bound on a node start and on any one client command (mining included).
const LIMIT: Duration = Duration::from_secs(60);

/// A `kvchain node` child with stdout and stderr in files of its temp dir; dropping it
/// sends SIGTERM to its pid, then SIGKILL if it has not exited within 5 s.
struct Node {
    proc: http_proc::NodeProc,
    url: String,
    dir: TempDir,
}

impl Node {
    fn start(extra: &[&str]) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let proc = http_proc::start_node(dir.path(), extra).unwrap_or_else(|e| {
            panic!("node exited early: {e}");
        });
        Node {
            url: proc.url.clone(),
            proc,
            dir,
        }
    }

    /// Runs `kvchain ARGS --node URL`.
    fn cli(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--node", &self.url]);
        cli(&all)
    }

    /// `kvchain status --json`.
    fn status(&self) -> Value {
        self.cli(&["status", "--json"]).ok_json()
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name));
        format!(
            "\n--- node stdout ---\n{}\n--- node stderr ---\n{}",
            read("stdout").unwrap_or_default(),
            read("stderr").unwrap_or_default()
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("node at {}:{}", self.url, self.logs());
        }
        let pid = self.proc.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if !matches!(self.proc.child.try_wait(), Ok(None)) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }
}

/// A finished client command.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    out: String,
    err: String,
}

impl Run {
    /// Fails the test unless the command exited with `code`.
    fn expect(self, code: i32) -> Run {
        assert_eq!(self.code, Some(code), "unexpected exit code: {self:#?}");
        self
    }

    /// Stdout of a command that must succeed, parsed as JSON.
    fn ok_json(self) -> Value {
        let run = self.expect(0);
        serde_json::from_str(&run.out)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {run:#?}"))
    }
}

/// Runs `kvchain ARGS` to its end, killed (and the test failed) after [`LIMIT`].
fn cli(args: &[&str]) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kvchain");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let status: Option<ExitStatus> = {
        let start = Instant::now();
        loop {
            match child.try_wait().expect("try_wait") {
                Some(s) => break Some(s),
                None if start.elapsed() >= LIMIT => break None,
                None => thread::sleep(Duration::from_millis(20)),
            }
        }
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("`kvchain {}` still running after {LIMIT:?}", args.join(" "));
    }
    Run {
        code: status.and_then(|s| s.code()),
        out: out.join().expect("stdout reader"),
        err: err.join().expect("stderr reader"),
    }
}

/// A loopback URL nothing listens on: a port the OS gave out, then closed again.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// The fields of a `history` line: `height H tx ID8 by AUTHOR8: put VALUE` or `: del`.
fn history_line(line: &str) -> (u64, String, String, String) {
    let (left, what) = line.split_once(": ").expect("a `: ` in the history line");
    match left.split_whitespace().collect::<Vec<_>>()[..] {
        ["height", h, "tx", tx, "by", author] => (
            h.parse().expect("a numeric height"),
            tx.to_string(),
            author.to_string(),
            what.to_string(),
        ),
        _ => panic!("bad history line {line:?}"),
    }
}

#[test]
fn put_get_history_del_round_trip() {
    let node = Node::start(&["--confirmations", "2"]);

    let put = node
        .cli(&["put", "k", "v1", "--wait", "confirmed"])
        .expect(0);
    assert!(put.out.contains("confirmed in block"), "{put:#?}");
    assert!(put.out.starts_with("tx "), "{put:#?}");
    assert_eq!(node.cli(&["get", "k"]).expect(0).out, "v1\n");

    let got = node.cli(&["get", "k", "--json"]).ok_json();
    assert_eq!(got["key"], "k");
    assert_eq!(got["value"], "v1");
    assert_eq!(got["deleted"], false);
    assert!(got["height"].as_u64().is_some_and(|h| h >= 1), "{got}");
    let tx1 = got["tx"].as_str().expect("tx").to_string();
    assert_eq!(tx1.len(), 64, "{got}");

    // Waiting for inclusion keeps the chain order of the two writes certain.
    let v2 = node
        .cli(&["put", "k", "v2", "--wait", "included", "--json"])
        .ok_json();
    // At least included: a fast miner may already have confirmed it.
    assert!(
        matches!(v2["status"].as_str(), Some("included" | "confirmed")),
        "{v2}"
    );
    assert!(v2["height"].as_u64().is_some(), "{v2}");
    assert!(v2["tx"].as_str().is_some_and(|t| t.len() == 64), "{v2}");

    let del = node
        .cli(&["del", "k", "--wait", "confirmed", "--json"])
        .ok_json();
    assert_eq!(del["status"], "confirmed", "{del}");
    assert!(del["depth"].as_u64().is_some_and(|d| d >= 2), "{del}");
    let del_tx = del["tx"].as_str().expect("tx").to_string();

    let text = node.cli(&["history", "k"]).expect(0).out;
    let lines: Vec<_> = text.lines().map(history_line).collect();
    let whats: Vec<_> = lines.iter().map(|l| l.3.as_str()).collect();
    assert_eq!(whats, ["put v1", "put v2", "del"], "{text}");
    assert!(lines.windows(2).all(|w| w[0].0 < w[1].0), "{text}");
    assert_eq!(lines[0].1, tx1[..8], "{text}");
    assert_eq!(lines[2].1, del_tx[..8], "{text}");
    assert!(lines.iter().all(|l| l.2.len() == 8), "{text}");

    let json = node.cli(&["history", "k", "--json"]).ok_json();
    let versions = json.as_array().expect("history is an array");
    assert_eq!(versions.len(), 3, "{json}");
    let values: Vec<_> = versions.iter().map(|v| v["value"].clone()).collect();
    assert_eq!(
        values,
        [Value::from("v1"), "v2".into(), Value::Null],
        "{json}"
    );
    let deleted: Vec<_> = versions.iter().map(|v| v["deleted"].clone()).collect();
    assert_eq!(deleted, [false, false, true], "{json}");
    assert_eq!(versions[1]["height"], v2["height"], "{json}");
    assert_eq!(versions[2]["tx"], del_tx.as_str(), "{json}");

    let gone = node.cli(&["get", "k"]).expect(1);
    assert_eq!(gone.out, "", "{gone:#?}");
    assert!(gone.err.contains("no value"), "{gone:#?}");
    node.cli(&["get", "k", "--json"]).expect(1);
}

#[test]
fn status_prints_height_and_json() {
    let node = Node::start(&[]);
    let text = node.cli(&["status"]).expect(0).out;
    assert!(
        text.lines().any(|l| l.starts_with("height: ")),
        "no height line in {text:?}"
    );
    let json = node.status();
    assert!(json.is_object(), "{json}");
    assert_eq!(json["height"].as_u64(), Some(0), "{json}");
    assert!(json["mempool"].as_u64().is_some(), "{json}");
}

#[test]
fn unreachable_node_exits_3() {
    let url = closed_url();
    let run = cli(&["get", "k", "--node", &url]).expect(3);
    assert!(run.err.contains("cannot reach"), "{run:#?}");
    assert!(run.err.contains(&url), "{run:#?}");
}

#[test]
fn overlong_key_exits_2() {
    let node = Node::start(&[]);
    let key = "k".repeat(300);
    let run = node.cli(&["put", &key, "v"]).expect(2);
    assert!(
        run.err.contains("key is 300 bytes, over the limit of 256"),
        "{run:#?}"
    );
    // An empty key is refused the same way, for writes and reads alike.
    for args in [
        &["put", "", "v"][..],
        &["get", ""],
        &["del", ""],
        &["history", ""],
    ] {
        let run = node.cli(args).expect(2);
        assert!(run.err.contains("key is empty"), "{args:?}: {run:#?}");
    }
    assert_eq!(node.status()["mempool"], 0);
}

#[test]
fn bad_wait_exits_2() {
    let node = Node::start(&[]);
    let run = node.cli(&["put", "k", "v", "--wait", "maybe"]).expect(2);
    assert!(run.err.contains("--wait maybe"), "{run:#?}");
    node.cli(&["del", "k", "--wait", "maybe"]).expect(2);
    // Refused before anything was sent.
    assert_eq!(node.status()["mempool"], 0);
}

#[test]
fn wait_timeout_exits_4_and_the_write_stays_pending() {
    let node = Node::start(&["--mine", "off"]);
    let args = ["put", "k", "v", "--wait", "confirmed", "--timeout", "1"];
    let run = node.cli(&args).expect(4);
    assert!(run.err.contains("timeout"), "{run:#?}");
    let status = node.status();
    assert_eq!(status["mempool"], 1, "{status}");
    assert_eq!(status["height"], 0, "{status}");
    // Not written yet, so no value.
    node.cli(&["get", "k"]).expect(1);
}

#[test]
fn spaces_and_non_ascii_round_trip() {
    let node = Node::start(&[]);
    // The key too: a space, non-ASCII and a `/` must each stay inside one path segment.
    for (key, value) in [("k", "héllo wörld"), ("clé x/y", "  ünïcode ✓ ")] {
        node.cli(&["put", key, value, "--wait", "included"])
            .expect(0);
        assert_eq!(node.cli(&["get", key]).expect(0).out, format!("{value}\n"));
        let json = node.cli(&["get", key, "--json"]).ok_json();
        assert_eq!(json["key"], key, "{json}");
        assert_eq!(json["value"], value, "{json}");
        assert_eq!(json["value_hex"], hex_of(value.as_bytes()), "{json}");
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
