//! End to end through `testnet/testnet.sh`: a virtual LAN of network namespaces where three
//! nodes find each other by mDNS alone and replicate a write, the cheaper loopback mode
//! with a node killed and restarted, and `up --http -- NODE-ARGS` with HTTP APIs at the
//! URLs `status` prints. All leave no process and no namespace behind, even when an
//! assertion fails (a guard runs `down`). The LAN test needs root and skips without.

#[path = "support/raw_http.rs"]
mod raw_http;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// How long every node may take to see its peers.
const PEER_WAIT: Duration = Duration::from_secs(30);
/// How long a write may take to reach another node.
const REPLICATION_WAIT: Duration = Duration::from_secs(60);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testnet/testnet.sh")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn has_ip_command() -> bool {
    Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether `pid` is a live process (a zombie is dead).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            !matches!(state, None | Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Ten ports per test process from `base + 1`, below the usual ephemeral range (32768 and
/// up); each test of the process takes its own few.
fn port_base() -> u32 {
    20_000 + std::process::id() % 1_200 * 10
}

/// Calls `f` every 100 ms until it gives `Some`, at most `limit`.
fn eventually<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            eprintln!("{what}: after {:.1} s", start.elapsed().as_secs_f64());
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A testnet run by the script in a temp run dir; `down` on drop.
struct Testnet {
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    nodes: usize,
    is_down: bool,
}

impl Testnet {
    /// `testnet.sh up <nodes> <extra>` with `env`; panics (after cleaning up) if it fails.
    fn up(nodes: usize, extra: &[&str], env: Vec<(&'static str, String)>) -> Testnet {
        let dir = tempfile::tempdir().expect("temp dir");
        let net = Testnet {
            dir,
            env,
            nodes,
            is_down: false,
        };
        let n = nodes.to_string();
        let mut args = vec!["up", n.as_str()];
        args.extend_from_slice(extra);
        let started = Instant::now();
        let out = net.run(&args);
        assert!(
            out.status.success(),
            "testnet.sh {args:?} failed ({}):\n{}\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        eprintln!(
            "testnet.sh {args:?} took {:.1} s:\n{}",
            started.elapsed().as_secs_f64(),
            text(&out.stdout)
        );
        net
    }

    fn run_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the script with this testnet's environment and nothing inherited that could
    /// point it elsewhere.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(script());
        cmd.args(args)
            .env_remove("KVCHAIN_TESTNET_BIN")
            .env_remove("KVCHAIN_TESTNET_PORT")
            .env_remove("KVCHAIN_TESTNET_NS")
            .env_remove("KVCHAIN_TESTNET_NETWORK")
            .env("KVCHAIN_TESTNET_DIR", self.run_dir());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().expect("run testnet/testnet.sh")
    }

    /// `send <node> <command>`: whether it succeeded, and its output.
    fn send(&self, node: usize, command: &str) -> (bool, String) {
        let out = self.run(&["send", &node.to_string(), command]);
        (out.status.success(), text(&out.stdout).trim().to_string())
    }

    /// Sends `command` to `node` every 100 ms until `done` holds for its reply, at most
    /// `limit`; returns the last reply.
    fn poll(
        &self,
        node: usize,
        command: &str,
        limit: Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let start = Instant::now();
        loop {
            let (ok, reply) = self.send(node, command);
            if ok && done(&reply) {
                eprintln!(
                    "node {node}: {command:?} -> {reply:?} after {:.1} s",
                    start.elapsed().as_secs_f64()
                );
                return reply;
            }
            assert!(
                start.elapsed() < limit,
                "node {node}: {command:?} still gives {reply:?} after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every node has at least `min` peers, by its `status --json`.
    fn wait_for_peers(&self, min: u64) {
        for i in 1..=self.nodes {
            self.poll(i, "status --json", PEER_WAIT, |s| {
                serde_json::from_str::<Value>(s)
                    .ok()
                    .and_then(|v| v["peers"].as_u64())
                    .is_some_and(|p| p >= min)
            });
        }
    }

    /// Each node's HTTP URL as the script's `status` prints it (`... http URL`).
    fn status_urls(&self) -> Vec<Option<String>> {
        let out = self.run(&["status"]);
        assert!(out.status.success(), "status: {}", text(&out.stderr));
        let status = text(&out.stdout);
        (1..=self.nodes)
            .map(|i| {
                let line = status
                    .lines()
                    .find(|l| l.split_whitespace().take(2).eq(["node", &i.to_string()]))
                    .unwrap_or_else(|| panic!("no line for node {i} in:\n{status}"));
                let mut words = line.split_whitespace().skip_while(|w| *w != "http");
                words.nth(1).map(str::to_string)
            })
            .collect()
    }

    /// The arguments node `i` was started with, as the script saved them.
    fn args(&self, i: usize) -> Vec<String> {
        let path = self.run_dir().join(format!("node{i}.args"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn pid(&self, i: usize) -> u32 {
        let path = self.run_dir().join(format!("node{i}.pid"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .parse()
            .expect("a pid")
    }

    fn pids(&self) -> Vec<u32> {
        (1..=self.nodes).map(|i| self.pid(i)).collect()
    }

    /// `down`, asserting that it worked and that no node process is left.
    fn down(&mut self) {
        let pids = self.pids();
        let out = self.run(&["down"]);
        self.is_down = out.status.success();
        assert!(
            out.status.success(),
            "testnet.sh down failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        for pid in pids {
            assert!(!alive(pid), "node pid {pid} is still alive after down");
        }
        assert!(
            !self.run_dir().exists(),
            "down left the run dir {}",
            self.run_dir().display()
        );
    }

    /// The ends of every node's output and log, for a failing test.
    fn dump_logs(&self) {
        for i in 1..=self.nodes {
            for file in [format!("node{i}.out"), format!("node{i}.log")] {
                let path = self.run_dir().join(&file);
                let Ok(body) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let lines: Vec<&str> = body.lines().collect();
                eprintln!("--- {file} (last 40 lines) ---");
                for line in &lines[lines.len().saturating_sub(40)..] {
                    eprintln!("{line}");
                }
            }
        }
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        if self.is_down {
            return;
        }
        if std::thread::panicking() {
            self.dump_logs();
        }
        let out = self.run(&["down"]);
        if !out.status.success() {
            eprintln!(
                "testnet.sh down failed:\n{}\n{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
    }
}

/// The names of the network namespaces that exist now.
fn namespaces() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn lan_nodes_find_each_other_by_mdns_and_replicate() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    if !has_ip_command() {
        eprintln!("skipped: needs the ip command (iproute2) for network namespaces");
        return;
    }
    let started = Instant::now();
    // Unique per test process, so parallel runs never share a namespace.
    let prefix = format!("kvt{}", std::process::id());
    let ours = |names: Vec<String>| -> Vec<String> {
        names
            .into_iter()
            .filter(|n| n.starts_with(&format!("{prefix}-")))
            .collect()
    };
    assert!(
        ours(namespaces()).is_empty(),
        "namespaces {prefix}-* already exist"
    );
    let mut net = Testnet::up(3, &["--lan"], vec![("KVCHAIN_TESTNET_NS", prefix.clone())]);

    let made = ours(namespaces());
    assert_eq!(
        made.len(),
        4,
        "a bridge namespace and one per node: {made:?}"
    );
    for i in 1..=3 {
        let args = net.args(i);
        assert!(
            !args.iter().any(|a| a == "--bootstrap"),
            "node {i} was given a bootstrap peer: {args:?}"
        );
        assert!(
            !args.iter().any(|a| a == "--no-mdns"),
            "node {i} runs without mDNS: {args:?}"
        );
        let netns = std::fs::read_to_string(net.run_dir().join(format!("node{i}.netns")))
            .expect("node namespace");
        assert_eq!(netns.trim(), format!("{prefix}-n{i}"));
    }

    // Found by mDNS alone: each node sees both others.
    net.wait_for_peers(2);

    let (ok, reply) = net.send(1, "put lan-key lan-value");
    assert!(ok && reply.contains("pending"), "put: {reply}");
    net.poll(3, "get lan-key", REPLICATION_WAIT, |v| v == "lan-value");

    net.down();
    let left = ours(namespaces());
    assert!(left.is_empty(), "down left namespaces {left:?}");
    eprintln!("lan test took {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn loopback_node_killed_and_restarted_catches_up() {
    let started = Instant::now();
    // Ports base+1..base+3.
    let base = port_base();
    let mut net = Testnet::up(3, &[], vec![("KVCHAIN_TESTNET_PORT", base.to_string())]);
    for i in 2..=3 {
        assert!(net.args(i).iter().any(|a| a == "--bootstrap"));
    }

    let (ok, reply) = net.send(1, "put loop-key one");
    assert!(ok && reply.contains("pending"), "put: {reply}");
    net.poll(3, "get loop-key", REPLICATION_WAIT, |v| v == "one");

    let pid2 = net.pid(2);
    let out = net.run(&["kill", "2"]);
    assert!(out.status.success(), "kill 2: {}", text(&out.stderr));
    assert!(!alive(pid2), "node 2 (pid {pid2}) survived kill");
    let (ok, _) = net.send(2, "status");
    assert!(!ok, "a killed node still answers");

    // A write node 2 misses while it is down.
    let (ok, reply) = net.send(1, "put loop-key two");
    assert!(ok, "put: {reply}");
    net.poll(3, "get loop-key", REPLICATION_WAIT, |v| v == "two");

    let out = net.run(&["restart", "2"]);
    assert!(
        out.status.success(),
        "restart 2 failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_ne!(net.pid(2), pid2, "restart recorded the old pid");
    net.poll(2, "get loop-key", REPLICATION_WAIT, |v| v == "two");
    let history = net.poll(2, "history loop-key", REPLICATION_WAIT, |h| {
        h.lines().count() == 2
    });
    assert!(
        history.contains("put one") && history.contains("put two"),
        "{history}"
    );

    net.down();
    eprintln!(
        "loopback test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn http_nodes_answer_at_the_urls_status_prints() {
    let started = Instant::now();
    // p2p ports base+4..base+6, HTTP ports base+7..base+9.
    let (p2p, http) = (port_base() + 3, port_base() + 6);
    let mut net = Testnet::up(
        3,
        &["--http", "--", "--confirmations", "1"],
        vec![
            ("KVCHAIN_TESTNET_PORT", p2p.to_string()),
            ("KVCHAIN_TESTNET_HTTP_PORT", http.to_string()),
        ],
    );
    let urls: Vec<String> = net.status_urls().into_iter().flatten().collect();
    let expected: Vec<String> = (1..=3)
        .map(|i| format!("http://127.0.0.1:{}", http + i))
        .collect();
    assert_eq!(urls, expected, "the URLs status prints");
    let addr = |i: usize| raw_http::url_addr(&urls[i - 1]);
    // The arguments after `--` reached every node.
    for i in 1..=3 {
        let status = raw_http::exchange(addr(i), &raw_http::get("/status", "localhost"));
        assert_eq!(status.status, 200, "{}", status.text());
        assert_eq!(
            status.json()["confirmations"],
            1,
            "node {i}: {}",
            status.text()
        );
    }

    let put = raw_http::put(addr(1), "http-key", "one");
    // 202 pending, or 200 if a block took it before the answer (confirmations 1).
    assert!(matches!(put.status, 200 | 202), "{}", put.text());
    eventually("node 3 reads node 1's write", REPLICATION_WAIT, || {
        (raw_http::get_value(addr(3), "http-key")? == "one").then_some(())
    });

    // restart brings node 2 back on the same HTTP port, with the same arguments.
    let out = net.run(&["kill", "2"]);
    assert!(out.status.success(), "kill 2: {}", text(&out.stderr));
    let out = net.run(&["restart", "2"]);
    assert!(out.status.success(), "restart 2: {}", text(&out.stderr));
    assert_eq!(net.status_urls()[1].as_deref(), Some(expected[1].as_str()));
    eventually("node 2 answers again", REPLICATION_WAIT, || {
        (raw_http::get_value(addr(2), "http-key")? == "one").then_some(())
    });
    let status = raw_http::exchange(addr(2), &raw_http::get("/status", "localhost"));
    assert_eq!(status.json()["confirmations"], 1, "{}", status.text());

    net.down();
    eprintln!("http test took {:.1} s", started.elapsed().as_secs_f64());
}
