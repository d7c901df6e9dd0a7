//! An acknowledged write survives a crash: a node answers 202 to a write only once the
//! write is journaled on disk, so killing it with SIGKILL right after the answers loses
//! none of them, and the restarted node mines every one.

#[path = "support/http_proc.rs"]
mod http_proc;
#[path = "support/raw_http.rs"]
mod raw_http;

use http_proc::start_node;
use raw_http::{get_value as get, put, url_addr as addr};
use std::time::{Duration, Instant};

const WRITES: usize = 40;

#[test]
fn writes_answered_202_survive_a_kill_right_after() {
    let dir = tempfile::tempdir().unwrap();
    // No mining: every write is still pending, held only by the journal, when the node dies.
    let mut node = start_node(dir.path(), &["--mine", "off"]).expect("node starts");
    let at = addr(&node.url);
    for i in 0..WRITES {
        assert_eq!(
            put(at, &format!("k{i}"), &format!("v{i}")).status,
            202,
            "write {i}"
        );
    }
    // SIGKILL at once: no shutdown, no flush.
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    drop(node);

    let node = start_node(dir.path(), &["--mine", "auto"]).expect("node restarts");
    let at = addr(&node.url);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut missing: Vec<usize> = (0..WRITES).collect();
    while !missing.is_empty() {
        assert!(
            Instant::now() < deadline,
            "writes answered 202 were lost after a kill: {missing:?}"
        );
        missing.retain(|i| get(at, &format!("k{i}")).as_deref() != Some(&format!("v{i}")));
        std::thread::sleep(Duration::from_millis(50));
    }
}
