//! A blocking client of the HTTP API, behind `kvchain put|get|history|del|status`.

use serde_json::Value;
use std::time::Duration;

/// Default address of a node's API.
pub const DEFAULT_NODE: &str = "http://127.0.0.1:8645";
/// Largest answer read from a node.
const MAX_ANSWER: u64 = 16 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached.
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// Why.
        reason: String,
    },
    /// The request was not sent: the input breaks a rule the node would refuse anyway.
    #[error("{0}")]
    Invalid(String),
    /// The node answered with an error.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's error code.
        code: String,
        /// The API's message.
        message: String,
    },
}

impl ClientError {
    /// The API error code, if the node answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            ClientError::Unreachable { .. } | ClientError::Invalid(_) => None,
        }
    }
}

/// The URL of `key` under `/kvs/`, refusing a key the node would refuse.
fn key_url(base: &str, key: &str, suffix: &str) -> Result<String, ClientError> {
    crate::chain::tx::check_key(key).map_err(|e| ClientError::Invalid(e.to_string()))?;
    Ok(format!("{base}/kvs/{}{suffix}", encode_segment(key)))
}

/// Percent-encodes a key as one path segment (everything but unreserved characters).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A client of one node.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    /// `Bearer <token>`, sent with writes.
    authorization: Option<String>,
}

impl Client {
    /// A client of the node at `base` (e.g. `http://127.0.0.1:8645`), each call bounded by
    /// `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build();
        Client {
            agent: ureq::Agent::new_with_config(config),
            base: base.trim_end_matches('/').to_string(),
            authorization: None,
        }
    }

    /// The same client, sending `token` as a bearer token with every write.
    pub fn with_token(mut self, token: Option<String>) -> Client {
        self.authorization = token.map(|t| format!("Bearer {t}"));
        self
    }

    /// Adds the `Authorization` header of a write, when there is a token.
    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }

    fn answer(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let unreachable = |e: ureq::Error| ClientError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        };
        let mut response = result.map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(unreachable)?;
        if status >= 400 {
            let err: Value = serde_json::from_slice(&body).unwrap_or_default();
            let text = |k: &str| err.get(k).and_then(Value::as_str).map(str::to_string);
            return Err(ClientError::Api {
                status,
                code: text("code").unwrap_or_else(|| "http_error".into()),
                message: text("message")
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()),
            });
        }
        Ok((status, body))
    }

    fn json(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ClientError> {
        let (status, body) = self.answer(url, result)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Api {
            status,
            code: "bad_answer".into(),
            message: format!("the node's answer is not JSON: {e}"),
        })
    }

    fn write_query(wait: Option<&str>, timeout: Option<Duration>) -> String {
        let mut q = Vec::new();
        if let Some(w) = wait {
            q.push(format!("wait={w}"));
        }
        if let Some(t) = timeout {
            q.push(format!("timeout={}ms", t.as_millis()));
        }
        if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        }
    }

    /// `PUT /kvs/{key}`; waits for `included` or `confirmed` when asked.
    pub fn put(
        &self,
        key: &str,
        value: &[u8],
        wait: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Value, ClientError> {
        let url = key_url(&self.base, key, &Self::write_query(wait, timeout))?;
        self.json(&url, self.authorized(self.agent.put(&url)).send(value))
    }

    /// `DELETE /kvs/{key}`.
    pub fn delete(
        &self,
        key: &str,
        wait: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Value, ClientError> {
        let url = key_url(&self.base, key, &Self::write_query(wait, timeout))?;
        self.json(&url, self.authorized(self.agent.delete(&url)).call())
    }

    /// `GET /kvs/{key}` as JSON; `None` when the key has no value.
    pub fn get(&self, key: &str) -> Result<Option<Value>, ClientError> {
        let url = key_url(&self.base, key, "")?;
        match self.json(
            &url,
            self.agent
                .get(&url)
                .header("Accept", "application/json")
                .call(),
        ) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code() == Some("not_found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /kvs/{key}` as raw bytes; `None` when the key has no value.
    pub fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, ClientError> {
        let url = key_url(&self.base, key, "")?;
        match self.answer(&url, self.agent.get(&url).call()) {
            Ok((_, body)) => Ok(Some(body)),
            Err(e) if e.code() == Some("not_found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /kvs/{key}/history`, page after page until the last: every version.
    pub fn history(&self, key: &str) -> Result<Vec<Value>, ClientError> {
        let mut all = Vec::new();
        let mut from = 0;
        loop {
            let url = key_url(&self.base, key, &format!("/history?from={from}"))?;
            let result = self.agent.get(&url).call();
            let next = result.as_ref().ok().and_then(|r| {
                let h = r.headers().get("x-kvchain-next")?;
                h.to_str().ok()?.parse::<usize>().ok()
            });
            let page = self.json(&url, result)?;
            all.extend(page.as_array().cloned().unwrap_or_default());
            match next {
                // Each page must move on, or a confused node would keep us here forever.
                Some(next) if next > from && next == all.len() => from = next,
                Some(next) => {
                    return Err(ClientError::Api {
                        status: 200,
                        code: "bad_answer".into(),
                        message: format!("the history page from {from} points to {next}"),
                    })
                }
                None => return Ok(all),
            }
        }
    }

    /// `GET /status`.
    pub fn status(&self) -> Result<Value, ClientError> {
        let url = format!("{}/status", self.base);
        self.json(&url, self.agent.get(&url).call())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_one_path_segment() {
        assert_eq!(super::encode_segment("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(super::encode_segment("plain-key_1.~"), "plain-key_1.~");
        assert_eq!(super::encode_segment("é"), "%C3%A9");
    }
}
