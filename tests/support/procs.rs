//! Process helpers for the end-to-end tests: nodes run as child processes of the built
//! binary, each in a temp dir of its own, killed (SIGTERM, then SIGKILL) when its guard
//! drops. Every wait here is a bounded poll; a test that fails prints the tail of each
//! node's log and the stdout lines it saw, so that failures can be debugged from CI output.

#[path = "node_info.rs"]
mod node_info;

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_kvchain");
/// Upper bound for anything that crosses the network or waits for mining.
pub const LONG: Duration = Duration::from_secs(60);
/// Upper bound for local things: a reply on stdout, a process exit.
pub const SHORT: Duration = Duration::from_secs(20);
/// Pause between two looks in a poll loop.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// Confirmations every test node is started with.
pub const CONFIRMATIONS: u64 = 2;

/// Calls `f` every [`POLL_EVERY`] until it returns `Ok`, for at most `timeout`; panics with
/// `what` and the last `Err` (what was seen instead) when time runs out.
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        let last = match f() {
            Ok(v) => return v,
            Err(e) => e,
        };
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        thread::sleep(POLL_EVERY);
    }
}

/// What a finished `kvchain attach` printed, and its exit code.
#[derive(Debug)]
pub struct Reply {
    /// Exit code (`None` if killed by a signal), stdout and stderr.
    pub code: Option<i32>,
    pub out: String,
    pub err: String,
}

impl Reply {
    /// Stdout, failing the test unless the command exited 0.
    pub fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "attach failed: {self:?}");
        self.out
    }
}

/// Reads a pipe to its end on a thread of its own (so that the child never blocks on it).
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `kvchain attach --data-dir DIR -c CMD` to its end (killed after [`SHORT`]).
pub fn attach(dir: &Path, cmd: &str) -> Reply {
    run_attach(dir, &["-c", cmd], None)
}

/// Runs an interactive `kvchain attach --data-dir DIR` with `input` on its stdin.
pub fn attach_stdin(dir: &Path, input: &[u8]) -> Reply {
    run_attach(dir, &[], Some(input.to_vec()))
}

fn run_attach(dir: &Path, args: &[&str], input: Option<Vec<u8>>) -> Reply {
    let what = format!("`kvchain attach {:.60}`", args.join(" "));
    let mut child = Command::new(BIN)
        .arg("attach")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kvchain attach");
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // On a thread, ignoring errors: attach may stop reading before the end.
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let status = wait_child(&mut child, SHORT).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not finish within {SHORT:?}");
    });
    Reply {
        code: status.code(),
        out: out.join().expect("stdout reader"),
        err: err.join().expect("stderr reader"),
    }
}

/// Polls `child` until it exits, for at most `timeout`.
fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A running `kvchain` process: stdout read line by line on a thread, stderr in a log
/// file. Dropping it stops the process (SIGTERM, then SIGKILL) and, during a panic,
/// prints what it logged.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Stdout lines taken so far (for failure reports).
    seen: Vec<String>,
    log: PathBuf,
}

impl Proc {
    /// Starts `kvchain ARGS` with stderr appended to `log`; stdin piped or closed.
    pub fn spawn(name: &str, args: &[String], log: &Path, piped_stdin: bool) -> Proc {
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log file");
        let mut child = Command::new(BIN)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(if piped_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn kvchain");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line)
                    .trim_end_matches('\r')
                    .to_string();
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            log: log.to_path_buf(),
        }
    }

    /// Takes stdout lines until one satisfies `pred` and returns it; panics after
    /// `timeout` or if stdout ends first.
    pub fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: no stdout line {what} within {timeout:?}", self.name)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: stdout ended before a line {what}", self.name)
                }
            }
        }
    }

    /// Writes one line (or any bytes ending in one) to the process's stdin.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let stdin = self.stdin.as_mut().expect("stdin is piped and open");
        stdin
            .write_all(bytes.as_ref())
            .and_then(|_| stdin.write_all(b"\n"))
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: write to stdin: {e}", self.name));
    }

    /// Closes stdin: the process sees end of input.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Sends SIGTERM; whether that worked.
    pub fn terminate(&self) -> bool {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Waits for the process to exit; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_child(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("{}: still running after {timeout:?}", self.name))
    }

    /// Everything logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn report(&mut self) {
        self.seen.extend(self.lines.try_iter());
        let log = self.log_text();
        let log: Vec<&str> = log.lines().collect();
        let (name, pid) = (&self.name, self.child.id());
        eprintln!(
            "==== {name} (pid {pid}): stdout ====\n{}",
            last(&self.seen, 40)
        );
        eprintln!(
            "==== {name}: log {} ====\n{}\n",
            self.log.display(),
            last(&log, 60)
        );
    }
}

/// The last `n` lines, joined.
fn last<S: AsRef<str>>(lines: &[S], n: usize) -> String {
    let tail = &lines[lines.len().saturating_sub(n)..];
    tail.iter()
        .map(AsRef::as_ref)
        .collect::<Vec<&str>>()
        .join("\n")
}

impl Drop for Proc {
    fn drop(&mut self) {
        if thread::panicking() {
            self.report();
        }
        // Closing stdin first: a node blocked reading it does not exit on SIGTERM.
        self.close_stdin();
        if self.running() {
            self.terminate();
            if wait_child(&mut self.child, Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// How to start a node.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    /// Network name, one per test so that tests can never meet.
    pub network: String,
    pub bootstrap: Vec<String>,
    /// Addresses to join through; whether stdin stays open (piped) for commands.
    pub stdin: bool,
}

impl Spec {
    /// A node of network `network` with no bootstrap and stdin closed.
    pub fn new(network: &str) -> Spec {
        Spec {
            network: network.to_string(),
            ..Spec::default()
        }
    }

    /// Joins through `addr`.
    pub fn bootstrap(mut self, addr: &str) -> Spec {
        self.bootstrap.push(addr.to_string());
        self
    }

    /// Keeps stdin piped.
    pub fn stdin(mut self) -> Spec {
        self.stdin = true;
        self
    }

    /// The `kvchain node` arguments for data dir `dir`.
    pub fn args(&self, dir: &Path) -> Vec<String> {
        let log = std::env::var("E2E_LOG").unwrap_or_else(|_| "info,kvchain=debug".into());
        let flags = format!(
            "node --listen /ip4/127.0.0.1/tcp/0 --no-mdns --difficulty 12 \
             --confirmations {CONFIRMATIONS} --network {} --log {log}",
            self.network
        );
        let mut args: Vec<String> = flags.split_whitespace().map(String::from).collect();
        args.extend(["--data-dir".into(), dir.display().to_string()]);
        for b in &self.bootstrap {
            args.extend(["--bootstrap".into(), b.clone()]);
        }
        args
    }
}

/// What `status` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub height: u64,
    pub tip: String,
    pub peers: usize,
}

impl Status {
    /// Reads the reply of `status --json`.
    pub fn parse(out: &str) -> Option<Status> {
        let v: serde_json::Value = serde_json::from_str(out.trim()).ok()?;
        Some(Status {
            height: v["height"].as_u64()?,
            tip: v["tip"].as_str()?.to_string(),
            peers: usize::try_from(v["peers"].as_u64()?).ok()?,
        })
    }
}

/// A started node: its process, data dir, peer id and listen address.
pub struct Node {
    /// The process (dropped first: the node stops before its dir goes).
    pub proc: Proc,
    pub dir: PathBuf,
    pub peer_id: String,
    /// Its first p2p address from `node.json`: a full /ip4/../tcp/../p2p/.. address.
    pub addr: String,
    /// The startup `height: N tip T` line.
    pub start_line: String,
    tmp: TempDir,
}

impl Node {
    /// Starts a node in a fresh temp dir and waits until its console is up.
    pub fn start(name: &str, spec: &Spec) -> Node {
        Node::start_in(name, tempfile::tempdir().expect("temp dir"), spec)
    }

    /// Starts a node on the data dir inside `tmp` (a restart if it ran there before).
    pub fn start_in(name: &str, tmp: TempDir, spec: &Spec) -> Node {
        let (dir, log) = (tmp.path().join("data"), tmp.path().join("node.log"));
        let mut proc = Proc::spawn(name, &spec.args(&dir), &log, spec.stdin);
        // What the node is and where it listens, from the file it writes once it serves
        // its console; the startup line is kept for tests of what it prints.
        let pid = proc.child.id();
        let info = node_info::wait_node_info(&dir, pid, SHORT, || proc.running())
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", proc.log_text()));
        let start_line = proc.wait_line("`height: N tip T`", SHORT, |l| l.starts_with("height: "));
        Node {
            peer_id: info.peer_id,
            addr: info.p2p.first().cloned().expect("a p2p address"),
            start_line,
            proc,
            dir,
            tmp,
        }
    }

    /// Stops the node with SIGTERM, checks it exited 0, and hands back its temp dir.
    pub fn stop(self) -> TempDir {
        // `proc` is declared last so that it drops (and reports) before `tmp` goes.
        let tmp = self.tmp;
        let mut proc = self.proc;
        assert!(proc.terminate(), "{}: kill -TERM failed", proc.name);
        let status = proc.wait_exit(SHORT);
        assert!(status.success(), "{}: exit status {status}", proc.name);
        tmp
    }

    /// Runs a console command through `kvchain attach`.
    pub fn attach(&self, cmd: &str) -> Reply {
        attach(&self.dir, cmd)
    }

    /// The node's `status --json`.
    pub fn status(&self) -> Status {
        let out = self.attach("status --json").ok();
        Status::parse(&out).unwrap_or_else(|| panic!("unparsable status: {out}"))
    }

    /// The reply of `get KEY`, trimmed.
    pub fn get(&self, key: &str) -> String {
        self.attach(&format!("get {key}")).ok().trim().to_string()
    }

    /// `put KEY VALUE` through attach; returns the tx id from `tx <id> pending`.
    pub fn put(&self, key: &str, value: &str) -> String {
        tx_id(&self.attach(&format!("put {key} {value}")).ok())
    }

    /// Polls until `get KEY` shows `want` (`None`: no value); returns nothing, panics late.
    pub fn wait_value(&self, key: &str, want: Option<&str>, timeout: Duration) {
        let want = want.map_or(format!("(no value for {key:?})"), str::to_string);
        let what = format!("{}: get {key} == {want}", self.proc.name);
        poll(&what, timeout, || {
            let got = self.get(key);
            if got == want {
                Ok(())
            } else {
                Err(got)
            }
        })
    }

    /// The height of the block holding tx `id`, from `tx ID`; `Err` with the reply if none.
    pub fn tx_height(&self, id: &str) -> Result<u64, String> {
        let out = self.attach(&format!("tx {id}")).out;
        let height = out
            .trim()
            .strip_suffix(')')
            .and_then(|s| s.rsplit_once("(in block "));
        height.and_then(|(_, h)| h.parse().ok()).ok_or(out)
    }

    /// Polls until `tx ID` says the write is in a block; returns its height.
    pub fn wait_included(&self, id: &str, timeout: Duration) -> u64 {
        poll(&format!("tx {id} in a block"), timeout, || {
            self.tx_height(id)
        })
    }

    /// Polls until the node sees at least `n` peers.
    pub fn wait_peers(&self, n: usize, timeout: Duration) {
        poll(&format!("{} peers >= {n}", self.proc.name), timeout, || {
            let s = self.status();
            if s.peers >= n {
                Ok(())
            } else {
                Err(format!("{s:?}"))
            }
        })
    }
}

impl std::ops::Deref for Node {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

/// The tx id of a `tx <id> pending` reply.
pub fn tx_id(reply: &str) -> String {
    reply
        .lines()
        .find_map(|l| l.strip_prefix("tx ")?.strip_suffix(" pending"))
        .unwrap_or_else(|| panic!("no `tx <id> pending` in {reply:?}"))
        .to_string()
}
