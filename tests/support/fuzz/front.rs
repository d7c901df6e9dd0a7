//! Fuzz bodies of the front-ends: the console language and socket, the HTTP guard and API.

use super::*;

// ---------------------------------------------------------------------------------------
// The console and the HTTP API
// ---------------------------------------------------------------------------------------

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
}

pub fn console_seeds() -> Vec<Vec<u8>> {
    let h = fixture().c.hash().to_hex();
    [
        "put k v".to_string(),
        "put \"a key\" 'a value'".into(),
        "get \"x\\\"y\"".into(),
        "history k".into(),
        "del k".into(),
        format!("block {h}"),
        "block 12".into(),
        format!("tx {h}"),
        "chain 5".into(),
        "mine auto".into(),
        "connect /ip4/127.0.0.1/tcp/4001".into(),
        "unban 12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA".into(),
        "status\npeers\r\ndigest\nquit\n".into(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

pub fn console_parse(data: &[u8]) -> String {
    use kvchain::console::{parse, tokenize};
    let text = String::from_utf8_lossy(data);
    let mut out = String::from("empty");
    for line in text.lines().chain([text.as_ref()]) {
        let r = parse(line);
        out = match &r {
            Ok(Some(cmd)) => format!("{cmd:?}")
                .chars()
                .take_while(|c| c.is_alphanumeric())
                .collect(),
            Ok(None) => "none".into(),
            Err(e) => e.chars().take(12).collect(),
        };
        if let Ok(words) = tokenize(line) {
            // Quoting every word and splitting again gives the same words.
            let quoted: Vec<String> = words
                .iter()
                .map(|w| format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            assert_eq!(
                tokenize(&quoted.join(" ")).as_ref(),
                Ok(&words),
                "re-quoted {line:?}"
            );
        }
    }
    // The attach socket's line reader on the same bytes.
    RUNTIME.with(|rt| {
        rt.block_on(async {
            let mut reader = tokio::io::BufReader::with_capacity(1 + data.len() % 64, data);
            while let Ok(Some(line)) = kvchain::console::socket::read_line(&mut reader).await {
                assert!(line.len() <= kvchain::console::socket::MAX_LINE);
                assert!(!line.ends_with('\n'));
            }
        })
    });
    out
}

pub fn http_guard_seeds() -> Vec<Vec<u8>> {
    vec![
        b"\x00\x00\x00\x01/kvs/a\x00host\x00localhost:8645".to_vec(),
        b"\x01\x01\x01\x03/kvs/a\x00host\x00127.0.0.1\x00authorization\x00Bearer secret".to_vec(),
        b"\x02\x01\x00\x01http://[::1]:80/x\x00host\x00[::1]".to_vec(),
        b"\x03\x02\x02\x02/\x00host\x00evil.example\x00host\x00localhost".to_vec(),
    ]
}

pub fn http_guard(data: &[u8]) -> String {
    use axum::http::{HeaderName, HeaderValue, Method, Request, Version};
    use kvchain::http::guard::Guard;
    use kvchain::http::{HostAllowlist, Token};
    let mut inp = Input::new(data);
    let hosts = match inp.u8() % 4 {
        0 => HostAllowlist::local("127.0.0.1:8645".parse().unwrap()),
        1 => HostAllowlist::local("[::]:1".parse().unwrap()),
        2 => HostAllowlist::Any,
        _ => HostAllowlist::from_names(&["kv.example", "[fe80::1]", "10.0.0.1:80"]),
    };
    let token = inp.bool().then(|| Token::new("secret"));
    let method = inp.choose(&[
        Method::GET,
        Method::PUT,
        Method::DELETE,
        Method::POST,
        Method::HEAD,
    ]);
    let version = inp.choose(&[Version::HTTP_10, Version::HTTP_11, Version::HTTP_2]);
    // The rest: NUL-separated fields: the URI, then header names and values.
    let rest = inp.rest();
    let mut fields = rest.split(|b| *b == 0);
    let uri = fields.next().unwrap_or_default();
    let mut req = Request::builder().method(method).version(version);
    req = match axum::http::Uri::try_from(uri) {
        Ok(u) => req.uri(u),
        Err(_) => req.uri("/"),
    };
    let mut req = req.body(()).unwrap();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            req.headers_mut().append(n, v);
        }
    }
    for name in rest.split(|b| *b == 0 || *b == b',') {
        let _ = kvchain::http::parse_vhost(&String::from_utf8_lossy(name));
    }
    let guard = Guard::new(hosts, token);
    match guard.check(&req) {
        Ok(()) => "pass".into(),
        Err(e) => {
            assert!(
                [400, 401, 403].contains(&e.status.as_u16()),
                "guard answered {}",
                e.status
            );
            format!("{}:{}", e.status.as_u16(), e.code)
        }
    }
}

struct Api {
    service: hyper_util::service::TowerToHyperService<axum::Router>,
    _node: kvchain::node::Started,
}

thread_local! {
    static API: Api = RUNTIME.with(|rt| {
        rt.block_on(async {
            use kvchain::node::{MiningPolicy, NodeConfig, NodeMetrics};
            let f = fixture();
            let mut config = NodeConfig::new(f.params.clone());
            config.mining = MiningPolicy::Off;
            let started = kvchain::node::start(config).expect("node starts");
            for b in [&f.a, &f.b] {
                started.handle.submit_block(b.clone()).await.unwrap().unwrap();
            }
            let state = kvchain::http::ApiState {
                node: started.handle.clone(),
                net: None,
                registry: std::sync::Arc::new(Default::default()),
                metrics: std::sync::Arc::new(NodeMetrics::default()),
                confirmations: 1,
            };
            let router = kvchain::http::router(state, 4);
            Api {
                service: hyper_util::service::TowerToHyperService::new(router),
                _node: started,
            }
        })
    });
}

pub fn http_api_seeds() -> Vec<Vec<u8>> {
    let f = fixture();
    let tx = f.a.txs[0].id().to_hex();
    let block = f.b.hash().to_hex();
    vec![
        b"\x00\x00a\x00".to_vec(),
        b"\x00\x01a\x00min_conf=1".to_vec(),
        b"\x01\x00new%20key\x00timeout=1ms\x00value".to_vec(),
        b"\x02\x00a\x00wait=included&timeout=5ms".to_vec(),
        format!("\x00\x02{tx}\x00").into_bytes(),
        format!("\x00\x03{block}\x00").into_bytes(),
        b"\x00\x032\x00".to_vec(),
        b"\x00\x04\x00".to_vec(),
        b"\x00\x00%ff%fe\x00".to_vec(),
    ]
}

pub fn http_api(data: &[u8]) -> String {
    use axum::http::{Method, Request, StatusCode};
    use hyper::service::Service;
    let mut inp = Input::new(data);
    let method = inp.choose(&[Method::GET, Method::PUT, Method::DELETE, Method::POST]);
    let route = inp.u8() % 7;
    let rest = inp.rest();
    let mut fields = rest.splitn(3, |b| *b == 0);
    let segment = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let query = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let body = fields.next().unwrap_or_default().to_vec();
    let path = match route {
        0 => format!("/kvs/{segment}"),
        1 => format!("/kvs/{segment}/history"),
        2 => format!("/tx/{segment}"),
        3 => format!("/blocks/{segment}"),
        4 => "/status".into(),
        5 => "/digest".into(),
        _ => format!("/{segment}"),
    };
    if path.starts_with("/watch") {
        return "skipped watch".into();
    }
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let Ok(req) = Request::builder()
        .method(method)
        .uri(uri.as_str())
        .header("host", "localhost")
        .body(axum::body::Body::from(body))
    else {
        return "bad uri".into();
    };
    API.with(|api| {
        RUNTIME.with(|rt| {
            rt.block_on(async {
                // A write may wait for its tx to be included (no miner here): cut it short.
                let call = api.service.call(req);
                let Ok(answer) = tokio::time::timeout(Duration::from_millis(50), call).await else {
                    return "timeout".to_string();
                };
                let res = answer.expect("infallible");
                let status = res.status();
                let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                    .await
                    .expect("body");
                assert_ne!(
                    status,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "{uri}: {bytes:?}"
                );
                if status.is_client_error() || status.is_server_error() {
                    let v: serde_json::Value =
                        serde_json::from_slice(&bytes).expect("errors are JSON");
                    assert!(v.get("code").is_some(), "{uri}: error without code: {v}");
                    return format!("{}:{}", status.as_u16(), v["code"].as_str().unwrap_or(""));
                }
                format!("{}", status.as_u16())
            })
        })
    })
}
