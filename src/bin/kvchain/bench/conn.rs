//! One keep-alive HTTP/1.1 connection of the load generator, on hyper's client.

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

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
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    token: Option<String>,
}

impl Conn {
    /// Connects to `target`; `token` goes with every request as a bearer token.
    pub async fn open(target: &Target, token: Option<String>) -> Result<Conn> {
        let stream = TcpStream::connect(&target.authority)
            .await
            .with_context(|| format!("connect to {}", target.url))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP handshake with {}", target.url))?;
        // The connection's I/O runs beside the requests; it ends when the sender drops.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn {
            sender,
            authority: target.authority.clone(),
            token,
        })
    }

    /// Sends one request and reads the whole answer.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes)> {
        self.sender.ready().await.context("connection closed")?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority);
        if let Some(token) = &self.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Full::new(body)).context("build request")?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// `GET path` as JSON.
    pub async fn get_json(&mut self, path: &str) -> Result<serde_json::Value> {
        let (status, body) = self.call(Method::GET, path, Bytes::new()).await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
        }
        serde_json::from_slice(&body).with_context(|| format!("GET {path}: not JSON"))
    }
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
}
