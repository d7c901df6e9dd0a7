//! A virtual LAN of network namespaces for partition scenarios (root only): a namespace
//! holding two bridges, `bra` and `brb`, joined by a veth pair; each node in a namespace
//! of its own whose `eth0` is a veth plugged into its half's bridge. Setting the joining
//! pair down cuts the LAN into two halves; setting it up heals it. Nothing is made in the
//! host's namespace: the test reaches each node's HTTP API (on the node namespace's
//! loopback) from a thread that enters that namespace just to open the connection.
//! Dropping the LAN kills whatever still runs in its namespaces and deletes them.

use super::NetError;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

/// `CLONE_NEWNET` from `<sched.h>`.
const CLONE_NEWNET: i32 = 0x4000_0000;

unsafe extern "C" {
    /// glibc's `setns(2)`: moves the calling thread into the namespace behind `fd`.
    fn setns(fd: i32, nstype: i32) -> i32;
}

/// Why a LAN cannot be made here, if it cannot: not root, or no `ip` command.
pub fn unavailable() -> Option<String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Some("needs root (network namespaces, veth pairs, bridges)".into());
    }
    let ip = Command::new("ip").arg("-V").output();
    if !ip.is_ok_and(|o| o.status.success()) {
        return Some("the `ip` command (iproute2) is missing".into());
    }
    None
}

/// Runs `ip ARGS`; panics with its stderr if it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The path of a named namespace.
fn ns_path(ns: &str) -> String {
    format!("/var/run/netns/{ns}")
}

/// The virtual LAN; torn down on drop.
pub struct Lan {
    prefix: String,
    nodes: usize,
    /// Nodes `0..split` are in half A, the rest in half B.
    split: usize,
    subnet: String,
    made: Vec<String>,
}

impl Lan {
    /// Makes a LAN of `nodes` nodes, `0..split` on bridge A and the rest on bridge B.
    pub fn new(nodes: usize, split: usize) -> Lan {
        let pid = std::process::id();
        let mut lan = Lan {
            prefix: format!("kvf{pid}"),
            nodes,
            split,
            subnet: format!("10.66.{}", pid % 250),
            made: Vec::new(),
        };
        let br = lan.bridge_ns();
        lan.add_ns(&br);
        ip(&["-n", &br, "link", "set", "lo", "up"]);
        for b in ["bra", "brb"] {
            ip(&["-n", &br, "link", "add", b, "type", "bridge"]);
            ip(&["-n", &br, "link", "set", b, "up"]);
        }
        ip(&[
            "-n", &br, "link", "add", "cuta", "type", "veth", "peer", "name", "cutb",
        ]);
        ip(&["-n", &br, "link", "set", "cuta", "master", "bra"]);
        ip(&["-n", &br, "link", "set", "cutb", "master", "brb"]);
        lan.heal();
        for i in 0..nodes {
            let ns = lan.node_ns(i);
            lan.add_ns(&ns);
            let veth = format!("v{i}");
            let bridge = if i < split { "bra" } else { "brb" };
            ip(&[
                "-n", &br, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            ip(&["-n", &br, "link", "set", &veth, "master", bridge]);
            ip(&["-n", &br, "link", "set", &veth, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", lan.ip(i)),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        lan
    }

    fn add_ns(&mut self, ns: &str) {
        // A namespace left by a crashed earlier run of the same pid would block this one.
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
        ip(&["netns", "add", ns]);
        self.made.push(ns.to_string());
    }

    fn bridge_ns(&self) -> String {
        format!("{}-br", self.prefix)
    }

    /// The namespace of node `i`.
    pub fn node_ns(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    /// The LAN address of node `i`.
    pub fn ip(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, i + 1)
    }

    /// Which half node `i` is in (0: A, 1: B).
    pub fn half(&self, i: usize) -> usize {
        usize::from(i >= self.split)
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Cuts the LAN into its two halves.
    pub fn partition(&self) {
        let br = self.bridge_ns();
        for l in ["cuta", "cutb"] {
            ip(&["-n", &br, "link", "set", l, "down"]);
        }
        println!(
            "faultload: partitioned {{0..{}}} | {{{}..{}}}",
            self.split, self.split, self.nodes
        );
    }

    /// Joins the two halves again.
    pub fn heal(&self) {
        let br = self.bridge_ns();
        for l in ["cuta", "cutb"] {
            ip(&["-n", &br, "link", "set", l, "up"]);
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            let pids = Command::new("ip").args(["netns", "pids", ns]).output();
            if let Ok(out) = pids {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Makes `cmd` run inside namespace `ns` (entered between fork and exec).
pub fn spawn_in(cmd: &mut Command, ns: &str) {
    let file = std::fs::File::open(ns_path(ns)).expect("open the namespace");
    // SAFETY: setns is async-signal-safe; the fd stays open until exec (it is kept by
    // the closure) and is closed there (O_CLOEXEC).
    unsafe {
        cmd.pre_exec(move || {
            if setns(file.as_raw_fd(), CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A TCP connection to `addr` as seen from namespace `ns`: a short-lived thread enters
/// the namespace and connects; the socket stays in that namespace after it ends.
pub fn connect_in(ns: &str, addr: SocketAddr, timeout: Duration) -> Result<TcpStream, NetError> {
    let path = ns_path(ns);
    let worker = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).map_err(|e| NetError::Broken(e.to_string()))?;
        // SAFETY: a plain syscall on a valid fd; it moves only this (throwaway) thread.
        if unsafe { setns(file.as_raw_fd(), CLONE_NEWNET) } != 0 {
            return Err(NetError::Broken(
                std::io::Error::last_os_error().to_string(),
            ));
        }
        TcpStream::connect_timeout(&addr, timeout).map_err(super::connect_error)
    });
    worker
        .join()
        .unwrap_or_else(|_| Err(NetError::Broken("connect thread panicked".into())))
}
