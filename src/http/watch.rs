//! `GET /watch?prefix=&from=`: a Server-Sent Events stream of changes to keys under a
//! prefix as blocks connect, and of versions a reorg removes; resumable from a height,
//! like etcd's watch.
//!
//! Events: `ready` once the stream is live (after any replay), with the tip height; `put`
//! and `del` for each matching write of a connected block, then `block` (its id is the
//! height: resume with `from` = last block id + 1); `undo` for each matching write of a
//! disconnected block; `lagged` if the reader fell too far behind, after which the stream
//! ends and the client resumes with `from`.

use super::error::ApiError;
use super::extract::ApiQuery;
use super::ApiState;
use crate::chain::{Block, BlockHash, Op, TipChange};
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, Semaphore};

/// Heights of delivered blocks remembered for reorgs (deeper reorgs are not reported).
const REMEMBER: usize = 4096;

/// The watch streams that may be open at once: a stream holds a permit until its
/// client goes.
#[derive(Clone)]
pub struct Slots(Arc<Semaphore>);

impl Slots {
    /// Room for `n` streams.
    pub fn new(n: usize) -> Slots {
        Slots(Arc::new(Semaphore::new(n)))
    }
}

/// Query of `/watch`.
#[derive(Debug, Deserialize)]
pub struct WatchQuery {
    /// Only keys starting with this.
    #[serde(default)]
    prefix: String,
    /// Replay the canonical chain from this height before following it.
    from: Option<u64>,
}

/// What the stream has told its client: block hash per height.
struct Cursor {
    prefix: String,
    delivered: BTreeMap<u64, BlockHash>,
    out: mpsc::Sender<Event>,
}

impl Cursor {
    async fn send(&self, event: Event) -> bool {
        self.out.send(event).await.is_ok()
    }

    /// Sends a connected block's matching writes and its `block` event.
    async fn connect(&mut self, b: &Block) -> bool {
        let height = b.header.height;
        if self.delivered.get(&height) == Some(&b.hash()) {
            return true;
        }
        for tx in b
            .txs
            .iter()
            .filter(|tx| tx.op().key().starts_with(&self.prefix))
        {
            let (kind, data) = match tx.op() {
                Op::Put { key, value } => (
                    "put",
                    json!({ "key": key, "value": std::str::from_utf8(value).ok(), "value_hex": hex::encode(value),
                            "height": height, "tx": tx.id().to_hex(), "author": tx.author().to_string() }),
                ),
                Op::Delete { key } => (
                    "del",
                    json!({ "key": key, "height": height, "tx": tx.id().to_hex(), "author": tx.author().to_string() }),
                ),
            };
            if !self
                .send(Event::default().event(kind).data(data.to_string()))
                .await
            {
                return false;
            }
        }
        self.delivered.insert(height, b.hash());
        while self.delivered.len() > REMEMBER {
            self.delivered.pop_first();
        }
        let data = json!({ "height": height, "hash": b.hash().to_hex() }).to_string();
        self.send(
            Event::default()
                .event("block")
                .id(height.to_string())
                .data(data),
        )
        .await
    }

    /// Sends `undo` for a disconnected block's matching writes, if it was delivered.
    async fn disconnect(&mut self, b: &Block) -> bool {
        let height = b.header.height;
        if self.delivered.get(&height) != Some(&b.hash()) {
            return true;
        }
        self.delivered.remove(&height);
        for tx in b
            .txs
            .iter()
            .rev()
            .filter(|tx| tx.op().key().starts_with(&self.prefix))
        {
            let data = json!({ "key": tx.op().key(), "height": height, "tx": tx.id().to_hex() });
            if !self
                .send(Event::default().event("undo").data(data.to_string()))
                .await
            {
                return false;
            }
        }
        true
    }

    async fn apply(&mut self, change: &TipChange) -> bool {
        for b in &change.disconnected {
            if !self.disconnect(b).await {
                return false;
            }
        }
        for b in &change.connected {
            if !self.connect(b).await {
                return false;
            }
        }
        true
    }
}

async fn run(s: Arc<ApiState>, q: WatchQuery, out: mpsc::Sender<Event>) {
    // Subscribe before replaying, so nothing falls between the replay and the live feed;
    // the cursor skips what the replay already sent.
    let mut tips = s.node.subscribe_tips();
    let mut cursor = Cursor {
        prefix: q.prefix,
        delivered: BTreeMap::new(),
        out,
    };
    let Some(tip) = s.node.info().await.map(|i| i.height) else {
        return;
    };
    if let Some(from) = q.from {
        for h in from.max(1)..=tip {
            let Some(b) = s.node.block_at(h).await else {
                break;
            };
            if !cursor.connect(&b).await {
                return;
            }
        }
    }
    let ready = json!({ "height": tip }).to_string();
    if !cursor
        .send(Event::default().event("ready").data(ready))
        .await
    {
        return;
    }
    loop {
        let change = tokio::select! {
            change = tips.recv() => change,
            // The client left: stop now rather than at the next block.
            () = cursor.out.closed() => return,
        };
        match change {
            Ok(change) => {
                if !cursor.apply(&change).await {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let resume = cursor
                    .delivered
                    .last_key_value()
                    .map_or(1, |(h, _)| h.saturating_add(1));
                let data = json!({ "resume_from": resume }).to_string();
                let _ = cursor
                    .send(Event::default().event("lagged").data(data))
                    .await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// `GET /watch`; 503 `too_many_watchers` when all slots are taken.
pub async fn watch(
    State(s): State<Arc<ApiState>>,
    Extension(slots): Extension<Slots>,
    ApiQuery(q): ApiQuery<WatchQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let slot = slots.0.try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_watchers",
            "too many watch streams are open; try again later",
        )
    })?;
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(run(s, q, tx));
    // The slot lives in the stream, which hyper drops as soon as the client goes.
    let stream = futures::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        rx.recv().await.map(|e| (Ok(e), (rx, slot)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
