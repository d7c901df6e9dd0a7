//! The HTTP API against a real node: every endpoint, values including binary ones,
//! `wait=confirmed`, the documented errors, the watch stream through a reorg, and metrics
//! that move as blocks are mined.

mod common;
#[path = "support/http_node.rs"]
mod http_node;
#[path = "support/swarm_net.rs"]
mod swarm_net;

use common::block_on;
use http_node::*;
use kvchain::chain::{Hash, Tx};
use kvchain::node::{MiningPolicy, NodeHandle};
use serde_json::Value;

/// Mines one block on the tip holding `txs` (the node does not mine in these tests).
async fn mine(node: &NodeHandle, txs: Vec<Tx>, salt: u64) -> u64 {
    let height = node.info().await.unwrap().height;
    let parent = node.block_at(height).await.unwrap().header;
    node.submit_block(block_on(&parent, txs, salt))
        .await
        .unwrap()
        .unwrap();
    height + 1
}

/// The pending tx with this id, as the node holds it.
async fn pending(node: &NodeHandle, id: &str) -> Tx {
    node.tx(Hash::from_hex(id).unwrap())
        .await
        .expect("pending tx")
        .tx
}

/// Each event's name and key.
fn kinds(events: &[SseEvent]) -> Vec<(&str, Value)> {
    events
        .iter()
        .map(|e| (e.event.as_str(), e.data["key"].clone()))
        .collect()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_round_trip_including_binary_ones() {
    let n = start(8, 2, MiningPolicy::Auto).await;
    let binary: Vec<u8> = (0..=255).collect();
    let put = call(
        "PUT",
        format!("{}/kvs/bin?wait=included", n.url),
        binary.clone(),
        false,
    )
    .await;
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
    let answer = put.json();
    // At least included: a fast miner may already have confirmed it.
    assert!(
        matches!(answer["status"].as_str(), Some("included" | "confirmed")),
        "{answer}"
    );
    let raw = call("GET", format!("{}/kvs/bin", n.url), vec![], false).await;
    assert_eq!((raw.status, &raw.body), (200, &binary));
    // The digest endpoint and the status field agree with the store.
    let want = n.node.store().digest().to_hex();
    let digest = call("GET", format!("{}/digest", n.url), vec![], false)
        .await
        .json();
    let status = call("GET", format!("{}/status", n.url), vec![], false)
        .await
        .json();
    assert_eq!(digest["digest"].as_str(), Some(want.as_str()));
    assert_eq!(status["digest"].as_str(), Some(want.as_str()));
    assert_ne!(want, kvchain::chain::Index::new().digest().to_hex());
    assert_eq!(raw.header("content-type"), Some("application/octet-stream"));
    assert_eq!(raw.header("x-kvchain-tx"), answer["tx"].as_str());
    assert_eq!(
        raw.header("x-kvchain-height").map(str::to_string),
        Some(answer["height"].to_string())
    );
    let json = call("GET", format!("{}/kvs/bin", n.url), vec![], true)
        .await
        .json();
    assert_eq!(json["value_hex"], hex::encode(&binary));
    assert!(json.get("value").is_none(), "not UTF-8: no text form");
    // Text, an empty value, and a key that needs percent-encoding.
    for (key, value) in [("text", "héllo wörld"), ("empty", ""), ("a%2Fb", "slash")] {
        let put = call(
            "PUT",
            format!("{}/kvs/{key}?wait=included", n.url),
            value.into(),
            false,
        )
        .await;
        assert_eq!(put.status, 200);
        let got = call("GET", format!("{}/kvs/{key}", n.url), vec![], true)
            .await
            .json();
        assert_eq!(got["value"], value);
    }
    let got = call("GET", format!("{}/kvs/a%2Fb", n.url), vec![], true)
        .await
        .json();
    assert_eq!(got["key"], "a/b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_confirmed_answers_once_the_write_is_k_deep() {
    let n = start(8, 3, MiningPolicy::Auto).await;
    let put = call(
        "PUT",
        format!("{}/kvs/k?wait=confirmed&timeout=30s", n.url),
        b"v".to_vec(),
        false,
    )
    .await;
    assert_eq!(put.status, 200);
    let answer = put.json();
    assert_eq!(answer["status"], "confirmed");
    let height = answer["height"].as_u64().unwrap();
    assert!(answer["depth"].as_u64().unwrap() >= 3);
    let status = call("GET", format!("{}/status", n.url), vec![], false)
        .await
        .json();
    assert!(status["height"].as_u64().unwrap() >= height + 2);
    let tx = call(
        "GET",
        format!("{}/tx/{}", n.url, answer["tx"].as_str().unwrap()),
        vec![],
        false,
    )
    .await
    .json();
    assert_eq!(
        (
            tx["status"].as_str(),
            tx["height"].as_u64(),
            tx["key"].as_str()
        ),
        (Some("confirmed"), Some(height), Some("k"))
    );
    let block = call("GET", format!("{}/blocks/{height}", n.url), vec![], false)
        .await
        .json();
    assert_eq!(block["txs"][0]["id"], answer["tx"]);
    let by_hash = call(
        "GET",
        format!("{}/blocks/{}", n.url, block["hash"].as_str().unwrap()),
        vec![],
        false,
    )
    .await;
    assert_eq!(by_hash.json()["height"], height);
    let deleted = call(
        "DELETE",
        format!("{}/kvs/k?wait=confirmed", n.url),
        vec![],
        false,
    )
    .await;
    assert_eq!(deleted.json()["status"], "confirmed");
    assert_eq!(
        call("GET", format!("{}/kvs/k", n.url), vec![], false)
            .await
            .status,
        404
    );
    let peers = call("GET", format!("{}/peers", n.url), vec![], false).await;
    assert_eq!((peers.status, peers.json()), (200, Value::Array(vec![])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_documented_errors() {
    let n = start(8, 2, MiningPolicy::Off).await;
    let u = &n.url;
    let long_key = "k".repeat(300);
    let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        (
            "PUT",
            format!("{u}/kvs/{long_key}"),
            b"v".to_vec(),
            400,
            "bad_key",
        ),
        (
            "PUT",
            format!("{u}/kvs/tab%09key"),
            b"v".to_vec(),
            400,
            "bad_key",
        ),
        (
            "PUT",
            format!("{u}/kvs/big"),
            vec![0; 64 * 1024 + 1],
            413,
            "value_too_large",
        ),
        (
            "PUT",
            format!("{u}/kvs/k?wait=soon"),
            b"v".to_vec(),
            400,
            "bad_wait",
        ),
        (
            "PUT",
            format!("{u}/kvs/k?timeout=forever"),
            b"v".to_vec(),
            400,
            "bad_timeout",
        ),
        (
            "PUT",
            format!("{u}/kvs/k?wait=included&timeout=200ms"),
            b"v".to_vec(),
            504,
            "timeout",
        ),
        ("GET", format!("{u}/kvs/missing"), vec![], 404, "not_found"),
        ("GET", format!("{u}/kvs/{long_key}"), vec![], 400, "bad_key"),
        ("GET", format!("{u}/tx/zz"), vec![], 400, "bad_id"),
        (
            "GET",
            format!("{u}/tx/{}", "ab".repeat(32)),
            vec![],
            404,
            "not_found",
        ),
        ("GET", format!("{u}/blocks/zz"), vec![], 400, "bad_id"),
        ("GET", format!("{u}/blocks/999"), vec![], 404, "not_found"),
    ];
    for (method, url, body, status, code) in cases {
        let a = call(method, url.clone(), body, false).await;
        assert_eq!(
            a.status,
            status,
            "{method} {url}: {}",
            String::from_utf8_lossy(&a.body)
        );
        let e = a.json();
        assert_eq!(e["code"], code, "{method} {url}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // The write that timed out is still pending, not lost.
    let info = n.node.info().await.unwrap();
    assert_eq!((info.mempool, info.height), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_min_conf_read_only_deep_enough_versions() {
    let n = start(4, 2, MiningPolicy::Off).await;
    let v1 = call("PUT", format!("{}/kvs/doc", n.url), b"v1".to_vec(), false)
        .await
        .json();
    assert_eq!(v1["status"], "pending");
    let tx1 = pending(&n.node, v1["tx"].as_str().unwrap()).await;
    mine(&n.node, vec![tx1], 1).await;
    mine(&n.node, vec![], 2).await;
    let v2 = call("PUT", format!("{}/kvs/doc", n.url), b"v2".to_vec(), false)
        .await
        .json();
    let tx2 = pending(&n.node, v2["tx"].as_str().unwrap()).await;
    mine(&n.node, vec![tx2], 3).await;
    let get = |q: &'static str| call("GET", format!("{}/kvs/doc{q}", n.url), vec![], true);
    assert_eq!(get("").await.json()["value"], "v2");
    assert_eq!(
        get("?min_conf=2").await.json()["value"],
        "v1",
        "v2 is only 1 deep"
    );
    assert_eq!(get("?min_conf=4").await.status, 404);
    let history = call("GET", format!("{}/kvs/doc/history", n.url), vec![], false)
        .await
        .json();
    let values: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].clone())
        .collect();
    assert_eq!(values, vec![Value::from("v1"), Value::from("v2")]);
    let deep = call(
        "GET",
        format!("{}/kvs/doc/history?min_conf=2", n.url),
        vec![],
        false,
    )
    .await
    .json();
    assert_eq!(deep.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_stream_delivers_every_change_in_order_and_reports_a_reorg() {
    let n = start(4, 2, MiningPolicy::Off).await;
    let events = sse(format!("{}/watch?prefix=w/", n.url));
    let ready = next_events(&events, 1);
    assert_eq!(
        (ready[0].event.as_str(), &ready[0].data["height"]),
        ("ready", &Value::from(0))
    );
    let mut ids = Vec::new();
    for (key, value) in [("w%2Fa", "1"), ("x%2Fc", "other"), ("w%2Fb", "2")] {
        let put = call("PUT", format!("{}/kvs/{key}", n.url), value.into(), false)
            .await
            .json();
        ids.push(put["tx"].as_str().unwrap().to_string());
    }
    let mut txs = Vec::new();
    for id in &ids {
        txs.push(pending(&n.node, id).await);
    }
    let h1 = mine(&n.node, txs.clone(), 1).await;
    let got = next_events(&events, 3);
    let seen = kinds(&got);
    assert_eq!(
        seen,
        vec![
            ("put", Value::from("w/a")),
            ("put", Value::from("w/b")),
            ("block", Value::Null)
        ]
    );
    assert_eq!(got[2].data["height"], h1);

    // A heavier branch from genesis without those writes: the stream takes them back.
    let genesis = n.node.block_at(0).await.unwrap().header;
    let b1 = block_on(&genesis, vec![], 9);
    let b2 = block_on(&b1.header, vec![], 9);
    n.node.submit_block(b1.clone()).await.unwrap().unwrap();
    n.node.submit_block(b2.clone()).await.unwrap().unwrap();
    let got = next_events(&events, 4);
    let seen = kinds(&got);
    assert_eq!(
        seen,
        vec![
            ("undo", Value::from("w/b")),
            ("undo", Value::from("w/a")),
            ("block", Value::Null),
            ("block", Value::Null)
        ]
    );
    assert_eq!(got[3].data["hash"], b2.hash().to_hex());

    // Mined again on the new branch, they come back.
    let h3 = mine(&n.node, txs, 3).await;
    let got = next_events(&events, 3);
    assert_eq!(
        (got[0].event.as_str(), got[1].event.as_str()),
        ("put", "put")
    );
    assert_eq!(got[2].data["height"], h3);

    // A new watcher resuming from height 1 replays the current chain, in order.
    let replay = sse(format!("{}/watch?prefix=w/&from=1", n.url));
    let got = next_events(&replay, 6);
    assert_eq!(got[5].event, "ready", "live after the replay");
    let heights: Vec<_> = got
        .iter()
        .filter(|e| e.event == "block")
        .map(|e| e.data["height"].as_u64().unwrap())
        .collect();
    assert_eq!(heights, vec![1, 2, 3]);
    assert_eq!(
        (&got[2].data["key"], &got[3].data["key"]),
        (&Value::from("w/a"), &Value::from("w/b"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_blocks_are_mined() {
    let n = start(8, 2, MiningPolicy::Auto).await;
    let scrape = || async {
        let a = call("GET", format!("{}/metrics", n.url), vec![], false).await;
        assert_eq!(a.status, 200);
        assert!(a
            .header("content-type")
            .is_some_and(|c| c.contains("openmetrics-text")));
        String::from_utf8(a.body).unwrap()
    };
    let before = scrape().await;
    assert_eq!(metric(&before, "kvchain_height"), 0.0);
    assert!(
        before.contains("libp2p_swarm_new_listen_addr_total"),
        "libp2p's own metrics are served"
    );
    for i in 0..3 {
        let put = call(
            "PUT",
            format!("{}/kvs/m{i}?wait=confirmed", n.url),
            b"v".to_vec(),
            false,
        )
        .await;
        assert_eq!(put.status, 200);
    }
    let after = scrape().await;
    let height = metric(&after, "kvchain_height");
    assert!(height >= 2.0, "height {height}");
    assert!(metric(&after, "kvchain_blocks_accepted_total") >= height);
    assert_eq!(metric(&after, "kvchain_txs_accepted_total"), 3.0);
    assert_eq!(
        metric(&after, "kvchain_put_to_confirmed_seconds_count"),
        3.0
    );
    assert!(metric(&after, "kvchain_total_work") > metric(&before, "kvchain_total_work"));
    assert_eq!(metric(&after, "kvchain_mempool_txs"), 0.0);
}

/// Writes `values` to `key` through the store and mines them into blocks of `per_block`;
/// returns the values in chain order.
async fn versions_of(n: &ApiNode, key: &str, values: Vec<Vec<u8>>, per_block: usize) {
    let mut txs = Vec::new();
    for v in values {
        let receipt = n.node.store().put(key, v).await.unwrap();
        txs.push(pending(&n.node, &receipt.id().to_hex()).await);
    }
    for (salt, chunk) in txs.chunks(per_block).enumerate() {
        mine(&n.node, chunk.to_vec(), salt as u64 + 1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_history_comes_in_bounded_pages() {
    let n = start(4, 1, MiningPolicy::Off).await;
    let values = (0..5).map(|i| format!("v{i}").into_bytes()).collect();
    versions_of(&n, "doc", values, 5).await;
    let page = |q: &'static str| {
        call(
            "GET",
            format!("{}/kvs/doc/history{q}", n.url),
            vec![],
            false,
        )
    };
    let texts = |a: &Answer| -> Vec<String> {
        let list = a.json();
        let list = list.as_array().expect("a JSON array");
        list.iter()
            .map(|v| v["value"].as_str().unwrap().to_string())
            .collect()
    };
    let first = page("?limit=2").await;
    assert_eq!(texts(&first), ["v0", "v1"]);
    assert_eq!(first.header("x-kvchain-total"), Some("5"));
    assert_eq!(first.header("x-kvchain-next"), Some("2"));
    let second = page("?from=2&limit=2").await;
    assert_eq!(texts(&second), ["v2", "v3"]);
    assert_eq!(second.header("x-kvchain-next"), Some("4"));
    let last = page("?from=4&limit=2").await;
    assert_eq!(texts(&last), ["v4"]);
    assert_eq!(
        last.header("x-kvchain-next"),
        None,
        "no page after the last"
    );
    let past = page("?from=9").await;
    assert_eq!((past.status, texts(&past).len()), (200, 0));
    assert_eq!(past.header("x-kvchain-total"), Some("5"));
    for bad in ["?limit=0", "?limit=1001", "?from=-1"] {
        let a = page(bad).await;
        assert_eq!(a.status, 400, "{bad}: {}", String::from_utf8_lossy(&a.body));
    }
    // Large values end a page early: 60 kB each, so a 2 MiB page holds 35 of them.
    let big = (0..40).map(|i| vec![b'a' + i as u8; 60_000]).collect();
    versions_of(&n, "big", big, 16).await;
    let a = call("GET", format!("{}/kvs/big/history", n.url), vec![], false).await;
    assert_eq!(a.json().as_array().unwrap().len(), 35);
    assert_eq!(a.header("x-kvchain-next"), Some("35"));
    assert_eq!(a.header("x-kvchain-total"), Some("40"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reads_a_history_of_many_pages_whole() {
    let n = start(4, 1, MiningPolicy::Off).await;
    let values = (0..2_345).map(|i| format!("v{i}").into_bytes()).collect();
    versions_of(&n, "hot", values, 4_000).await;
    let url = n.url.clone();
    let all = tokio::task::spawn_blocking(move || {
        let client = kvchain::http::client::Client::new(&url, std::time::Duration::from_secs(30));
        client.history("hot")
    })
    .await
    .unwrap()
    .unwrap();
    let texts: Vec<&str> = all.iter().map(|v| v["value"].as_str().unwrap()).collect();
    let want: Vec<String> = (0..2_345).map(|i| format!("v{i}")).collect();
    assert_eq!(
        texts, want,
        "every version, once, in chain order, over 3 pages"
    );
}
