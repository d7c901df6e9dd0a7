//! The HTTP API's defences, against a real node on loopback: the Host allowlist and the
//! `--http-vhosts` setting, the bearer token, the header, body and idle timeouts, the
//! caps on connections and watch streams, JSON errors for every rejection, and query
//! numbers that cannot overflow. Timeouts are set short through `HttpConfig`; every wait
//! is bounded, and no test asserts on speed, only on what the server does.

mod common;
#[path = "support/http_node.rs"]
mod http_node;
#[path = "support/http_proc.rs"]
mod http_proc;
#[path = "support/raw_http.rs"]
mod raw_http;
#[path = "support/swarm_net.rs"]
mod swarm_net;

use common::block_on;
use http_node::*;
use http_proc::{client, start_node};
use kvchain::http::{HttpConfig, Token};
use kvchain::node::MiningPolicy;
use raw_http::*;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

/// Runs blocking client code off the runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("client thread")
}

/// Sends `request` on a new connection and reads the answer up to the close.
async fn send(addr: SocketAddr, request: String) -> Raw {
    blocking(move || exchange(addr, &request)).await
}

/// Asserts `a` is the documented JSON error with `status` and `code`.
fn assert_error(a: &Raw, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", a.text());
    assert_eq!(
        a.header("content-type").as_deref(),
        Some("application/json"),
        "{}",
        a.text()
    );
    let e = a.json();
    assert_eq!(e["code"], code, "{}", a.text());
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
}

/// `PUT path` with `Host: localhost`, value `v`, and any extra header lines.
fn put(path: &str, extra: &str) -> String {
    format!(
        "PUT {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Length: 1\r\nConnection: close\r\n\r\nv"
    )
}

fn config() -> HttpConfig {
    HttpConfig::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_hosts_are_served() {
    let n = start(8, 2, MiningPolicy::Off).await;
    let port = n.addr.port();
    for host in [
        "localhost".to_string(),
        format!("localhost:{port}"),
        "LocalHost".into(),
        "127.0.0.1".into(),
        format!("127.0.0.1:{port}"),
        "[::1]".into(),
        format!("[::1]:{port}"),
    ] {
        let a = send(n.addr, get("/status", &host)).await;
        assert_eq!(a.status, 200, "Host: {host}: {}", a.text());
    }
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        "localhost.evil.example".into(),
        "127.0.0.2".into(),
    ] {
        let a = send(n.addr, get("/status", &host)).await;
        assert_error(&a, 403, "bad_host");
    }
    // A page that rebinds its name to 127.0.0.1 cannot write through the node.
    let write = put("/kvs/k", "").replace("Host: localhost", "Host: evil.example");
    assert_error(&send(n.addr, write).await, 403, "bad_host");
    // An absolute target naming another host is refused as well.
    let absolute = get("http://evil.example/status", "localhost");
    assert_error(&send(n.addr, absolute).await, 403, "bad_host");
    // HTTP/1.1 without Host is refused; HTTP/1.0 never had to send one.
    let no_host = "GET /status HTTP/1.1\r\nConnection: close\r\n\r\n".to_string();
    assert_error(&send(n.addr, no_host).await, 400, "bad_host");
    let old = send(n.addr, "GET /status HTTP/1.0\r\n\r\n".into()).await;
    assert_eq!(old.status, 200, "{}", old.text());
    assert_eq!(
        n.node.info().await.unwrap().mempool,
        0,
        "nothing was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vhosts_setting_replaces_the_default_list() {
    let only = HttpConfig {
        vhosts: Some(vec!["node.lan".into()]),
        ..config()
    };
    let n = start_with(8, 2, MiningPolicy::Off, only).await;
    for (host, status) in [
        ("node.lan", 200),
        ("NODE.lan:8645", 200),
        ("localhost", 403),
        ("127.0.0.1", 403),
    ] {
        let a = send(n.addr, get("/status", host)).await;
        assert_eq!(a.status, status, "Host: {host}: {}", a.text());
    }
    let any = HttpConfig {
        vhosts: Some(vec!["*".into()]),
        ..config()
    };
    let n = start_with(8, 2, MiningPolicy::Off, any).await;
    let a = send(n.addr, get("/status", "anything.example")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let no_host = "GET /status HTTP/1.1\r\nConnection: close\r\n\r\n".to_string();
    assert_error(&send(n.addr, no_host).await, 400, "bad_host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_token_and_reads_do_not() {
    let with_token = HttpConfig {
        token: Some(Token::new("s3cret-token")),
        ..config()
    };
    let n = start_with(8, 2, MiningPolicy::Off, with_token).await;
    for extra in [
        "",
        "Authorization: Bearer wrong\r\n",
        "Authorization: Bearer s3cret-toke\r\n",
        "Authorization: Basic czNjcmV0LXRva2Vu\r\n",
    ] {
        let a = send(n.addr, put("/kvs/k", extra)).await;
        assert_error(&a, 401, "unauthorized");
        assert!(a
            .header("www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer")));
    }
    let delete = "DELETE /kvs/k HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert_error(&send(n.addr, delete.into()).await, 401, "unauthorized");
    assert_eq!(n.node.info().await.unwrap().mempool, 0, "nothing written");

    let auth = "Authorization: Bearer s3cret-token\r\n";
    let a = send(n.addr, put("/kvs/k", auth)).await;
    assert_eq!((a.status, &a.json()["status"]), (202, &"pending".into()));
    let delete = delete.replace("Connection:", &format!("{auth}Connection:"));
    assert_eq!(send(n.addr, delete).await.status, 202);
    assert_eq!(n.node.info().await.unwrap().mempool, 2);
    // Reads stay open.
    assert_eq!(send(n.addr, get("/status", "localhost")).await.status, 200);
    let missing = send(n.addr, get("/kvs/k", "localhost")).await;
    assert_error(&missing, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_is_cut_off_while_other_clients_are_served() {
    let slow_heads = HttpConfig {
        header_read_timeout: Duration::from_secs(5),
        ..config()
    };
    let n = start_with(8, 2, MiningPolicy::Off, slow_heads).await;
    let addr = n.addr;
    let request = format!(
        "GET /status HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(60)
    );
    let (started, started_rx) = mpsc::channel();
    // One byte a second; between two bytes, a read that ends early if the server closes.
    let slow = std::thread::spawn(move || {
        let mut s = connect(addr);
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        for (sent, byte) in request.bytes().enumerate() {
            if s.write_all(&[byte]).is_err() {
                return Err(sent);
            }
            let _ = started.send(());
            let mut buf = [0u8; 256];
            match s.read(&mut buf) {
                Ok(0) => return Err(sent + 1),
                Ok(_) => return Ok("the server answered a head it never got"),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return Err(sent + 1),
            }
        }
        Ok("the whole head went through, slowly")
    });
    started_rx
        .recv_timeout(BOUND)
        .expect("the slow client started");
    // Meanwhile another client is served at once.
    let a = call("GET", format!("{}/status", n.url), vec![], false).await;
    assert_eq!(a.status, 200);
    assert!(!slow.is_finished(), "the slow client was still connected");
    let outcome = blocking(move || slow.join().expect("slow client")).await;
    match outcome {
        Err(sent) => assert!(sent < 40, "cut off after {sent} bytes"),
        Ok(what) => panic!("not cut off: {what}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_comes_is_cut_off() {
    let short = HttpConfig {
        body_read_timeout: Duration::from_secs(1),
        ..config()
    };
    let n = start_with(8, 2, MiningPolicy::Off, short).await;
    let addr = n.addr;
    let answer = blocking(move || {
        let mut s = connect(addr);
        s.write_all(b"PUT /kvs/k HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n")
            .unwrap();
        // Keep-alive was not refused: only the server's close ends this read.
        read_to_close(&mut s).map(|bytes| Raw::parse(&bytes))
    })
    .await
    .expect("the server closed the connection");
    assert_error(&answer, 408, "body_timeout");
    assert_eq!(n.node.info().await.unwrap().mempool, 0, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_but_a_watch_stream_is_not() {
    let short = HttpConfig {
        idle_timeout: Duration::from_secs(1),
        ..config()
    };
    let n = start_with(4, 2, MiningPolicy::Off, short).await;
    let addr = n.addr;
    let mut watch = blocking(move || open_watch(addr).expect("watch")).await;
    let idle = blocking(move || {
        let mut s = connect(addr);
        s.write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let answer = read_answer(&mut s);
        (answer.status, read_to_close(&mut s))
    })
    .await;
    assert_eq!(idle.0, 200);
    assert_eq!(idle.1, Some(vec![]), "closed after the answer, silently");
    // The watch stream has been open longer than the idle timeout: a block still reaches it.
    let genesis = n.node.block_at(0).await.unwrap().header;
    n.node
        .submit_block(block_on(&genesis, vec![], 1))
        .await
        .unwrap()
        .unwrap();
    let got = blocking(move || read_until(&mut watch, "event: block")).await;
    assert!(got.is_some(), "the watch stream was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_watch_stream_too_many_is_refused() {
    let two = HttpConfig {
        max_watchers: 2,
        ..config()
    };
    let n = start_with(8, 2, MiningPolicy::Off, two).await;
    let addr = n.addr;
    let first = blocking(move || open_watch(addr).expect("first watch")).await;
    let _second = blocking(move || open_watch(addr).expect("second watch")).await;
    let third = blocking(move || open_watch(addr)).await;
    let refused = third.expect_err("the third watch should be refused");
    assert_error(&refused, 503, "too_many_watchers");
    // A stream that ends gives its slot back.
    drop(first);
    let again = blocking(move || {
        let deadline = std::time::Instant::now() + BOUND;
        loop {
            match open_watch(addr) {
                Ok(s) => return Some(s),
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(_) => return None,
            }
        }
    })
    .await;
    assert!(again.is_some(), "the freed slot was never reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let two = HttpConfig {
        max_connections: 2,
        ..config()
    };
    let n = start_with(8, 2, MiningPolicy::Off, two).await;
    let addr = n.addr;
    let held = [connect(addr), connect(addr)];
    let (done, answer) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(exchange(addr, &get("/status", "localhost")));
    });
    // With the cap broken this answer would come at once; with it, not before a slot frees.
    let early = blocking(move || {
        let r = answer.recv_timeout(Duration::from_millis(500));
        (r.is_ok(), answer)
    })
    .await;
    assert!(
        !early.0,
        "a third connection was served while two were open"
    );
    drop(held);
    let late = blocking(move || early.1.recv_timeout(BOUND)).await;
    assert_eq!(late.expect("served once a slot freed").status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_is_a_json_error() {
    let n = start(8, 2, MiningPolicy::Off).await;
    let cases = [
        ("/kvs/k?min_conf=abc", 400, "bad_query"),
        ("/kvs/k/history?min_conf=-1", 400, "bad_query"),
        ("/kvs/k?min_conf=18446744073709551616", 400, "bad_query"),
        ("/kvs/%FF", 400, "bad_key"),
        ("/kvs/%FF/history", 400, "bad_key"),
        ("/tx/%FF", 400, "bad_id"),
        ("/blocks/%C3%28", 400, "bad_id"),
        ("/watch?from=abc", 400, "bad_query"),
        ("/no/such/endpoint", 404, "not_found"),
    ];
    for (path, status, code) in cases {
        let a = send(n.addr, get(path, "localhost")).await;
        assert_error(&a, status, code);
    }
    let a = send(n.addr, put("/kvs/k?wait=included&timeout=x", "")).await;
    assert_error(&a, 400, "bad_timeout");
    let a = send(n.addr, put("/kvs/%FF", "")).await;
    assert_error(&a, 400, "bad_key");
    for wrong in [
        "POST /status",
        "PUT /status",
        "DELETE /watch",
        "POST /kvs/k",
    ] {
        let req = format!("{wrong} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        assert_error(&send(n.addr, req).await, 405, "method_not_allowed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_query_numbers_do_not_overflow() {
    let n = start(8, 2, MiningPolicy::Auto).await;
    let put = call(
        "PUT",
        format!("{}/kvs/k?wait=included", n.url),
        b"v".to_vec(),
        false,
    )
    .await;
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
    let max = u64::MAX;
    // No version is 2^64 - 1 blocks deep; a wrapping sum would have said this one was.
    let a = send(n.addr, get(&format!("/kvs/k?min_conf={max}"), "localhost")).await;
    assert_error(&a, 404, "not_found");
    let h = send(
        n.addr,
        get(&format!("/kvs/k/history?min_conf={max}"), "localhost"),
    )
    .await;
    assert_eq!((h.status, h.json()), (200, serde_json::json!([])));
    let shallow = send(n.addr, get("/kvs/k?min_conf=1", "localhost")).await;
    assert_eq!(shallow.status, 200, "the value is there");
    // Replaying from the largest height replays nothing and goes live.
    let addr = n.addr;
    let watch = blocking(move || {
        let mut s = connect(addr);
        let req = format!("GET /watch?from={max} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        read_until(&mut s, "event: ready")
    })
    .await
    .expect("the watch went live");
    assert!(!watch.contains("event: put"), "{watch}");
    let b = send(n.addr, get(&format!("/blocks/{max}"), "localhost")).await;
    assert_error(&b, 404, "not_found");
}

#[test]
fn the_node_and_client_flags_set_the_vhosts_and_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "t0ken-from-file\n").unwrap();
    let empty = tmp.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let first = tmp.path().join("a");
    std::fs::create_dir(&first).unwrap();
    let failed = start_node(&first, &["--http-token-file", empty.to_str().unwrap()]);
    let err = failed.err().expect("an empty token file stops the node");
    assert!(
        err.contains("exit status: 2") && err.contains("is empty"),
        "{err}"
    );

    let dir = tmp.path().join("b");
    std::fs::create_dir(&dir).unwrap();
    let flags = [
        "--http-vhosts",
        "node.lan,127.0.0.1",
        "--http-token-file",
        token.to_str().unwrap(),
    ];
    let node = start_node(&dir, &flags).unwrap();
    let addr: SocketAddr = node.url.trim_start_matches("http://").parse().unwrap();
    assert_eq!(exchange(addr, &get("/status", "node.lan")).status, 200);
    assert_error(
        &exchange(addr, &get("/status", "localhost")),
        403,
        "bad_host",
    );

    let url = node.url.as_str();
    let (code, _, err) = client(&["put", "k", "v", "--node", url], None);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unauthorized"), "{err}");
    let (code, _, err) = client(&["put", "k", "v", "--node", url], Some("wrong"));
    assert!(code == Some(2) && err.contains("unauthorized"), "{err}");
    let file = token.to_str().unwrap();
    let with_file = ["put", "k", "v", "--wait", "included", "--node", url];
    let (code, out, err) = client(&[&with_file[..], &["--token-file", file]].concat(), None);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = client(&["del", "gone", "--node", url], Some("t0ken-from-file"));
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = client(&["get", "k", "--node", url], None);
    assert_eq!((code, out.trim()), (Some(0), "v"), "{err}");
}
