//! What a connection is doing, as the server's watchdog needs to know it: waiting for a request (idle),
//! receiving a request head, or handling a request; and since when.
//!
//! Owns the phase rules and the two deadlines: `SERVER_IDLE_TIMEOUT` for an idle connection (before its first
//! request and between requests), `SERVER_HEADER_READ_TIMEOUT` from the first byte of a request head until
//! the request is handed to the router. A connection handling a request has no deadline here (the handlers'
//! own bounds and the shutdown deadline apply).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use config::HttpConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// The phase of one connection and when it began (or when bytes last moved while idle).
#[derive(Debug)]
pub(super) struct Activity {
    start: Instant,
    phase: AtomicU8,
    /// Nanoseconds since `start`.
    since: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Self {
        Self {
            start: Instant::now(),
            phase: AtomicU8::new(IDLE),
            since: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Bytes arrived: on an idle connection, a request head has begun.
    fn read(&self) {
        if self
            .phase
            .compare_exchange(IDLE, HEAD, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.since.store(self.now(), Ordering::Release);
        }
    }

    /// Bytes left: a response still being written keeps an idle connection alive.
    fn wrote(&self) {
        if self.phase.load(Ordering::Acquire) == IDLE {
            self.since.store(self.now(), Ordering::Release);
        }
    }

    /// hyper handed a request to the router.
    pub(super) fn request_started(&self) {
        self.phase.store(BUSY, Ordering::Release);
    }

    /// The router answered; the connection waits for the next request.
    pub(super) fn request_finished(&self) {
        self.since.store(self.now(), Ordering::Release);
        self.phase.store(IDLE, Ordering::Release);
    }

    fn limit(&self, limits: &HttpConfig) -> Option<Duration> {
        match self.phase.load(Ordering::Acquire) {
            IDLE => Some(limits.idle_timeout),
            HEAD => Some(limits.header_read_timeout),
            _ => None,
        }
    }

    /// When to look again: the current phase's deadline, or one idle timeout from now while busy.
    pub(super) fn deadline(&self, limits: &HttpConfig) -> Instant {
        match self.limit(limits) {
            Some(limit) => self.start + Duration::from_nanos(self.since.load(Ordering::Acquire)) + limit,
            None => Instant::now() + limits.idle_timeout,
        }
    }

    /// Whether the current phase has lasted longer than it may.
    pub(super) fn expired(&self, limits: &HttpConfig) -> bool {
        self.limit(limits).is_some_and(|limit| {
            let since = Duration::from_nanos(self.since.load(Ordering::Acquire));
            self.start.elapsed().saturating_sub(since) >= limit
        })
    }
}

/// A socket that reports its reads and writes to an [`Activity`].
pub(super) struct Watched<T> {
    inner: T,
    activity: std::sync::Arc<Activity>,
}

impl<T> Watched<T> {
    pub(super) fn new(inner: T, activity: std::sync::Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpConfig {
        HttpConfig {
            header_read_timeout: Duration::from_millis(10),
            idle_timeout: Duration::from_secs(3600),
            ..HttpConfig::default()
        }
    }

    #[test]
    fn a_head_that_does_not_finish_expires_on_the_header_timeout_not_the_idle_one() {
        let a = Activity::new();
        assert!(!a.expired(&limits()), "idle for less than an hour");
        a.read();
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            a.expired(&limits()),
            "a head taking longer than the header timeout"
        );
        a.request_started();
        assert!(
            !a.expired(&limits()),
            "a request being handled has no deadline here"
        );
        a.request_finished();
        assert!(!a.expired(&limits()), "idle again, on the idle timeout");
    }
}
