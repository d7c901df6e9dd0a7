//! A full disk loses nothing acknowledged: a small tmpfs (root only; skipped without)
//! holds a node's data dir and is filled up.
//!
//! - The block log: a block whose append fails is refused with a storage error, the file
//!   is cut back to its last good frame at once, the tip stays; once space returns the
//!   chain writes the waiting block and takes it, and a reopen cuts nothing.
//! - A real node over HTTP: writes answered 202 until the disk fills, then 507 with a JSON
//!   error while reads are still served; once space returns writes are taken again; after
//!   a kill -9 and a restart every write answered 202 is there and no log was cut.

mod common;
#[path = "support/http_proc.rs"]
mod http_proc;
#[path = "support/raw_http.rs"]
mod raw_http;

use common::{block_on, key, params, put};
use kvchain::chain::state::BLOCK_LOG;
use kvchain::chain::{BlockError, Chain};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a tmpfs of `size` at `at`; `None` (the test is skipped) when not root or the
/// mount is not allowed here.
fn tmpfs(at: &Path, size: &str) -> Option<Tmpfs> {
    std::fs::create_dir_all(at).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "kvchain-test"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return None;
    }
    Some(Tmpfs(at.to_path_buf()))
}

/// Fills the file system holding `dir` with a file `filler`; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    // A 4 MiB tmpfs takes at most 1024 chunks: the bound only guards against a mount
    // that is not what it seems.
    for _ in 0..100_000 {
        if f.write_all(&chunk).and_then(|()| f.flush()).is_err() {
            return path;
        }
    }
    panic!("the file system never filled up");
}

#[test]
fn a_failed_block_append_is_cut_back_and_the_block_taken_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(_mount) = tmpfs(&data, "1m") else {
        return;
    };
    let params = params();
    let (mut chain, _) = Chain::open(params.clone(), &data).unwrap();
    let first = block_on(&params.genesis().header, vec![put(&key(1), "a", "1", 0)], 0);
    chain.process_block(first.clone()).unwrap();
    let filler = fill(&data);
    let log_len = std::fs::metadata(data.join(BLOCK_LOG)).unwrap().len();

    // Big enough not to fit in the slack of the log's last page.
    let txs = (0..60)
        .map(|i| put(&key(2), &format!("big{i}"), &"x".repeat(100), i))
        .collect();
    let second = block_on(&first.header, txs, 0);
    let refused = chain.process_block(second.clone());
    assert!(
        matches!(refused, Err(BlockError::Storage(_))),
        "{refused:?}"
    );
    assert_eq!(chain.tip_hash(), first.hash(), "the tip moved");
    assert_eq!(
        std::fs::metadata(data.join(BLOCK_LOG)).unwrap().len(),
        log_len,
        "the failed append was not cut back"
    );
    assert!(matches!(chain.retry_unwritten(), Some(Err(_))));

    std::fs::remove_file(filler).unwrap();
    let change = chain.retry_unwritten().expect("a block waits").unwrap();
    assert_eq!(change.connected.len(), 1);
    assert_eq!(chain.tip_hash(), second.hash());
    assert_eq!(chain.retry_unwritten().map(|r| r.is_ok()), None);
    drop(chain);

    let (chain, recovery) = Chain::open(params, &data).unwrap();
    assert_eq!(recovery, None, "the reopen cut the log");
    assert_eq!(chain.tip_hash(), second.hash());
    assert_eq!(chain.height(), 2);
}

#[test]
fn writes_fail_with_507_on_a_full_disk_and_none_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(_mount) = tmpfs(&data, "4m") else {
        return;
    };
    let mut node = http_proc::start_node(dir.path(), &["--mine", "off"]).expect("node starts");
    let at = raw_http::url_addr(&node.url);
    let mut acked = Vec::new();
    for i in 0..10 {
        assert_eq!(
            raw_http::put(at, &format!("k{i}"), &format!("v{i}")).status,
            202
        );
        acked.push(i);
    }

    let filler = fill(&data);
    // The journal's last page may still hold a few records; then the disk is full.
    let mut refused = None;
    for i in 10..1_000 {
        let answer = raw_http::put(at, &format!("k{i}"), &format!("v{i}"));
        match answer.status {
            202 => acked.push(i),
            507 => {
                refused = Some(String::from_utf8_lossy(&answer.body).into_owned());
                break;
            }
            other => panic!("write {i}: HTTP {other}"),
        }
    }
    let body = refused.expect("a write on a full disk was refused");
    assert!(body.contains("insufficient_storage"), "{body}");
    // Reads are still served.
    assert_eq!(
        raw_http::get_value(at, "k0"),
        None,
        "nothing is mined with mining off"
    );
    let status = raw_http::exchange(
        at,
        "GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status.status, 200);

    // Space returns: writes are taken again, at once.
    std::fs::remove_file(filler).unwrap();
    for i in 1_000..1_010 {
        assert_eq!(
            raw_http::put(at, &format!("k{i}"), &format!("v{i}")).status,
            202
        );
        acked.push(i);
    }

    node.child.kill().unwrap();
    node.child.wait().unwrap();
    drop(node);
    let node = http_proc::start_node(dir.path(), &["--mine", "auto"]).expect("node restarts");
    let at = raw_http::url_addr(&node.url);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut missing = acked.clone();
    while !missing.is_empty() {
        assert!(
            Instant::now() < deadline,
            "acknowledged writes lost: {missing:?}"
        );
        missing.retain(|i| {
            raw_http::get_value(at, &format!("k{i}")).as_deref() != Some(&format!("v{i}"))
        });
        std::thread::sleep(Duration::from_millis(50));
    }
    let cut: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".cut-"))
        .collect();
    assert!(cut.is_empty(), "a log was cut on restart: {cut:?}");
}
