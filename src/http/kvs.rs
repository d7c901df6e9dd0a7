//! `/kvs/{key}`: write, delete and read values, and a key's history.
//!
//! Keys are path segments: percent-encode a `/` inside a key as `%2F`.

use super::error::ApiError;
use super::extract::{ApiQuery, KeyPath};
use super::watchdog::BodyTimeout;
use super::ApiState;
use crate::chain::{tx::check_key, Version};
use crate::node::{HistoryPage, Page, Receipt, StoreError, TxStatus};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Longest `?timeout=` a write may wait.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// `?timeout=` when none is given.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// Query of `PUT` and `DELETE`.
#[derive(Debug, Deserialize)]
pub struct WriteQuery {
    /// `included` or `confirmed`: answer once the write gets there.
    wait: Option<String>,
    /// How long to wait: seconds, or a number with `ms` or `s`.
    timeout: Option<String>,
}

/// Answer to a write.
#[derive(Debug, Serialize)]
pub struct WriteAnswer {
    tx: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    depth: Option<u64>,
}

/// Query of reads.
#[derive(Debug, Deserialize)]
pub struct ReadQuery {
    /// Only versions at least this many blocks deep (the including block counts).
    min_conf: Option<u64>,
}

/// Most versions in one page of `/history`, and the default.
pub const HISTORY_PAGE: usize = 1_000;
/// Value bytes after which a page of `/history` ends (its JSON holds each value about
/// three times: as text and as hex).
pub const HISTORY_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// Query of `/history`.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    /// Only versions at least this many blocks deep (the including block counts).
    min_conf: Option<u64>,
    /// Index of the first version to return (0, the oldest, by default).
    from: Option<usize>,
    /// Most versions to return (at most [`HISTORY_PAGE`], the default).
    limit: Option<usize>,
}

/// A version as JSON.
#[derive(Debug, Serialize)]
pub struct VersionJson {
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_hex: Option<String>,
    deleted: bool,
    height: u64,
    tx: String,
    author: String,
    timestamp: u64,
}

impl VersionJson {
    /// The JSON form of `v`: `value` when it is UTF-8 text, `value_hex` always.
    pub fn new(key: &str, v: &Version) -> VersionJson {
        VersionJson {
            key: key.to_string(),
            value: v
                .value
                .as_deref()
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(str::to_string),
            value_hex: v.value.as_deref().map(hex::encode),
            deleted: v.value.is_none(),
            height: v.height,
            tx: v.tx_id.to_hex(),
            author: v.author.to_string(),
            timestamp: v.timestamp,
        }
    }
}

fn parse_timeout(s: &str) -> Option<Duration> {
    let d = if let Some(ms) = s.strip_suffix("ms") {
        Duration::from_millis(ms.parse().ok()?)
    } else {
        Duration::try_from_secs_f64(s.strip_suffix('s').unwrap_or(s).parse().ok()?).ok()?
    };
    (d <= MAX_WAIT).then_some(d)
}

fn valid_key(key: &str) -> Result<(), ApiError> {
    check_key(key).map_err(|e| ApiError::bad_request("bad_key", e.to_string()))
}

/// Whether the body failed because it did not arrive in time.
fn timed_out(e: &BytesRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<BodyTimeout>() {
            return true;
        }
        source = err.source();
    }
    false
}

fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| match e.status() {
        _ if timed_out(&e) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the request body did not arrive in time",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(e.status(), "value_too_large", e.body_text())
        }
        status => ApiError::new(status, "bad_body", e.body_text()),
    })
}

/// What a write's query asks for, checked before anything is written.
struct WaitSpec {
    until: Option<fn(&TxStatus) -> bool>,
    timeout: Duration,
}

fn is_not_pending(s: &TxStatus) -> bool {
    *s != TxStatus::Pending
}

impl WaitSpec {
    fn parse(q: &WriteQuery) -> Result<WaitSpec, ApiError> {
        let timeout = match q.timeout.as_deref() {
            None => DEFAULT_WAIT,
            Some(t) => parse_timeout(t).ok_or_else(|| {
                ApiError::bad_request(
                    "bad_timeout",
                    format!("timeout {t:?}: use e.g. 10, 10s or 500ms, at most 600 s"),
                )
            })?,
        };
        let until: Option<fn(&TxStatus) -> bool> = match q.wait.as_deref() {
            None => None,
            Some("included") => Some(is_not_pending),
            Some("confirmed") => Some(TxStatus::is_final),
            Some(other) => {
                return Err(ApiError::bad_request(
                    "bad_wait",
                    format!("wait={other}: use included or confirmed"),
                ));
            }
        };
        Ok(WaitSpec { until, timeout })
    }
}

/// `PUT /kvs/{key}`: the body is the value.
pub async fn put(
    State(s): State<Arc<ApiState>>,
    KeyPath(key): KeyPath,
    ApiQuery(q): ApiQuery<WriteQuery>,
    value: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<WriteAnswer>), ApiError> {
    let value = body(value)?;
    valid_key(&key)?;
    let spec = WaitSpec::parse(&q)?;
    let receipt = s.node.store().put(key, value.to_vec()).await?;
    answer_write(receipt, spec).await
}

/// `DELETE /kvs/{key}`.
pub async fn delete(
    State(s): State<Arc<ApiState>>,
    KeyPath(key): KeyPath,
    ApiQuery(q): ApiQuery<WriteQuery>,
) -> Result<(StatusCode, Json<WriteAnswer>), ApiError> {
    valid_key(&key)?;
    let spec = WaitSpec::parse(&q)?;
    let receipt = s.node.store().delete(key).await?;
    answer_write(receipt, spec).await
}

async fn answer_write(
    mut receipt: Receipt,
    spec: WaitSpec,
) -> Result<(StatusCode, Json<WriteAnswer>), ApiError> {
    let status = match spec.until {
        None => receipt.status(),
        Some(until) => wait(&mut receipt, spec.timeout, until).await?,
    };
    let tx = receipt.id().to_hex();
    let (code, status, height, depth) = match status {
        TxStatus::Pending => (StatusCode::ACCEPTED, "pending", None, None),
        TxStatus::Included { height } => (StatusCode::OK, "included", Some(height), None),
        TxStatus::Confirmed { height, depth } => {
            (StatusCode::OK, "confirmed", Some(height), Some(depth))
        }
        TxStatus::Failed { reason } => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "rejected",
                format!("tx {tx}: {reason}"),
            ));
        }
    };
    Ok((
        code,
        Json(WriteAnswer {
            tx,
            status,
            height,
            depth,
        }),
    ))
}

async fn wait(
    receipt: &mut Receipt,
    timeout: Duration,
    pred: impl FnMut(&TxStatus) -> bool,
) -> Result<TxStatus, ApiError> {
    match receipt.wait_for(timeout, pred).await {
        Ok(s) => Ok(s),
        Err(StoreError::Timeout) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("tx {} not there yet; it stays pending", receipt.id()),
        )),
        Err(e) => Err(e.into()),
    }
}

/// How many blocks deep a version at `height` is under `tip` (the including block
/// counts); saturating, as `k` may be any number a query names.
fn depth(tip: u64, height: u64) -> u64 {
    tip.saturating_add(1).saturating_sub(height)
}

/// Versions of `key`, only those at least `min_conf` deep when asked.
async fn versions(
    s: &ApiState,
    key: &str,
    min_conf: Option<u64>,
) -> Result<Vec<Version>, ApiError> {
    valid_key(key)?;
    let mut all = s.node.store().retrieve_all(key);
    if let Some(k) = min_conf.filter(|k| *k > 1) {
        let tip = s.node.info().await.ok_or_else(ApiError::stopped)?.height;
        all.retain(|v| depth(tip, v.height) >= k);
    }
    Ok(all)
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// `GET /kvs/{key}`: the raw value with its metadata in headers, or JSON on request.
pub async fn get(
    State(s): State<Arc<ApiState>>,
    KeyPath(key): KeyPath,
    ApiQuery(q): ApiQuery<ReadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let latest = match q.min_conf {
        // The fast path: one read lock on the index, no round trip to the node task.
        None | Some(0) | Some(1) => {
            valid_key(&key)?;
            s.node.store().retrieve(&key)
        }
        k => versions(&s, &key, k)
            .await?
            .pop()
            .filter(|v| v.value.is_some()),
    };
    let Some(v) = latest else {
        return Err(ApiError::not_found(format!("key {key:?} has no value")));
    };
    if wants_json(&headers) {
        return Ok(Json(VersionJson::new(&key, &v)).into_response());
    }
    let value = v
        .value
        .as_deref()
        .map(Bytes::copy_from_slice)
        .unwrap_or_default();
    let mut response = value.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    for (name, val) in [
        ("x-kvchain-height", v.height.to_string()),
        ("x-kvchain-tx", v.tx_id.to_hex()),
        ("x-kvchain-author", v.author.to_string()),
    ] {
        if let Ok(val) = HeaderValue::from_str(&val) {
            h.insert(name, val);
        }
    }
    Ok(response)
}

/// `GET /kvs/{key}/history`: the versions in chain order, deletes included, a page at a
/// time: `?from=N&limit=M` (at most [`HISTORY_PAGE`] versions and about
/// [`HISTORY_PAGE_BYTES`] of values). The header `x-kvchain-total` gives the number of
/// versions, and `x-kvchain-next` the `from` of the next page while there is one.
pub async fn history(
    State(s): State<Arc<ApiState>>,
    KeyPath(key): KeyPath,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Response, ApiError> {
    valid_key(&key)?;
    let limit = q.limit.unwrap_or(HISTORY_PAGE);
    if limit == 0 || limit > HISTORY_PAGE {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("limit={limit}: give 1 to {HISTORY_PAGE}"),
        ));
    }
    let from = q.from.unwrap_or(0);
    // At least k deep: at most tip + 1 - k high (none at all when k exceeds the chain).
    let max_height = match q.min_conf.filter(|k| *k > 1) {
        Some(k) => {
            let tip = s.node.info().await.ok_or_else(ApiError::stopped)?.height;
            (tip + 1).checked_sub(k)
        }
        None => Some(u64::MAX),
    };
    let page = match max_height {
        Some(max_height) => s.node.store().retrieve_page(
            &key,
            Page {
                from,
                limit,
                max_bytes: HISTORY_PAGE_BYTES,
                max_height,
            },
        ),
        None => HistoryPage {
            versions: Vec::new(),
            total: 0,
        },
    };
    let list: Vec<VersionJson> = page
        .versions
        .iter()
        .map(|v| VersionJson::new(&key, v))
        .collect();
    let mut response = Json(list).into_response();
    let h = response.headers_mut();
    h.insert("x-kvchain-total", HeaderValue::from(page.total));
    let next = from.saturating_add(page.versions.len());
    if !page.versions.is_empty() && next < page.total {
        h.insert("x-kvchain-next", HeaderValue::from(next));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_with_units_and_a_cap() {
        assert_eq!(parse_timeout("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_timeout("2.5s"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_timeout("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_timeout("601"), None);
        assert_eq!(parse_timeout("-1"), None);
        assert_eq!(parse_timeout("soon"), None);
    }

    #[test]
    fn depth_never_overflows() {
        assert_eq!(depth(10, 10), 1);
        assert_eq!(depth(10, 8), 3);
        assert_eq!(depth(u64::MAX, 0), u64::MAX);
        assert_eq!(depth(3, 9), 0);
    }
}
