//! The accept loop of the API: one hyper HTTP/1 connection per client, at most
//! `max_connections` at once (more wait in the listen backlog until one closes), each
//! watched for the timeouts of [`super::watchdog`], each request checked by the
//! [`Guard`] before it reaches the router.

use super::guard::{Guard, CHALLENGE};
use super::watchdog::{Activity, TimedBody, Timeouts, Tracked, Watched};
use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// First pause after a failed accept (e.g. out of file descriptors); it doubles up to
/// [`MAX_BACKOFF`] while accepts keep failing.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between two failed accepts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What every connection shares.
#[derive(Clone)]
pub struct Shared {
    /// The routes.
    pub app: TowerToHyperService<Router>,
    /// Host and token checks.
    pub guard: Arc<Guard>,
    /// The connection timeouts.
    pub timeouts: Timeouts,
}

/// Accepts connections on `listener` until the runtime stops, at most `max_connections`
/// served at once.
pub async fn run(listener: TcpListener, shared: Shared, max_connections: usize) {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut backoff = MIN_BACKOFF;
    loop {
        // Over the cap, stop accepting: new clients wait in the kernel's listen backlog
        // until a connection closes and frees a slot.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = MIN_BACKOFF;
                tokio::spawn(connection(stream, peer, shared.clone(), slot));
            }
            Err(e) => {
                // Out of file descriptors, or a connection that died in the backlog:
                // the listener is fine, so wait a little and go on.
                tracing::warn!(error = %e, retry_in = ?backoff, "http accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Serves one connection until it ends or overstays a timeout.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Shared,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Activity::new(shared.timeouts);
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
    let watched = activity.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        // Busy from the moment the head is complete, until the answer is sent.
        let busy = watched.begin();
        let shared = shared.clone();
        async move {
            let response = handle(req, &shared).await;
            Ok::<_, Infallible>(response.map(|b| Body::new(Tracked::new(b, busy))))
        }
    });
    let conn = http1::Builder::new()
        // The watchdog does this (see its module doc for why).
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::select! {
        // The connection first: a head that just completed makes it busy in time.
        biased;
        result = conn => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "http connection failed");
            }
        }
        why = activity.expired() => {
            // Dropping the connection closes it; no request is in flight.
            tracing::debug!(%peer, "http connection closed: {why}");
        }
    }
}

/// Checks `req` with the guard, then hands it to the router with a deadline on its body.
async fn handle(req: Request<Incoming>, shared: &Shared) -> Response<Body> {
    if let Err(e) = shared.guard.check(&req) {
        let status = e.status;
        let mut response = e.into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, CHALLENGE);
        }
        return response;
    }
    let limit = shared.timeouts.body;
    let req = req.map(|b| Body::new(TimedBody::new(b, limit)));
    match shared.app.call(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
