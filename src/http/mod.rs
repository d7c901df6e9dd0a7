//! The HTTP API (`kvchain node --http ADDR`): JSON REST over the store and the chain, a
//! Server-Sent Events watch stream, and Prometheus metrics. Handlers are thin: they parse,
//! call the node handle or the store, and shape the answer.
//!
//! The API is meant to be safe to leave on: requests must name an allowed host, writes
//! may need a bearer token ([`guard`]), connections have timeouts and a cap
//! ([`HttpConfig`]), and every refusal is a JSON error ([`error`]).

mod chain;
pub mod client;
pub mod error;
mod extract;
pub mod guard;
mod kvs;
mod server;
mod watch;
mod watchdog;

pub use guard::{parse_vhost, read_token_file, HostAllowlist, Token, TokenError};

use crate::net::NetClient;
use crate::node::{NodeHandle, NodeMetrics};
use axum::routing::get;
use axum::{Extension, Router};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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

/// How the API guards itself; [`HttpConfig::default`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Hosts a request may name (`--http-vhosts`; `*` allows any). `None`: `localhost`,
    /// `127.0.0.1`, `[::1]` and the bound address.
    pub vhosts: Option<Vec<String>>,
    /// The bearer token every write must carry; `None`: writes need none.
    pub token: Option<Token>,
    /// Longest time from accept (or a request's first byte) to the end of its headers.
    pub header_read_timeout: Duration,
    /// Longest time from the end of a request's headers to the end of its body.
    pub body_read_timeout: Duration,
    /// Longest time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// `/watch` streams open at once; more are answered 503 `too_many_watchers`.
    pub max_watchers: usize,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            vhosts: None,
            token: None,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 256,
            max_watchers: 64,
        }
    }
}

/// The API's routes, allowing `max_watchers` watch streams at once.
pub fn router(state: ApiState, max_watchers: usize) -> Router {
    Router::new()
        .route(
            "/kvs/{key}",
            get(kvs::get).put(kvs::put).delete(kvs::delete),
        )
        .route("/kvs/{key}/history", get(kvs::history))
        .route("/tx/{id}", get(chain::tx))
        .route("/blocks/{id}", get(chain::block))
        .route("/status", get(chain::status))
        .route("/digest", get(chain::digest))
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
            crate::chain::limits::MAX_VALUE_BYTES,
        ))
        .layer(Extension(watch::Slots::new(max_watchers)))
        // Behind an `Arc`: axum clones the state for every request, and a clone of its
        // channel senders and `Arc`s was some 3% of a loaded node's CPU.
        .with_state(Arc::new(state))
}

/// Binds `addr` and serves the API with the default [`HttpConfig`] on the current
/// runtime; returns the bound address.
pub async fn serve(addr: SocketAddr, state: ApiState) -> std::io::Result<SocketAddr> {
    serve_with(addr, state, HttpConfig::default()).await
}

/// Binds `addr` and serves the API with `config` on the current runtime; returns the
/// bound address.
pub async fn serve_with(
    addr: SocketAddr,
    state: ApiState,
    config: HttpConfig,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let hosts = match &config.vhosts {
        None => HostAllowlist::local(bound),
        Some(names) => HostAllowlist::from_names(names),
    };
    let shared = server::Shared {
        app: hyper_util::service::TowerToHyperService::new(router(state, config.max_watchers)),
        guard: Arc::new(guard::Guard::new(hosts, config.token)),
        timeouts: watchdog::Timeouts {
            header: config.header_read_timeout,
            body: config.body_read_timeout,
            idle: config.idle_timeout,
        },
    };
    tokio::spawn(server::run(listener, shared, config.max_connections));
    Ok(bound)
}
