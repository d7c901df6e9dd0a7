//! Per-connection timeouts, which hyper's HTTP/1 server leaves to its caller.
//!
//! A connection is in one of three phases. *Head*: from accept, or from the first byte of
//! a later request, until hyper has the whole request head; it must not last longer than
//! the header-read timeout, however slowly the bytes trickle in. *Busy*: a request is
//! being served, from its head until the last byte of the answer (a `wait=confirmed`
//! write or a watch stream may take long: that is not idleness). *Idle*: a keep-alive
//! connection between two requests, closed after the idle timeout. The request body has
//! a deadline of its own ([`TimedBody`]), counted from the end of the head.
//!
//! hyper's own `header_read_timeout` is not used: it restarts when a keep-alive
//! connection goes idle, so it cannot be told apart from the idle timeout.

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// The three timeouts of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Longest time from accept (or a request's first byte) to the end of its head.
    pub header: Duration,
    /// Longest time from the end of a request's head to the end of its body.
    pub body: Duration,
    /// Longest time a keep-alive connection may wait for its next request.
    pub idle: Duration,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Head { since: Instant },
    Busy { requests: usize },
    Idle { since: Instant },
}

/// What a connection is doing, shared by its reads, its requests and its watchdog.
#[derive(Debug)]
pub struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
    timeouts: Timeouts,
}

impl Activity {
    /// A connection just accepted: reading its first head.
    pub fn new(timeouts: Timeouts) -> Arc<Activity> {
        Arc::new(Activity {
            phase: Mutex::new(Phase::Head {
                since: Instant::now(),
            }),
            changed: Notify::new(),
            timeouts,
        })
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        // A panic elsewhere cannot leave a `Phase` half-written: keep using it.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, next: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase();
        *phase = next(*phase);
        drop(phase);
        self.changed.notify_waiters();
    }

    /// Bytes arrived: on an idle connection, a new request's head has begun.
    fn on_read(&self) {
        if matches!(*self.phase(), Phase::Idle { .. }) {
            self.set(|_| Phase::Head {
                since: Instant::now(),
            });
        }
    }

    /// A request's head is complete; the connection is busy until the guard drops.
    pub fn begin(self: &Arc<Activity>) -> BusyGuard {
        self.set(|p| match p {
            Phase::Busy { requests } => Phase::Busy {
                requests: requests + 1,
            },
            Phase::Head { .. } | Phase::Idle { .. } => Phase::Busy { requests: 1 },
        });
        BusyGuard(self.clone())
    }

    fn end(&self) {
        self.set(|p| match p {
            Phase::Busy { requests } if requests > 1 => Phase::Busy {
                requests: requests - 1,
            },
            _ => Phase::Idle {
                since: Instant::now(),
            },
        });
    }

    fn deadline(&self) -> Option<(Instant, &'static str)> {
        match *self.phase() {
            Phase::Head { since } => Some((since + self.timeouts.header, "header read timeout")),
            Phase::Idle { since } => Some((since + self.timeouts.idle, "idle timeout")),
            Phase::Busy { .. } => None,
        }
    }

    /// Resolves when the connection has overstayed its current phase, with the reason.
    pub async fn expired(&self) -> &'static str {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the phase is read, so no change can slip between.
            notified.as_mut().enable();
            match self.deadline() {
                None => notified.await,
                Some((at, why)) => {
                    if Instant::now() >= at {
                        return why;
                    }
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = notified => {}
                    }
                }
            }
        }
    }
}

/// Keeps its connection busy while it lives (it rides in the answer's body).
#[derive(Debug)]
pub struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// A connection's byte stream, reporting reads to its [`Activity`].
pub struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    /// Wraps `io`.
    pub fn new(io: T, activity: Arc<Activity>) -> Watched<T> {
        Watched { io, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.on_read();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The error of a request body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

/// A request body that fails with [`BodyTimeout`] once its deadline passes.
pub struct TimedBody {
    inner: Incoming,
    limit: Duration,
    start: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    /// `inner`, which must end within `limit` from now.
    pub fn new(inner: Incoming, limit: Duration) -> TimedBody {
        TimedBody {
            inner,
            limit,
            start: Instant::now(),
            sleep: None,
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(axum::BoxError::from)));
        }
        // Only a body that makes us wait needs a timer.
        let (start, limit) = (this.start, this.limit);
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(start + limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body holding its connection busy until hyper is done with it.
pub struct Tracked {
    inner: Body,
    _busy: BusyGuard,
}

impl Tracked {
    /// `inner`, keeping `busy` alive as long as it is.
    pub fn new(inner: Body, busy: BusyGuard) -> Tracked {
        Tracked { inner, _busy: busy }
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(100);
    const LONG: Duration = Duration::from_secs(3600);
    /// Bound on a wait that should end: far above any timeout used here.
    const BOUND: Duration = Duration::from_secs(20);

    fn timeouts(header: Duration, idle: Duration) -> Timeouts {
        Timeouts {
            header,
            body: LONG,
            idle,
        }
    }

    async fn expires(a: &Activity) -> &'static str {
        tokio::time::timeout(BOUND, a.expired())
            .await
            .expect("the connection should have expired")
    }

    #[tokio::test]
    async fn a_head_expires_after_the_header_timeout_whatever_bytes_come() {
        let a = Activity::new(timeouts(SHORT, LONG));
        // Bytes trickling in do not move the deadline of a head already begun.
        a.on_read();
        assert_eq!(expires(&a).await, "header read timeout");
    }

    #[tokio::test]
    async fn a_busy_connection_does_not_expire_and_then_idles() {
        let a = Activity::new(timeouts(SHORT, SHORT));
        let busy = a.begin();
        let waited = tokio::time::timeout(SHORT * 5, a.expired()).await;
        assert!(waited.is_err(), "busy far past both timeouts, still open");
        drop(busy);
        assert_eq!(expires(&a).await, "idle timeout");
    }

    #[tokio::test]
    async fn a_byte_on_an_idle_connection_starts_a_head() {
        let a = Activity::new(timeouts(SHORT, LONG));
        drop(a.begin());
        a.on_read();
        assert_eq!(expires(&a).await, "header read timeout");
    }
}
