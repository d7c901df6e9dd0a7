//! A raw HTTP/1.1 client over blocking std TCP, for what a normal client will not do:
//! send no Host or a hostile one, promise a body and never send it, dribble a header, or
//! watch for the moment the server closes the connection. Every read is bounded.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Bound on every read: a server that should answer or close does so well within it.
pub const BOUND: Duration = Duration::from_secs(30);

/// An answer: status, head (status line and headers) and body.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Raw {
    /// Parses an answer with its body (everything after the head).
    pub fn parse(bytes: &[u8]) -> Raw {
        let text = String::from_utf8_lossy(bytes);
        let (head, _) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete head in {text:?}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        Raw {
            status,
            head: head.to_string(),
            body: bytes[head.len() + 4..].to_vec(),
        }
    }

    /// A header's value (name in any case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Everything, for failure messages.
    pub fn text(&self) -> String {
        format!(
            "{}\r\n\r\n{}",
            self.head,
            String::from_utf8_lossy(&self.body)
        )
    }
}

/// A connection whose reads give up after [`BOUND`].
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(BOUND)).expect("read timeout");
    s
}

/// `GET path` with `Host: host`, asking the server to close afterwards.
pub fn get(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

/// Reads until the server closes the connection; `None` if it has not after [`BOUND`].
pub fn read_to_close(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(all),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            // A reset is a close too.
            Err(_) => return Some(all),
        }
    }
}

/// Sends `request` on a new connection and reads the answer up to the server's close.
pub fn exchange(addr: SocketAddr, request: &str) -> Raw {
    let mut s = connect(addr);
    s.write_all(request.as_bytes()).expect("send request");
    let bytes = read_to_close(&mut s)
        .unwrap_or_else(|| panic!("no close within {BOUND:?} after {request:?}"));
    Raw::parse(&bytes)
}

/// Reads one answer whose body has a `Content-Length`, leaving the connection open.
pub fn read_answer(s: &mut TcpStream) -> Raw {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = all.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = Raw::parse(&all[..end + 4]);
            let len: usize = head
                .header("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            if all.len() >= end + 4 + len {
                return Raw::parse(&all[..end + 4 + len]);
            }
        }
        match s.read(&mut buf) {
            Ok(0) => panic!("closed mid-answer: {:?}", String::from_utf8_lossy(&all)),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no answer within {BOUND:?}: {e}"),
        }
    }
}

/// Reads until `needle` has arrived; everything read so far, or `None` if the server
/// closed first or [`BOUND`] passed.
pub fn read_until(s: &mut TcpStream, needle: &str) -> Option<String> {
    let start = Instant::now();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < BOUND {
        if String::from_utf8_lossy(&all).contains(needle) {
            return Some(String::from_utf8_lossy(&all).into_owned());
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
    None
}

/// Opens a watch stream and waits for its `ready` event; `Err` with the answer if the
/// server refused it instead.
pub fn open_watch(addr: SocketAddr) -> Result<TcpStream, Raw> {
    let mut s = connect(addr);
    s.write_all(b"GET /watch HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send watch");
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&all).into_owned();
        if text.contains("event: ready") || text.contains("event:ready") {
            return Ok(s);
        }
        if text.starts_with("HTTP/1.1 ") && !text.starts_with("HTTP/1.1 200") {
            // An error answer: its body follows the head.
            if let Some(end) = all.windows(4).position(|w| w == b"\r\n\r\n") {
                let answer = Raw::parse(&all);
                let len: usize = answer
                    .header("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                if all.len() >= end + 4 + len {
                    return Err(answer);
                }
            }
        }
        match s.read(&mut buf) {
            Ok(0) => panic!("watch closed: {text:?}"),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) => panic!("watch: nothing within {BOUND:?}: {e} ({text:?})"),
        }
    }
}

/// `PUT /kvs/KEY` with `value` as the body, on a connection of its own.
pub fn put(addr: SocketAddr, key: &str, value: &str) -> Raw {
    let request = format!(
        "PUT /kvs/{key} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{value}",
        value.len()
    );
    exchange(addr, &request)
}

/// The value `GET /kvs/KEY` answers with 200, as text; `None` for any other answer.
pub fn get_value(addr: SocketAddr, key: &str) -> Option<String> {
    let request =
        format!("GET /kvs/{key} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let answer = exchange(addr, &request);
    (answer.status == 200).then(|| String::from_utf8_lossy(&answer.body).into_owned())
}

/// A node's `http://host:port` URL as a socket address.
pub fn url_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("an http://host:port URL")
}
