//! One keep-alive HTTP/1.1 connection of the load generator, written straight on a TCP
//! stream: a request is one `write`, an answer is read into a buffer the connection
//! keeps. No client library and no task per connection: the load generator shares the
//! machine with the nodes it measures, so every microsecond it spends per write is taken
//! from them (it reports the CPU it used beside its figures).

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest header block of an answer.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body of an answer (a block of 1 MiB as JSON fits many times over).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Where a node's API is: the address to connect to and the `Host` header to send.
#[derive(Clone, Debug)]
pub struct Target {
    /// The base URL as given, for reports.
    pub url: String,
    /// `host:port`.
    pub authority: String,
}

impl Target {
    /// Parses an `http://host:port` base URL (a trailing `/` is allowed, a path is not).
    pub fn parse(url: &str) -> Result<Target> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("{url}: the load generator speaks plain http:// only"))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            bail!("{url}: give the API's base URL, like http://127.0.0.1:8645");
        }
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Target {
            url: url.trim_end_matches('/').to_string(),
            authority,
        })
    }
}

/// An open connection to one node.
pub struct Conn {
    stream: TcpStream,
    /// `Host` and, with a token, `Authorization` header lines, each ending in CRLF.
    headers: String,
    /// Bytes read and not yet used: the start of the next answer, if any.
    buf: Vec<u8>,
    /// The request being sent (kept to reuse its allocation).
    out: Vec<u8>,
    /// The node said it closes the connection after its last answer.
    closing: bool,
}

impl Conn {
    /// Connects to `target`; `token` goes with every request as a bearer token.
    pub async fn open(target: &Target, token: Option<String>) -> Result<Conn> {
        let stream = TcpStream::connect(&target.authority)
            .await
            .with_context(|| format!("connect to {}", target.url))?;
        stream.set_nodelay(true)?;
        let mut headers = format!("Host: {}\r\n", target.authority);
        if let Some(token) = token {
            headers.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        Ok(Conn {
            stream,
            headers,
            buf: Vec::with_capacity(4096),
            out: Vec::with_capacity(4096),
            closing: false,
        })
    }

    /// Sends one request and reads the whole answer: its status code and body.
    pub async fn call(&mut self, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        self.out.clear();
        self.out.extend_from_slice(method.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(path.as_bytes());
        self.out.extend_from_slice(b" HTTP/1.1\r\n");
        self.out.extend_from_slice(self.headers.as_bytes());
        self.out
            .extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        self.out.extend_from_slice(body);
        self.stream
            .write_all(&self.out)
            .await
            .context("send the request")?;
        self.answer().await
    }

    /// Reads one answer off the stream.
    async fn answer(&mut self) -> Result<(u16, Vec<u8>)> {
        let head_end = loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                break at + 4;
            }
            if self.buf.len() > MAX_HEAD {
                bail!("the answer's header is over {MAX_HEAD} bytes");
            }
            self.fill().await?;
        };
        let head = Head::parse(&self.buf[..head_end])?;
        self.closing |= head.close;
        let total = head_end + head.length;
        while self.buf.len() < total {
            self.fill().await?;
        }
        let body = self.buf[head_end..total].to_vec();
        self.buf.drain(..total);
        Ok((head.status, body))
    }

    /// Reads more bytes into the buffer; an error once the peer has closed.
    async fn fill(&mut self) -> Result<()> {
        self.buf.reserve(4096);
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .context("read the answer")?;
        if n == 0 {
            bail!("the node closed the connection");
        }
        Ok(())
    }

    /// Whether the node closes the connection after its last answer: open a new one.
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// `GET path` as JSON.
    pub async fn get_json(&mut self, path: &str) -> Result<serde_json::Value> {
        let (status, body) = self.call("GET", path, &[]).await?;
        if !(200..300).contains(&status) {
            bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
        }
        serde_json::from_slice(&body).with_context(|| format!("GET {path}: not JSON"))
    }
}

/// What the load generator needs of an answer's header block.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    length: usize,
    /// `Connection: close`.
    close: bool,
}

impl Head {
    /// Parses `HTTP/1.x CODE ...` and the headers up to the blank line. Only answers with
    /// a `Content-Length` are understood: the node's API sends every answer with one.
    fn parse(head: &[u8]) -> Result<Head> {
        let text = std::str::from_utf8(head).context("the answer's header is not UTF-8")?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.get(2..5))
            .and_then(|code| code.parse::<u16>().ok())
            .with_context(|| format!("not an HTTP/1 status line: {status_line:?}"))?;
        let mut length = None;
        let mut close = false;
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line
                .split_once(':')
                .with_context(|| format!("not a header line: {line:?}"))?;
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                let n: usize = value
                    .parse()
                    .with_context(|| format!("bad Content-Length {value:?}"))?;
                if n > MAX_BODY {
                    bail!("the answer's body of {n} bytes is over {MAX_BODY}");
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case("connection") {
                close |= value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                bail!("the load generator reads answers with a Content-Length only, got Transfer-Encoding: {value}");
            }
        }
        let length = match (status, length) {
            (_, Some(n)) => n,
            (100..=199 | 204 | 304, None) => 0,
            (_, None) => bail!("the answer has no Content-Length"),
        };
        Ok(Head {
            status,
            length,
            close,
        })
    }
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_parse_and_paths_are_refused() {
        let t = Target::parse("http://127.0.0.1:4201/").unwrap();
        assert_eq!(
            (t.url.as_str(), t.authority.as_str()),
            ("http://127.0.0.1:4201", "127.0.0.1:4201")
        );
        assert_eq!(
            Target::parse("http://localhost").unwrap().authority,
            "localhost:80"
        );
        assert!(Target::parse("https://x:1").is_err());
        assert!(Target::parse("http://x:1/kvs").is_err());
        assert!(Target::parse("http://").is_err());
    }

    #[test]
    fn answer_heads_give_status_and_length() {
        let head = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\nContent-Length: 17\r\n\r\n";
        assert_eq!(
            Head::parse(head).unwrap(),
            Head {
                status: 202,
                length: 17,
                close: false
            }
        );
        let empty = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
        let head = Head::parse(empty).unwrap();
        assert_eq!((head.length, head.close), (0, true));
    }

    #[test]
    fn answers_it_cannot_frame_are_errors() {
        assert!(Head::parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(Head::parse(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(Head::parse(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(Head::parse(b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n").is_err());
        let huge = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert!(Head::parse(huge.as_bytes()).is_err());
    }
}
