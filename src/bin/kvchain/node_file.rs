//! `node.json` in the data dir: what scripts and tests need to find a running node (its
//! pid, peer id, p2p addresses, HTTP URL and console socket), written once it listens so
//! that nobody has to parse its human output. Written aside and renamed into place, so a
//! reader never sees half a file; removed on a clean shutdown.

use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// File name inside the data dir.
pub const NODE_FILE: &str = "node.json";

/// The file's content.
#[derive(Serialize)]
pub struct NodeFile {
    /// The node's process id.
    pub pid: u32,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Its network name, id and difficulty.
    pub network: String,
    /// The network id (a prefix of the genesis hash).
    pub network_id: String,
    /// Leading zero bits a block hash needs.
    pub difficulty: u32,
    /// Addresses it listens on for peers, each ending in `/p2p/<peer id>`.
    pub p2p: Vec<String>,
    /// Base URL of its HTTP API, if it serves one.
    pub http: Option<String>,
    /// Path of its console socket.
    pub console: PathBuf,
    /// The kvchain version.
    pub version: &'static str,
}

/// Writes `file` into `dir` atomically; returns its path.
pub fn write(dir: &Path, file: &NodeFile) -> Result<PathBuf> {
    let path = dir.join(NODE_FILE);
    let tmp = dir.join(format!("{NODE_FILE}.tmp"));
    let text = serde_json::to_string_pretty(file).context("encode node.json")?;
    std::fs::write(&tmp, text + "\n").with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(path)
}
