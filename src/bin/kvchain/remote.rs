//! `kvchain put|get|history|del|status --node URL`: the command-line client of a node's
//! HTTP API. Human output by default, `--json` for scripts.
//!
//! Exit codes: 0 done; 1 the key has no value, or the node refused the write; 2 bad input
//! or an error answer (a missing or wrong token included); 3 the node could not be
//! reached; 4 a `--wait` ran out of time.

use kvchain::http::client::{Client, ClientError};
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

/// A client call, as typed on the command line.
pub enum Remote {
    /// Write a value.
    Put {
        key: String,
        value: String,
        wait: Option<String>,
    },
    /// Read the latest value.
    Get { key: String },
    /// Every version of a key.
    History { key: String },
    /// Delete a key.
    Del { key: String, wait: Option<String> },
    /// The node's status.
    Status,
}

/// Runs `call` against the node at `node`, sending `token` with writes.
pub fn run(
    node: &str,
    call: Remote,
    json: bool,
    timeout: Duration,
    token: Option<String>,
) -> ExitCode {
    // The HTTP call itself gets a little longer than the wait it asks the node for.
    let client = Client::new(node, timeout + Duration::from_secs(5)).with_token(token);
    let result = match call {
        Remote::Put { key, value, wait } => check_wait(&wait)
            .and_then(|_| client.put(&key, value.as_bytes(), wait.as_deref(), Some(timeout)))
            .map(|v| print_write(&v, json)),
        Remote::Del { key, wait } => check_wait(&wait)
            .and_then(|_| client.delete(&key, wait.as_deref(), Some(timeout)))
            .map(|v| print_write(&v, json)),
        Remote::Get { key } => client.get(&key).map(|v| match v {
            Some(v) if json => print_json(&v),
            Some(v) => {
                println!("{}", show(&v));
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("(no value for {key:?})");
                ExitCode::from(1)
            }
        }),
        Remote::History { key } => client.history(&key).map(|list| {
            if json {
                return print_json(&Value::Array(list));
            }
            if list.is_empty() {
                eprintln!("(no history for {key:?})");
            }
            for v in &list {
                let what = if v["deleted"].as_bool() == Some(true) {
                    "del".to_string()
                } else {
                    format!("put {}", show(v))
                };
                let tx = v["tx"].as_str().unwrap_or("").get(..8).unwrap_or("");
                let author = v["author"].as_str().unwrap_or("").get(..8).unwrap_or("");
                println!("height {} tx {tx} by {author}: {what}", v["height"]);
            }
            ExitCode::SUCCESS
        }),
        Remote::Status => client.status().map(|v| {
            if json {
                return print_json(&v);
            }
            if let Some(map) = v.as_object() {
                for (k, val) in map {
                    println!(
                        "{k}: {}",
                        val.as_str().map_or_else(|| val.to_string(), str::to_string)
                    );
                }
            }
            ExitCode::SUCCESS
        }),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(match &e {
            ClientError::Unreachable { .. } => 3,
            ClientError::Invalid(_) => 2,
            ClientError::Api { code, .. } if code == "timeout" => 4,
            ClientError::Api { code, .. } if code == "rejected" => 1,
            ClientError::Api { .. } => 2,
        })
    })
}

fn check_wait(wait: &Option<String>) -> Result<(), ClientError> {
    match wait.as_deref() {
        None | Some("included") | Some("confirmed") => Ok(()),
        Some(other) => Err(ClientError::Api {
            status: 0,
            code: "bad_wait".into(),
            message: format!("--wait {other}: use included or confirmed"),
        }),
    }
}

fn show(v: &Value) -> String {
    match v["value"].as_str() {
        Some(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => format!("0x{}", v["value_hex"].as_str().unwrap_or("")),
    }
}

fn print_json(v: &Value) -> ExitCode {
    println!("{v}");
    ExitCode::SUCCESS
}

fn print_write(v: &Value, json: bool) -> ExitCode {
    if json {
        return print_json(v);
    }
    let tx = v["tx"].as_str().unwrap_or("?");
    match v["status"].as_str() {
        Some("included") => println!("tx {tx} included in block {}", v["height"]),
        Some("confirmed") => println!(
            "tx {tx} confirmed in block {} ({} deep)",
            v["height"], v["depth"]
        ),
        _ => println!("tx {tx} pending"),
    }
    ExitCode::SUCCESS
}
