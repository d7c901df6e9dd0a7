//! Who may use the API, checked before any route runs: the `Host` allowlist that keeps a
//! web page from reaching the node through DNS rebinding, and the optional bearer token
//! that every write must carry.

use super::error::ApiError;
use axum::http::{header, HeaderValue, Method, Request, StatusCode, Version};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("cannot read token file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds nothing but white space.
    #[error("token file {path} is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The token has a character that cannot travel in an `Authorization` header.
    #[error("token file {path}: a token is one word of printable ASCII (no spaces)")]
    Invalid {
        /// The file.
        path: PathBuf,
    },
}

/// Reads a token file: its content without surrounding white space, checked to be one
/// word of printable ASCII.
pub fn read_token_file(path: &Path) -> Result<String, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::Empty {
            path: path.to_path_buf(),
        });
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::Invalid {
            path: path.to_path_buf(),
        });
    }
    Ok(token.to_string())
}

/// The secret a write must present; only its SHA-256 is kept, so that every comparison
/// takes the same time whatever the presented value shares with it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token([u8; 32]);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token whose secret is `secret`.
    pub fn new(secret: &str) -> Token {
        Token(Sha256::digest(secret.as_bytes()).into())
    }

    /// The token in `path` (see [`read_token_file`]).
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        read_token_file(path).map(|s| Token::new(&s))
    }

    /// Whether `presented` is the secret, compared in constant time: both sides are
    /// hashed, and every byte of the digests is looked at.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let theirs: [u8; 32] = Sha256::digest(presented).into();
        let diff = self
            .0
            .iter()
            .zip(theirs.iter())
            .fold(0u8, |acc, (a, b)| std::hint::black_box(acc | (a ^ b)));
        diff == 0
    }
}

/// Checks one `--http-vhosts` entry and gives its canonical form (lower case, no port,
/// IPv6 in brackets); `*` stands for any host.
pub fn parse_vhost(entry: &str) -> Result<String, String> {
    let entry = entry.trim();
    if entry == "*" {
        return Ok(entry.to_string());
    }
    // A bare IPv6 address is fine in the list, though a Host header brackets it.
    let bracketed;
    let entry = match entry.parse::<Ipv6Addr>() {
        Ok(ip) => {
            bracketed = format!("[{ip}]");
            &bracketed
        }
        Err(_) => entry,
    };
    canonical_host(entry).ok_or_else(|| format!("{entry:?} is not a host name or address"))
}

/// `host` or `host:port` (`[v6]` or `[v6]:port`) reduced to the lower-case host, IPv6
/// addresses in their shortest form; `None` if it is not of that shape.
fn canonical_host(value: &str) -> Option<String> {
    let value = value.to_ascii_lowercase();
    let is_port = |p: &str| p.parse::<u16>().is_ok() && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        let ip: Ipv6Addr = inside.parse().ok()?;
        return Some(format!("[{ip}]"));
    }
    let name = match value.split_once(':') {
        Some((name, port)) if is_port(port) => name,
        Some(_) => return None,
        None => value.as_str(),
    };
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
    (!name.is_empty() && name.bytes().all(ok)).then(|| name.to_string())
}

/// The hosts a request may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAllowlist {
    /// Any host (`--http-vhosts '*'`).
    Any,
    /// Only these, in canonical form.
    Only(BTreeSet<String>),
}

impl HostAllowlist {
    /// The default: `localhost`, `127.0.0.1`, `[::1]` and the address the API is bound to
    /// (unless that is a wildcard address such as 0.0.0.0).
    pub fn local(bound: SocketAddr) -> HostAllowlist {
        let mut hosts: BTreeSet<String> = ["localhost", "127.0.0.1", "[::1]"]
            .into_iter()
            .map(String::from)
            .collect();
        match bound.ip() {
            ip if ip.is_unspecified() => {}
            IpAddr::V4(ip) => {
                hosts.insert(ip.to_string());
            }
            IpAddr::V6(ip) => {
                hosts.insert(format!("[{ip}]"));
            }
        }
        HostAllowlist::Only(hosts)
    }

    /// The hosts of a `--http-vhosts` list; `*` anywhere in it allows any host.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> HostAllowlist {
        let mut hosts = BTreeSet::new();
        for name in names {
            match parse_vhost(name.as_ref()) {
                Ok(h) if h == "*" => return HostAllowlist::Any,
                Ok(h) => {
                    hosts.insert(h);
                }
                Err(e) => tracing::warn!("--http-vhosts: {e}; ignored"),
            }
        }
        HostAllowlist::Only(hosts)
    }

    /// Whether a `Host` value (with or without port) is allowed.
    pub fn allows(&self, host: &str) -> bool {
        match self {
            HostAllowlist::Any => true,
            HostAllowlist::Only(hosts) => canonical_host(host).is_some_and(|h| hosts.contains(&h)),
        }
    }
}

/// The checks every request goes through before routing.
#[derive(Debug, Clone)]
pub struct Guard {
    hosts: HostAllowlist,
    token: Option<Token>,
}

impl Guard {
    /// A guard allowing `hosts`, and asking writes for `token` when there is one.
    pub fn new(hosts: HostAllowlist, token: Option<Token>) -> Guard {
        Guard { hosts, token }
    }

    /// Refuses a request whose host is not allowed (403 `bad_host`), an HTTP/1.1 request
    /// without exactly one `Host` (400 `bad_host`), and a write without the token (401
    /// `unauthorized`).
    pub fn check<B>(&self, req: &Request<B>) -> Result<(), ApiError> {
        self.check_host(req)?;
        self.check_token(req)
    }

    fn check_host<B>(&self, req: &Request<B>) -> Result<(), ApiError> {
        let bad = |status, message: String| ApiError::new(status, "bad_host", message);
        let mut values = req.headers().get_all(header::HOST).iter();
        let host = match (values.next(), values.next()) {
            (Some(h), None) => Some(h),
            (None, _) => None,
            (Some(_), Some(_)) => {
                return Err(bad(
                    StatusCode::BAD_REQUEST,
                    "more than one Host header".into(),
                ))
            }
        };
        // An absolute request target (`GET http://host/...`) names a host too.
        let named: Vec<&str> = host
            .map(|h| h.to_str().unwrap_or("\u{fffd}"))
            .into_iter()
            .chain(req.uri().authority().map(|a| a.as_str()))
            .collect();
        if named.is_empty() && req.version() >= Version::HTTP_11 {
            return Err(bad(
                StatusCode::BAD_REQUEST,
                "an HTTP/1.1 request needs a Host header".into(),
            ));
        }
        match named.iter().find(|h| !self.hosts.allows(h)) {
            None => Ok(()),
            Some(h) => Err(bad(
                StatusCode::FORBIDDEN,
                format!(
                    "host {:?} is not allowed (see --http-vhosts)",
                    h.chars().take(100).collect::<String>()
                ),
            )),
        }
    }

    fn check_token<B>(&self, req: &Request<B>) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| bearer(v.as_bytes()));
        match presented {
            Some(secret) if token.matches(secret) => Ok(()),
            Some(_) => Err(unauthorized("the bearer token is wrong")),
            None => Err(unauthorized(
                "writes to this node need an Authorization: Bearer <token> header",
            )),
        }
    }
}

/// The secret of an `Authorization: Bearer <secret>` value.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let secret = value[7..].trim_ascii();
    (!secret.is_empty()).then_some(secret)
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// The `WWW-Authenticate` value sent with a 401.
pub const CHALLENGE: HeaderValue = HeaderValue::from_static("Bearer realm=\"kvchain\"");

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> HostAllowlist {
        HostAllowlist::local("127.0.0.1:8645".parse().unwrap())
    }

    #[test]
    fn local_hosts_are_allowed_with_or_without_port() {
        let l = local();
        for h in [
            "localhost",
            "LOCALHOST:8645",
            "127.0.0.1",
            "127.0.0.1:1",
            "[::1]",
            "[::1]:8645",
            "[0:0:0:0:0:0:0:1]:80",
        ] {
            assert!(l.allows(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:8645",
            "localhost.evil.example",
            "127.0.0.2",
            "::1",
            "[::1]x",
            "localhost:x",
            "",
            "local host",
        ] {
            assert!(!l.allows(h), "{h}");
        }
    }

    #[test]
    fn the_bound_address_is_allowed_unless_it_is_a_wildcard() {
        let v6 = HostAllowlist::local("[fe80::2]:9".parse().unwrap());
        assert!(v6.allows("[fe80::2]:9"));
        let v4 = HostAllowlist::local("10.1.2.3:9".parse().unwrap());
        assert!(v4.allows("10.1.2.3"));
        let any = HostAllowlist::local("0.0.0.0:9".parse().unwrap());
        assert!(!any.allows("0.0.0.0") && any.allows("localhost"));
    }

    #[test]
    fn vhosts_replace_the_default_and_star_allows_any() {
        let l = HostAllowlist::from_names(&["Node.LAN:8645", "::2"]);
        assert!(l.allows("node.lan") && l.allows("[::2]:1"));
        assert!(!l.allows("localhost"));
        assert_eq!(HostAllowlist::from_names(&["a", "*"]), HostAllowlist::Any);
        assert!(parse_vhost("bad host").is_err());
        assert!(parse_vhost("").is_err());
    }

    #[test]
    fn tokens_compare_whole() {
        let t = Token::new("s3cret");
        assert!(t.matches(b"s3cret"));
        for wrong in [&b"s3cre"[..], b"s3cret!", b"S3cret", b""] {
            assert!(!t.matches(wrong));
        }
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer   abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(format!("{t:?}"), "Token(..)");
    }

    #[test]
    fn token_files_must_hold_one_word() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        assert_eq!(read_token_file(&file("ok", "abc\n")).unwrap(), "abc");
        assert!(matches!(
            read_token_file(&file("empty", " \n")),
            Err(TokenError::Empty { .. })
        ));
        assert!(matches!(
            read_token_file(&file("space", "a b")),
            Err(TokenError::Invalid { .. })
        ));
        assert!(matches!(
            read_token_file(&dir.path().join("missing")),
            Err(TokenError::Read { .. })
        ));
    }
}
