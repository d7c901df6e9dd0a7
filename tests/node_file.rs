//! A running node describes itself in `node.json` in its data dir (pid, peer id, p2p
//! addresses, HTTP URL, console socket) and answers `kvchain attach -c status --json` in
//! JSON, so scripts and tests never parse its human output; the file goes on shutdown.

#[path = "support/http_proc.rs"]
mod http_proc;

use serde_json::Value;
use std::time::{Duration, Instant};

fn read_json(path: &std::path::Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).expect("node.json is JSON");
        }
        assert!(Instant::now() < deadline, "no {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn node_json_and_status_json_describe_the_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = http_proc::start_node(dir.path(), &["--mine", "off"]).expect("node starts");
    let data = dir.path().join("data");
    let file = read_json(&data.join("node.json"));
    assert_eq!(file["pid"].as_u64(), Some(u64::from(node.child.id())));
    assert_eq!(file["http"].as_str(), Some(node.url.as_str()));
    let peer_id = file["peer_id"].as_str().expect("a peer id");
    let p2p = file["p2p"].as_array().expect("p2p addresses");
    assert!(!p2p.is_empty());
    for a in p2p {
        let a = a.as_str().unwrap();
        assert!(a.starts_with("/ip4/127.0.0.1/tcp/"), "{a}");
        assert!(a.ends_with(&format!("/p2p/{peer_id}")), "{a}");
        assert_eq!(a.matches("/p2p/").count(), 1, "{a}");
    }
    let console = file["console"].as_str().expect("a console path");
    assert!(std::path::Path::new(console).exists());

    let (code, out, err) = http_proc::client(
        &[
            "attach",
            "--data-dir",
            data.to_str().unwrap(),
            "-c",
            "status",
            "--json",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    let status: Value = serde_json::from_str(out.trim()).expect("status --json is JSON");
    assert_eq!(status["height"].as_u64(), Some(0));
    assert_eq!(status["peers"].as_u64(), Some(0));
    assert_eq!(status["mining"].as_str(), Some("off"));
    assert_eq!(status["digest"].as_str().map(str::len), Some(64));

    // A clean shutdown takes the file away: it never describes a node that is gone.
    terminate(node.child.id());
    let status = node.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!data.join("node.json").exists());
}

/// Sends SIGTERM (a clean shutdown) to `pid`.
fn terminate(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -TERM {pid}");
}
