//! `/tx/{id}`, `/blocks/{height|hash}`, `/status`, `/peers` and `/metrics`.

use super::error::ApiError;
use super::extract::IdPath;
use super::ApiState;
use crate::chain::{Block, Hash, Op};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;

fn tx_json(tx: &crate::chain::Tx) -> Value {
    let (op, key) = match tx.op() {
        Op::Put { key, .. } => ("put", key),
        Op::Delete { key } => ("del", key),
    };
    json!({ "id": tx.id().to_hex(), "op": op, "key": key, "author": tx.author().to_string(), "timestamp": tx.timestamp() })
}

/// `GET /tx/{id}`: where a write is: pending (with `received_us`, when this node's
/// mempool took it, µs since the Unix epoch), included at a height, or confirmed.
pub async fn tx(
    State(s): State<Arc<ApiState>>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let id = Hash::from_hex(&id)
        .ok_or_else(|| ApiError::bad_request("bad_id", "a tx id is 64 hex digits"))?;
    let info = s.node.tx(id).await.ok_or_else(|| {
        ApiError::not_found(format!("tx {id} is not in the chain or the mempool"))
    })?;
    let mut out = tx_json(&info.tx);
    match info.height {
        None => {
            out["status"] = json!("pending");
            // When this node's mempool took it: propagation timing across nodes.
            out["received_us"] = json!(info.received_us);
        }
        Some(height) => {
            let tip = s.node.info().await.ok_or_else(ApiError::stopped)?.height;
            // Saturating: a reorg may have shortened the chain since the tx was found.
            let depth = tip.saturating_add(1).saturating_sub(height);
            out["status"] = json!(if depth >= s.confirmations {
                "confirmed"
            } else {
                "included"
            });
            out["height"] = json!(height);
            out["depth"] = json!(depth);
        }
    }
    Ok(Json(out))
}

fn block_json(b: &Block) -> Value {
    let h = &b.header;
    json!({
        "hash": b.hash().to_hex(), "height": h.height, "prev": h.prev.to_hex(), "merkle": h.merkle.to_hex(),
        "time": h.time, "bits": h.bits, "nonce": h.nonce,
        "txs": b.txs.iter().map(tx_json).collect::<Vec<_>>(),
    })
}

/// `GET /blocks/{height|hash}`.
pub async fn block(
    State(s): State<Arc<ApiState>>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let block = match (id.parse::<u64>(), Hash::from_hex(&id)) {
        (Ok(height), _) => s.node.block_at(height).await,
        (_, Some(hash)) => s.node.block_by_hash(hash).await,
        _ => {
            return Err(ApiError::bad_request(
                "bad_id",
                "a block is a height or a 64-hex-digit hash",
            ))
        }
    };
    let block = block.ok_or_else(|| ApiError::not_found(format!("no block {id}")))?;
    Ok(Json(block_json(&block)))
}

/// `GET /status`.
pub async fn status(State(s): State<Arc<ApiState>>) -> Result<Json<Value>, ApiError> {
    let i = s.node.info().await.ok_or_else(ApiError::stopped)?;
    Ok(Json(json!({
        "network_id": i.network_id, "height": i.height, "tip": i.tip.to_hex(),
        // A string: JSON numbers lose precision past 2^53.
        "total_work": i.total_work.to_string(),
        "difficulty": i.difficulty, "mempool": i.mempool, "orphans": i.orphans, "side_blocks": i.side_blocks,
        "mining": i.mining.to_string(), "mining_active": i.mining_active, "hashrate": i.hashrate,
        "peers": i.peers, "syncing": i.syncing, "sync_target": i.sync_target,
        "confirmations": s.confirmations, "digest": s.node.store().digest_async().await.to_hex(),
    })))
}

/// `GET /digest`: the hash of the whole index, to compare nodes in one line.
pub async fn digest(State(s): State<Arc<ApiState>>) -> Result<Json<Value>, ApiError> {
    let digest = s.node.store().digest_async().await;
    let height = s.node.info().await.ok_or_else(ApiError::stopped)?.height;
    Ok(Json(json!({ "digest": digest.to_hex(), "height": height })))
}

/// A peer as JSON.
#[derive(Serialize)]
pub struct PeerJson {
    id: String,
    addrs: Vec<String>,
    penalty: u32,
}

/// `GET /peers`.
pub async fn peers(State(s): State<Arc<ApiState>>) -> Json<Vec<PeerJson>> {
    let peers = match &s.net {
        Some(net) => net.peers().await,
        None => Vec::new(),
    };
    Json(
        peers
            .into_iter()
            .map(|p| PeerJson {
                id: p.id.to_string(),
                addrs: p.addrs.iter().map(|a| a.to_string()).collect(),
                penalty: p.penalty,
            })
            .collect(),
    )
}

/// `GET /metrics`: libp2p's and the node's metrics in the OpenMetrics text format.
pub async fn metrics(State(s): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let info = s.node.info().await.ok_or_else(ApiError::stopped)?;
    s.metrics.observe(&info);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &s.registry).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "metrics",
            e.to_string(),
        )
    })?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}
