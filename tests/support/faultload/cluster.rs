//! A cluster of real `kvchain node` processes, each on its own data dir and fixed ports
//! (so that a restart comes back at the same address with the same peer id), started,
//! killed with SIGKILL and restarted by the scenarios. Dropping the cluster kills every
//! process it started, by pid, even when the test panics; a panicking test keeps the temp
//! dir (its path is printed; `KVCHAIN_FAULT_KEEP=1` keeps it always) and prints the tail
//! of each node's log.

use super::netns::Lan;
use super::ports::free_port;
use super::{connect_error, exchange, Answer, NetError, BIN};
use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest wait for a started node to serve HTTP.
const START_WAIT: Duration = Duration::from_secs(60);
/// Starts a node gets on fresh ports when another process took its own first.
const PORT_TRIES: u32 = 3;
/// What a node prints when its port is taken (`src/net/transport.rs`, the HTTP bind).
const PORT_TAKEN: &str = "already in use";

/// How to run the cluster.
#[derive(Clone, Debug)]
pub struct Options {
    /// Test name: part of the network name and of the temp dir's.
    pub name: String,
    /// Number of nodes.
    pub nodes: usize,
    /// Leading zero bits of every block hash.
    pub difficulty: u32,
    /// Blocks after which a write is confirmed.
    pub confirmations: u64,
    /// Mining policy of each node (`auto`, `always`, `off`); missing ones are `auto`.
    pub mine: Vec<String>,
}

impl Options {
    /// `nodes` nodes at `difficulty`, 2 confirmations, all mining `auto`.
    pub fn new(name: &str, nodes: usize, difficulty: u32) -> Options {
        Options {
            name: name.to_string(),
            nodes,
            difficulty,
            confirmations: 2,
            mine: Vec::new(),
        }
    }
}

/// Where the clients reach each node's HTTP API; cheap to clone into client threads.
#[derive(Clone, Debug)]
pub struct Endpoints {
    addrs: Vec<SocketAddr>,
    /// The namespace each node lives in, when the cluster runs on a virtual LAN.
    netns: Option<Arc<Vec<String>>>,
}

impl Endpoints {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// A connection to node `i`'s HTTP API.
    pub fn connect(&self, i: usize) -> Result<TcpStream, NetError> {
        let timeout = Duration::from_secs(3);
        match &self.netns {
            None => TcpStream::connect_timeout(&self.addrs[i], timeout).map_err(connect_error),
            Some(ns) => super::netns::connect_in(&ns[i], self.addrs[i], timeout),
        }
    }

    /// One request to node `i`, its answer awaited at most `timeout`.
    pub fn request(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Answer, NetError> {
        exchange(self.connect(i)?, method, path, body, timeout)
    }

    /// Node `i`'s `/status` as JSON.
    pub fn status(&self, i: usize) -> Result<serde_json::Value, NetError> {
        let a = self.request(i, "GET", "/status", b"", Duration::from_secs(10))?;
        match a.status {
            200 => Ok(a.json()),
            s => Err(NetError::Broken(format!("status {s}: {}", a.body))),
        }
    }

    /// Node `i`'s height, if it answers.
    pub fn height(&self, i: usize) -> Option<u64> {
        self.status(i).ok()?["height"].as_u64()
    }
}

struct Slot {
    dir: PathBuf,
    listen: String,
    http: SocketAddr,
    peer_id: Option<String>,
    child: Option<Child>,
    starts: u32,
}

impl Slot {
    fn stdout(&self) -> PathBuf {
        self.dir.join("stdout")
    }
    fn log(&self) -> PathBuf {
        self.dir.join("node.log")
    }
}

/// Real node processes on loopback (or on a virtual [`Lan`]), killed by pid on drop.
pub struct Cluster {
    /// How the cluster runs.
    pub opts: Options,
    network: String,
    slots: Vec<Slot>,
    lan: Option<Lan>,
    tmp: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Makes the cluster's dirs and ports and starts every node, each bootstrapping
    /// through the ones started before it; on a [`Lan`] when `lan` is given.
    pub fn start(opts: Options, lan: Option<Lan>) -> Cluster {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("faultload-{}-", opts.name))
            .tempdir()
            .expect("temp dir");
        let slots = (0..opts.nodes)
            .map(|i| {
                let dir = tmp.path().join(format!("n{i}"));
                std::fs::create_dir_all(&dir).expect("node dir");
                let (listen, http) = match &lan {
                    Some(lan) => (
                        format!("/ip4/{}/tcp/4100", lan.ip(i)),
                        "127.0.0.1:8645".parse().unwrap(),
                    ),
                    None => (
                        format!("/ip4/127.0.0.1/tcp/{}", free_port()),
                        SocketAddr::from(([127, 0, 0, 1], free_port())),
                    ),
                };
                Slot {
                    dir,
                    listen,
                    http,
                    peer_id: None,
                    child: None,
                    starts: 0,
                }
            })
            .collect();
        let network = format!("fault-{}-{}", opts.name, std::process::id());
        let mut cluster = Cluster {
            opts,
            network,
            slots,
            lan,
            tmp: Some(tmp),
        };
        for i in 0..cluster.slots.len() {
            cluster.first_start(i);
        }
        cluster
    }

    /// Starts node `i` for the first time. On loopback, if another process took one of
    /// its ports since they were chosen (no peer or client knows them yet), it gets new
    /// ones and starts again, up to [`PORT_TRIES`] times.
    fn first_start(&mut self, i: usize) {
        for _ in 1..PORT_TRIES {
            match self.launch(i) {
                Ok(()) => return,
                Err(e) if self.lan.is_none() && e.contains(PORT_TAKEN) => {
                    println!("faultload: node {i}'s port was taken; new ports");
                    let s = &mut self.slots[i];
                    s.listen = format!("/ip4/127.0.0.1/tcp/{}", free_port());
                    s.http = SocketAddr::from(([127, 0, 0, 1], free_port()));
                }
                Err(e) => panic!("{e}"),
            }
        }
        self.restart(i)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The temp dir holding every node's dir (and the history dump on failure).
    pub fn dir(&self) -> &Path {
        self.tmp.as_ref().expect("temp dir").path()
    }

    /// The virtual LAN, if the cluster runs on one.
    pub fn lan(&self) -> Option<&Lan> {
        self.lan.as_ref()
    }

    /// Where clients reach the nodes.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            addrs: self.slots.iter().map(|s| s.http).collect(),
            netns: self
                .lan
                .as_ref()
                .map(|l| Arc::new((0..self.len()).map(|i| l.node_ns(i)).collect())),
        }
    }

    /// Node `i`'s data dir.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.slots[i].dir.join("data")
    }

    /// Node `i`'s pid while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.slots[i].child.as_ref().map(Child::id)
    }

    /// Whether node `i` is running.
    pub fn is_up(&self, i: usize) -> bool {
        self.slots[i].child.is_some()
    }

    /// The full p2p address of node `i` (known once it started once).
    fn p2p_addr(&self, i: usize) -> Option<String> {
        let s = &self.slots[i];
        Some(format!("{}/p2p/{}", s.listen, s.peer_id.as_ref()?))
    }

    /// Kills node `i` with SIGKILL (no shutdown, no flush) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.slots[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
            println!("faultload: killed node {i} (pid {})", child.id());
        }
    }

    /// Sends SIGKILL to node `i` the fastest way there is (for kills aimed at a moment),
    /// then reaps it.
    pub fn kill_now(&mut self, i: usize) {
        self.kill(i)
    }

    /// Starts node `i` on its data dir and ports (a restart if it ran before), joining
    /// through every other node whose address is known; waits until it serves HTTP.
    pub fn restart(&mut self, i: usize) {
        if let Err(e) = self.launch(i) {
            panic!("{e}");
        }
    }

    /// [`Cluster::restart`], with what the node printed as the error if it does not
    /// come up.
    fn launch(&mut self, i: usize) -> Result<(), String> {
        self.kill(i);
        let bootstrap: Vec<String> = (0..self.len())
            .filter(|&j| j != i)
            .filter_map(|j| self.p2p_addr(j))
            .collect();
        let mine = self
            .opts
            .mine
            .get(i)
            .cloned()
            .unwrap_or_else(|| "auto".into());
        let s = &self.slots[i];
        let mut args: Vec<String> = vec![
            "node".into(),
            "--data-dir".into(),
            s.dir.join("data").display().to_string(),
            "--network".into(),
            self.network.clone(),
            "--difficulty".into(),
            self.opts.difficulty.to_string(),
            "--confirmations".into(),
            self.opts.confirmations.to_string(),
            "--listen".into(),
            s.listen.clone(),
            "--no-mdns".into(),
            "--http".into(),
            s.http.to_string(),
            "--mine".into(),
            mine,
            "--log".into(),
            "info".into(),
        ];
        for b in bootstrap {
            args.extend(["--bootstrap".into(), b]);
        }
        let from = std::fs::metadata(s.stdout()).map_or(0, |m| m.len() as usize);
        let append = |p: &Path| -> File {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("open node output")
        };
        let mut cmd = Command::new(BIN);
        cmd.args(&args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(append(&s.stdout()))
            .stderr(append(&s.log()));
        if let Some(lan) = &self.lan {
            super::netns::spawn_in(&mut cmd, &lan.node_ns(i));
        }
        let child = cmd.spawn().expect("spawn kvchain node");
        let pid = child.id();
        self.slots[i].child = Some(child);
        self.slots[i].starts += 1;
        let start = Instant::now();
        // The node writes node.json once it serves HTTP and its console.
        let data = self.data_dir(i);
        let child = self.slots[i].child.as_mut().expect("child");
        let ready = super::node_info::wait_node_info(&data, pid, START_WAIT, || {
            matches!(child.try_wait(), Ok(None))
        });
        let info = match ready {
            Ok(info) => info,
            Err(e) => {
                let text = std::fs::read(self.slots[i].stdout()).unwrap_or_default();
                let text = String::from_utf8_lossy(&text[from.min(text.len())..]).into_owned();
                self.kill(i);
                return Err(format!(
                    "node {i} is not up: {e}\n{text}\n{}",
                    tail(&self.slots[i].log(), 30)
                ));
            }
        };
        self.slots[i].peer_id = Some(info.peer_id);
        let n = self.slots[i].starts;
        println!(
            "faultload: node {i} up (start {n}, pid {pid}) after {:.1} s",
            start.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Stdout lines of node `i` since it was first started (every start appends).
    pub fn stdout_lines(&self, i: usize) -> Vec<String> {
        let text = std::fs::read(self.slots[i].stdout()).unwrap_or_default();
        String::from_utf8_lossy(&text)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Lines of node `i`'s log (stderr) that contain `needle`.
    pub fn log_lines(&self, i: usize, needle: &str) -> Vec<String> {
        let text = std::fs::read(self.slots[i].log()).unwrap_or_default();
        String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Runs console command `cmd` on node `i` through `kvchain attach` (at most 20 s).
    pub fn console(&self, i: usize, cmd: &str) -> Result<String, String> {
        let mut child = Command::new(BIN)
            .arg("attach")
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .args(["-c", cmd])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().map_err(|e| e.to_string())?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("node {i}: `{cmd}` did not finish in 20 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "node {i}: `{cmd}`: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Sets every running node to mine only while writes wait, so that the chain stops
    /// growing once the load ends and the nodes can be seen to agree; later restarts keep
    /// that policy.
    pub fn quiesce(&mut self) {
        self.opts.mine.clear();
        for i in 0..self.len() {
            if self.is_up(i) {
                self.console(i, "mine auto")
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }

    /// Kills every running node.
    pub fn kill_all(&mut self) {
        for i in 0..self.len() {
            self.kill(i);
        }
    }
}

/// The last `n` lines of the file at `path`.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in &mut self.slots {
            if let Some(mut child) = s.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let keep = std::env::var_os("KVCHAIN_FAULT_KEEP").is_some();
        if std::thread::panicking() {
            for (i, s) in self.slots.iter().enumerate() {
                eprintln!("==== node {i} log {} ====", s.log().display());
                eprintln!("{}", tail(&s.log(), 25));
            }
        }
        if std::thread::panicking() || keep {
            if let Some(tmp) = self.tmp.take() {
                eprintln!("faultload: kept the cluster dir {}", tmp.keep().display());
            }
        }
        // The LAN (if any) is torn down when its field drops, after every process died.
    }
}
