//! The store API against a running node with its real miner: receipts report
//! pending -> included -> confirmed, reads see every version, bad input gets a clear
//! error, and accepted writes survive a restart through the journal.

mod common;

use common::*;
use kvchain::chain::limits::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use kvchain::chain::{Op, TxError};
use kvchain::node::{self, MiningPolicy, NodeConfig, NodeHandle};
use kvchain::{Store, StoreError, TxStatus};
use std::path::Path;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

fn start(
    confirmations: u64,
    mining: MiningPolicy,
    dir: Option<&Path>,
) -> (NodeHandle, tokio::task::JoinHandle<()>) {
    let mut config = NodeConfig::new(params());
    config.confirmations = confirmations;
    config.mining = mining;
    config.data_dir = dir.map(Path::to_path_buf);
    config.keypair = key(42);
    let started = node::start(config).unwrap();
    (started.handle, started.task)
}

/// Polls `cond` until it holds, for at most LIMIT.
async fn eventually(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn stop(node: NodeHandle, task: tokio::task::JoinHandle<()>) {
    node.shutdown().await;
    tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_reports_pending_included_confirmed() {
    // Mining off: the test makes each block, so every state must be seen in turn.
    let (node, _task) = start(3, MiningPolicy::Off, None);
    let store = node.store();
    let mut receipt = store.put("greeting", "hello world").await.unwrap();
    assert_eq!(receipt.status(), TxStatus::Pending);
    let tx = tokio::time::timeout(LIMIT, async {
        loop {
            if let Some(info) = node.tx(receipt.id()).await {
                break info.tx;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the node takes the write");
    let mut parent = node.block_at(0).await.unwrap().header;
    let mut expected = vec![
        TxStatus::Included { height: 1 },
        TxStatus::Included { height: 1 },
    ];
    expected.push(TxStatus::Confirmed {
        height: 1,
        depth: 3,
    });
    for (i, want) in expected.into_iter().enumerate() {
        let txs = if i == 0 { vec![tx.clone()] } else { vec![] };
        let block = block_on(&parent, txs, 0);
        parent = block.header;
        node.submit_block(block).await.unwrap().unwrap();
        let got = receipt.wait_for(LIMIT, |s| *s == want).await.unwrap();
        assert_eq!(got, want);
    }
    assert!(receipt.status().is_final());
    let v = store.retrieve("greeting").unwrap();
    assert_eq!(v.value.as_deref(), Some(&b"hello world"[..]));
    assert_eq!(
        (v.height, v.tx_id, v.author),
        (1, receipt.id(), store.author())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_miner_takes_a_write_to_confirmed_in_order() {
    let (node, _task) = start(3, MiningPolicy::Auto, None);
    let mut receipt = node.store().put("k", "v").await.unwrap();
    // Statuses may be skipped (a receipt holds the latest), never reordered.
    let mut last_rank = 0;
    loop {
        let s = receipt.status();
        let rank = match s {
            TxStatus::Pending => 0,
            TxStatus::Included { .. } => 1,
            TxStatus::Confirmed { depth, .. } => {
                assert!(depth >= 3);
                2
            }
            TxStatus::Failed { reason } => panic!("failed: {reason}"),
        };
        assert!(rank >= last_rank, "status went back: {s:?}");
        last_rank = rank;
        if rank == 2 {
            break;
        }
        tokio::time::timeout(LIMIT, receipt.changed())
            .await
            .unwrap();
    }
    assert!(node.info().await.unwrap().height >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieve_all_gives_every_version_in_order_with_tombstones() {
    let (node, _task) = start(1, MiningPolicy::Auto, None);
    let store = node.store();
    let mut heights = Vec::new();
    for op in [
        Op::Put {
            key: "k".into(),
            value: b"one".to_vec(),
        },
        Op::Put {
            key: "k".into(),
            value: b"two".to_vec(),
        },
        Op::Delete { key: "k".into() },
        Op::Put {
            key: "k".into(),
            value: vec![0, 255, 10],
        },
    ] {
        let mut receipt = store.write(op).await.unwrap();
        heights.push(receipt.confirmed(LIMIT).await.unwrap());
    }
    let all = store.retrieve_all("k");
    let values: Vec<Option<&[u8]>> = all.iter().map(|v| v.value.as_deref()).collect();
    assert_eq!(
        values,
        vec![Some(&b"one"[..]), Some(b"two"), None, Some(&[0, 255, 10])]
    );
    assert_eq!(all.iter().map(|v| v.height).collect::<Vec<_>>(), heights);
    assert_eq!(
        store.retrieve("k").unwrap().value.as_deref(),
        Some(&[0u8, 255, 10][..])
    );
    store
        .delete("k")
        .await
        .unwrap()
        .confirmed(LIMIT)
        .await
        .unwrap();
    assert_eq!(store.retrieve("k"), None, "deleted last: no value");
    assert_eq!(store.retrieve_all("k").len(), 5);
    assert_eq!(store.retrieve("never-written"), None);
    assert!(store.retrieve_all("never-written").is_empty());
}

#[tokio::test]
async fn bad_keys_and_values_get_a_clear_error() {
    let (node, _task) = start(1, MiningPolicy::Off, None);
    let store: &Store = node.store();
    let err = |r: Result<_, StoreError>| r.map(|_| ()).unwrap_err();
    assert_eq!(
        err(store.put("", "v").await),
        StoreError::Invalid(TxError::EmptyKey)
    );
    let long = "k".repeat(MAX_KEY_BYTES + 1);
    assert_eq!(
        err(store.put(long.as_str(), "v").await),
        StoreError::Invalid(TxError::KeyTooLong(MAX_KEY_BYTES + 1))
    );
    assert_eq!(
        err(store.delete("tab\there").await),
        StoreError::Invalid(TxError::KeyControlChar)
    );
    let big = vec![0u8; MAX_VALUE_BYTES + 1];
    assert_eq!(
        err(store.put("k", big).await),
        StoreError::Invalid(TxError::ValueTooLarge(MAX_VALUE_BYTES + 1))
    );
    assert_eq!(
        StoreError::Invalid(TxError::EmptyKey).to_string(),
        "key is empty",
        "errors read plainly"
    );
    // Nothing reached the mempool.
    assert_eq!(node.info().await.unwrap().mempool, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_write_survives_a_restart_before_it_is_mined() {
    let dir = tempfile::tempdir().unwrap();
    let (node, task) = start(2, MiningPolicy::Off, Some(dir.path()));
    let receipt = node.store().put("durable", "yes").await.unwrap();
    // Wait until the node has taken it (it is in the mempool), then stop the node.
    let deadline = Instant::now() + LIMIT;
    while node.info().await.unwrap().mempool == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(receipt.status(), TxStatus::Pending);
    stop(node, task).await;

    let (node, task) = start(2, MiningPolicy::Auto, Some(dir.path()));
    let store = node.store().clone();
    eventually(|| store.retrieve("durable").is_some()).await;
    let v = store.retrieve("durable").unwrap();
    assert_eq!(v.tx_id, receipt.id());
    // Auto mining goes on until the journaled write is confirmed, then stops.
    let deadline = Instant::now() + LIMIT;
    loop {
        let info = node.info().await.unwrap();
        if !info.mining_active && info.height > v.height {
            break;
        }
        assert!(Instant::now() < deadline, "mining did not stop: {info:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let height = node.info().await.unwrap().height;
    stop(node, task).await;
    assert!(
        matches!(store.put("late", "x").await, Err(StoreError::NodeStopped)),
        "a store held past shutdown reports the stop"
    );

    // And the chain itself survives a restart.
    let (node, _task) = start(2, MiningPolicy::Off, Some(dir.path()));
    assert_eq!(node.info().await.unwrap().height, height);
    assert_eq!(
        node.store().retrieve("durable").unwrap().tx_id,
        receipt.id()
    );
}

#[tokio::test]
async fn an_idle_node_does_not_mine_under_auto() {
    let (node, _task) = start(1, MiningPolicy::Auto, None);
    let info = node.info().await.unwrap();
    assert!(!info.mining_active);
    assert_eq!(info.height, 0);
    node.set_mining(MiningPolicy::Always).await;
    assert!(node.info().await.unwrap().mining_active);
    node.set_mining(MiningPolicy::Off).await;
    assert!(!node.info().await.unwrap().mining_active);
}
