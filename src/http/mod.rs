//! The HTTP API (`kvchain node --http ADDR`): JSON REST over the store and the chain, a
//! Server-Sent Events watch stream, and Prometheus metrics. Handlers are thin: they parse,
//! call the node handle or the store, and shape the answer.

mod chain;
pub mod error;
mod extract;
mod kvs;
mod watch;

use crate::net::NetClient;
use crate::node::{NodeHandle, NodeMetrics};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;

/// Default HTTP address: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8645";

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    /// The node.
    pub node: NodeHandle,
    /// The network, for `/peers`.
    pub net: Option<NetClient>,
    /// The metrics registry (libp2p's and the node's), for `/metrics`.
    pub registry: Arc<Registry>,
    /// The node's metrics, whose gauges are set at each scrape.
    pub metrics: Arc<NodeMetrics>,
    /// Confirmations after which a write counts as confirmed.
    pub confirmations: u64,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(
            "/kvs/{key}",
            get(kvs::get).put(kvs::put).delete(kvs::delete),
        )
        .route("/kvs/{key}/history", get(kvs::history))
        .route("/tx/{id}", get(chain::tx))
        .route("/blocks/{id}", get(chain::block))
        .route("/status", get(chain::status))
        .route("/peers", get(chain::peers))
        .route("/metrics", get(chain::metrics))
        .route("/watch", get(watch::watch))
        .fallback(|| async {
            error::ApiError::not_found("no such endpoint (see the README for the API)")
        })
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method (see the README for the API)",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::chain::params::MAX_VALUE_BYTES,
        ))
        .with_state(state)
}

/// Binds `addr` and serves the API on the current runtime; returns the bound address.
pub async fn serve(addr: SocketAddr, state: ApiState) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "http server stopped");
        }
    });
    Ok(bound)
}
