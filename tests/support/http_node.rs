//! A real node (memory-transport network included) serving the HTTP API on loopback, and
//! small blocking HTTP helpers run off the async runtime. Include `swarm_net` beside it.
#![allow(dead_code)]

use kvchain::chain::Params;
use kvchain::http::{ApiState, HttpConfig};
use kvchain::node::{MiningPolicy, NodeHandle, NodeMetrics};
use prometheus_client::registry::Registry;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Bound on every HTTP call.
pub const CALL: Duration = Duration::from_secs(60);

/// A node with its API.
pub struct ApiNode {
    pub node: NodeHandle,
    pub url: String,
    /// The API's address, for raw TCP clients.
    pub addr: std::net::SocketAddr,
}

/// Starts a node at `bits` with `confirmations`, mining by `mining`, serving its API.
pub async fn start(bits: u32, confirmations: u64, mining: MiningPolicy) -> ApiNode {
    start_with(bits, confirmations, mining, HttpConfig::default()).await
}

/// [`start`], serving the API with `config`.
pub async fn start_with(
    bits: u32,
    confirmations: u64,
    mining: MiningPolicy,
    config: HttpConfig,
) -> ApiNode {
    let params = Params::new("http-test", bits).unwrap();
    let mut registry = Registry::default();
    let metrics = Arc::new(NodeMetrics::register(&mut registry));
    let node = crate::swarm_net::spawn_with(
        &params,
        mining,
        vec![],
        confirmations,
        Some(&mut registry),
        metrics.clone(),
    )
    .await;
    let state = ApiState {
        node: node.handle.clone(),
        net: Some(node.net),
        registry: Arc::new(registry),
        metrics,
        confirmations,
    };
    let addr = kvchain::http::serve_with("127.0.0.1:0".parse().unwrap(), state, config)
        .await
        .unwrap();
    ApiNode {
        node: node.handle,
        url: format!("http://{addr}"),
        addr,
    }
}

/// An HTTP answer: status, headers we look at, body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(CALL))
            .build(),
    )
}

/// One request (`method` GET, PUT or DELETE), off the async runtime.
pub async fn call(method: &'static str, url: String, body: Vec<u8>, accept_json: bool) -> Answer {
    tokio::task::spawn_blocking(move || {
        let a = agent();
        let mut response = match method {
            "GET" if accept_json => a.get(&url).header("Accept", "application/json").call(),
            "GET" => a.get(&url).call(),
            "PUT" => a.put(&url).send(&body[..]),
            "DELETE" => a.delete(&url).call(),
            other => panic!("method {other}"),
        }
        .unwrap();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        Answer {
            status: response.status().as_u16(),
            headers,
            body: response
                .body_mut()
                .with_config()
                .limit(32 << 20)
                .read_to_vec()
                .unwrap(),
        }
    })
    .await
    .unwrap()
}

/// A Server-Sent Event: its name and its data as JSON.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: Value,
}

/// Opens an SSE stream; events arrive on the returned channel (read on a thread).
pub fn sse(url: String) -> std::sync::mpsc::Receiver<SseEvent> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let a = ureq::Agent::new_with_config(
            ureq::Agent::config_builder().timeout_global(None).build(),
        );
        let Ok(response) = a.get(&url).call() else {
            return;
        };
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        let (mut event, mut data) = (String::new(), String::new());
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim());
            } else if line.is_empty() && !event.is_empty() {
                let data = serde_json::from_str(&data).unwrap_or(Value::Null);
                if tx
                    .send(SseEvent {
                        event: std::mem::take(&mut event),
                        data,
                    })
                    .is_err()
                {
                    return;
                }
            }
            if line.is_empty() {
                data.clear();
            }
        }
    });
    rx
}

/// The next `n` events (bounded wait).
pub fn next_events(rx: &std::sync::mpsc::Receiver<SseEvent>, n: usize) -> Vec<SseEvent> {
    (0..n)
        .map(|i| {
            rx.recv_timeout(CALL)
                .unwrap_or_else(|_| panic!("event {i} of {n} did not come"))
        })
        .collect()
}
