//! `kvchain` processes for the HTTP tests: a node serving its API on loopback, stopped by
//! pid when dropped, and one-shot runs of the command-line client.
#![allow(dead_code)]

use std::time::Duration;

#[path = "node_info.rs"]
pub mod node_info;

/// A `kvchain node` process serving HTTP on loopback; killed by pid when dropped.
pub struct NodeProc {
    pub child: std::process::Child,
    pub url: String,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_kvchain");

/// Starts `kvchain node` with `extra` flags in `dir`; `Err` with its stderr if it exits
/// before serving HTTP.
pub fn start_node(dir: &std::path::Path, extra: &[&str]) -> Result<NodeProc, String> {
    use std::process::{Command, Stdio};
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let child = Command::new(BIN)
        .arg("node")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"])
        .args(["--difficulty", "8", "--http", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("spawn kvchain node");
    let mut node = NodeProc {
        child,
        url: String::new(),
    };
    let pid = node.child.id();
    let child = &mut node.child;
    let info = node_info::wait_node_info(&dir.join("data"), pid, Duration::from_secs(60), || {
        matches!(child.try_wait(), Ok(None))
    })
    .map_err(|e| {
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        match node.child.try_wait() {
            Ok(Some(status)) => format!("{status}: {stderr}"),
            _ => format!("{e}: {stderr}"),
        }
    })?;
    node.url = info.http.ok_or("the node serves no HTTP API")?;
    Ok(node)
}

/// Runs `kvchain ARGS` with `KVCHAIN_TOKEN` set to `env_token` (or unset); exit code,
/// stdout and stderr.
pub fn client(args: &[&str], env_token: Option<&str>) -> (Option<i32>, String, String) {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args).env_remove("KVCHAIN_TOKEN");
    if let Some(t) = env_token {
        cmd.env("KVCHAIN_TOKEN", t);
    }
    // The client bounds itself: --timeout below, plus its own 5 s.
    let out = cmd.output().expect("run kvchain");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}
