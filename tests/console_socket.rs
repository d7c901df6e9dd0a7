//! The console socket of a real `kvchain node` process: no other user can reach it at
//! any instant, even with a umask of 000 and a data dir open to everyone, and its accept
//! loop outlives running out of file descriptors. Every wait is bounded; every process
//! started here is stopped by its pid.

#[path = "support/procs.rs"]
#[allow(dead_code)]
mod procs;

use procs::{attach, poll, Node, Spec, BIN, SHORT};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

/// A child process killed by pid when dropped.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every mode seen for each entry of `dir` whose name starts with `.console` or is
/// `console.sock`, looked at as often as possible until `stop` is set.
fn watch_modes(dir: PathBuf, stop: Arc<AtomicBool>) -> thread::JoinHandle<BTreeMap<String, u32>> {
    thread::spawn(move || {
        let mut seen: BTreeMap<String, u32> = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) {
            thread::yield_now();
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with(".console") && name != "console.sock" {
                    continue;
                }
                if let Ok(meta) = entry.metadata() {
                    // Keep the widest mode seen for each entry.
                    *seen.entry(name).or_default() |= meta.mode() & 0o777;
                }
            }
        }
        seen
    })
}

#[test]
fn the_socket_is_never_reachable_by_another_user() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    // The worst case: a data dir open to all, and a umask that takes nothing away.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = tmp.path().join("stdout");
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_modes(dir.clone(), stop.clone());
    let child = Command::new("bash")
        .args(["-c", "umask 000; exec \"$0\" \"$@\"", BIN, "node"])
        .arg("--data-dir")
        .arg(&dir)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"])
        .args(["--difficulty", "12", "--network", "console-socket-mode"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(tmp.path().join("stderr")).unwrap())
        .spawn()
        .expect("spawn bash");
    let mut node = Guarded(child);
    // node.json is written once the console is served (`attach::serve` has returned).
    poll("the node's node.json", SHORT, || {
        if let Ok(Some(status)) = node.0.try_wait() {
            panic!("node exited early ({status})");
        }
        match dir.join("node.json").exists() {
            true => Ok(()),
            false => Err(std::fs::read_to_string(&out).unwrap_or_default()),
        }
    });
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().expect("watcher");

    let socket = dir.join("console.sock");
    let mode = std::fs::metadata(&socket).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode right after serve returned");
    for (name, mode) in &seen {
        assert_eq!(mode & 0o077, 0, "{name} was seen with mode {mode:o}");
    }
    // Where the socket was bound: its name as the peer of a connection.
    let stream = UnixStream::connect(&socket).expect("connect to the console");
    let peer = stream.peer_addr().unwrap();
    let bound = peer.as_pathname().expect("a path socket").to_path_buf();
    let staging = bound.parent().unwrap();
    assert_eq!(staging.parent(), Some(dir.as_path()));
    assert!(
        staging
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".console-")),
        "bound at {}, not inside a private staging dir",
        bound.display()
    );
    assert!(!staging.exists(), "the staging dir was removed");
    drop(stream);
    drop(node);
}

/// The file descriptors `pid` has open.
fn open_fds(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect()
}

/// The pid a node wrote in its data dir's lock file.
fn node_pid(dir: &Path) -> u32 {
    let text = std::fs::read_to_string(dir.join("LOCK")).expect("read LOCK");
    text.trim().parse().expect("a pid in LOCK")
}

#[test]
fn the_console_outlives_running_out_of_file_descriptors() {
    let node = Node::start("emfile", &Spec::new("console-emfile"));
    let pid = node_pid(&node.dir);
    assert!(attach(&node.dir, "status").ok().contains("height:"));
    // Room for a few more descriptors only (a new one takes the lowest free number
    // below the limit; any open above it, inherited say, take no room).
    let limit = open_fds(pid).len() + 8;
    let set = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("run prlimit");
    assert!(set.success(), "prlimit failed: {set}");
    // More connections than descriptors: the rest wait in the backlog, and accept fails.
    let socket = node.dir.join("console.sock");
    let clients: Vec<UnixStream> = (0..40)
        .map(|_| UnixStream::connect(&socket).expect("connect"))
        .collect();
    poll("an accept error in the node's log", SHORT, || {
        let log = node.proc.log_text();
        match log.contains("console socket accept failed") {
            true => Ok(()),
            false => Err(log.lines().last().unwrap_or("").to_string()),
        }
    });
    drop(clients);
    // Descriptors are free again: the console answers as before.
    poll("`kvchain attach -c status` to work again", SHORT, || {
        let reply = attach(&node.dir, "status");
        match reply.code {
            Some(0) if reply.out.contains("height:") => Ok(()),
            _ => Err(format!("{reply:?}")),
        }
    });
}
