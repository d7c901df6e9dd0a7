//! The fault-load harness: a [`cluster::Cluster`] of real `kvchain` node processes that a
//! scenario kills, restarts and partitions, a seeded [`workload::Workload`] of HTTP
//! clients writing and reading through every node, and a [`checker`] that verifies at the
//! end that nothing acknowledged as confirmed was lost, that no value appeared that no
//! client wrote, and that every node converged on one chain.
//!
//! Everything here is bounded: every request has a timeout, every wait is a poll with a
//! deadline, every loop has a cap. The seed is printed at start (`faultload seed: N`) and
//! taken back from `KVCHAIN_FAULT_SEED` to replay a run's choices.
#![allow(dead_code)]

pub mod checker;
pub mod cluster;
pub mod netns;
#[path = "../node_info.rs"]
pub mod node_info;
pub mod ports;
pub mod workload;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_kvchain");
/// Pause between two looks in a poll loop.
pub const POLL_EVERY: Duration = Duration::from_millis(100);

/// The run's seed: `KVCHAIN_FAULT_SEED` if set, else one from the clock; printed either way.
pub fn seed() -> u64 {
    let seed = std::env::var("KVCHAIN_FAULT_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            (t.as_nanos() as u64 ^ u64::from(std::process::id())) % 1_000_000_000
        });
    println!("faultload seed: {seed}");
    seed
}

/// A small deterministic generator (splitmix64): one per client, from the seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for stream `stream` of `seed`.
    pub fn new(seed: u64, stream: u64) -> Rng {
        Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A duration between `lo` and `hi`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros() as u64;
        lo + Duration::from_micros(self.below(span + 1))
    }
}

/// Calls `f` every [`POLL_EVERY`] until it returns `Ok`, for at most `timeout`; `Err` with
/// what `f` last said when time runs out.
pub fn poll_until<T>(
    timeout: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let start = Instant::now();
    loop {
        let last = match f() {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if start.elapsed() >= timeout {
            return Err(last);
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// Why a request got no HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetError {
    /// Nobody listens (the node is down).
    Refused,
    /// The connection broke, or no answer came in time: the request may or may not have
    /// taken effect.
    Broken(String),
}

/// An HTTP answer: status code, headers and body.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Header lines as (name, value), in order.
    pub headers: Vec<(String, String)>,
    /// Body, as text.
    pub body: String,
}

impl Answer {
    /// A header's value (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends one HTTP/1.1 request on `stream` (the connection is closed after) and reads the
/// answer, waiting at most `timeout` for it.
pub fn exchange(
    mut stream: TcpStream,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Answer, NetError> {
    let broken = |e: std::io::Error| NetError::Broken(e.to_string());
    stream.set_read_timeout(Some(timeout)).map_err(broken)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(broken)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(broken)?;
    let mut all = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(broken(e)),
        }
        if Instant::now() > deadline {
            return Err(NetError::Broken("answer took too long".into()));
        }
    }
    parse_answer(&all).ok_or_else(|| {
        NetError::Broken(format!(
            "no complete answer: {:?}",
            String::from_utf8_lossy(&all[..all.len().min(200)])
        ))
    })
}

/// Parses a whole HTTP/1.1 answer read to the server's close.
fn parse_answer(bytes: &[u8]) -> Option<Answer> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]);
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let body = &bytes[end + 4..];
    // A body shorter than announced was cut by a dying server: no answer at all.
    if len.is_some_and(|l| body.len() < l) {
        return None;
    }
    let body = &body[..len.unwrap_or(body.len()).min(body.len())];
    Some(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// Classifies a failed connect: refused means the node is not listening.
pub fn connect_error(e: std::io::Error) -> NetError {
    match e.kind() {
        ErrorKind::ConnectionRefused => NetError::Refused,
        _ => NetError::Broken(e.to_string()),
    }
}

/// Percent-encodes a key for a path segment (keys here are plain ASCII words).
pub fn key_path(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
