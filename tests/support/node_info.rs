//! Reads what a running node says of itself in `node.json` in its data dir (pid, peer id,
//! p2p addresses, HTTP URL, console socket), so that no test parses its human output.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A running node, as its `node.json` describes it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub pid: u32,
    pub peer_id: String,
    /// Addresses it listens on, each ending in `/p2p/<peer id>`.
    pub p2p: Vec<String>,
    /// Base URL of its HTTP API, if it serves one.
    pub http: Option<String>,
    pub console: PathBuf,
}

impl NodeInfo {
    fn from_json(v: &Value) -> Option<NodeInfo> {
        Some(NodeInfo {
            pid: u32::try_from(v["pid"].as_u64()?).ok()?,
            peer_id: v["peer_id"].as_str()?.to_string(),
            p2p: v["p2p"]
                .as_array()?
                .iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect(),
            http: v["http"].as_str().map(str::to_string),
            console: PathBuf::from(v["console"].as_str()?),
        })
    }
}

/// Waits until the node with process id `pid` has written `data_dir/node.json` (a file a
/// previous run left names another pid and is not taken); `Err` with what was seen when
/// `alive` says the process is gone or `timeout` passes.
pub fn wait_node_info(
    data_dir: &Path,
    pid: u32,
    timeout: Duration,
    mut alive: impl FnMut() -> bool,
) -> Result<NodeInfo, String> {
    let path = data_dir.join("node.json");
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match std::fs::read_to_string(&path) {
            Ok(text) => match serde_json::from_str::<Value>(&text)
                .ok()
                .as_ref()
                .and_then(NodeInfo::from_json)
            {
                Some(info) if info.pid == pid => return Ok(info),
                Some(info) => format!("node.json of pid {}", info.pid),
                None => format!("unreadable node.json: {text}"),
            },
            Err(e) => format!("no node.json ({e})"),
        };
        if !alive() {
            return Err(format!("the node exited; {seen}"));
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?}; {seen}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
