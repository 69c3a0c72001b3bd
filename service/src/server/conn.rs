//! What a connection is doing, as the server's reaper and shutdown need to know it: waiting for a request
//! (idle), receiving a request head, or handling a request; since when; and what the server asks of it.
//!
//! Owns the phase rules and the two deadlines: `SERVER_IDLE_TIMEOUT` for an idle connection (before its first
//! request and between requests), `SERVER_HEADER_READ_TIMEOUT` from the first byte of a request head until
//! the request is handed to the router. A connection handling a request has no deadline here (the handlers'
//! own bounds and the shutdown deadline apply).
//!
//! Time is the reaper's tick count ([`Clock`]), not the system clock: a request costs a few atomic stores and
//! no clock read, and the deadlines hold to within one tick (the tick is a quarter of the shorter timeout, at
//! most a second).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use config::HttpConfig;
use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// What the server asks of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Order {
    /// Serve requests.
    Serve = 0,
    /// Finish the request in flight, then close (SIGTERM).
    Drain = 1,
    /// Close now (a timeout, or the shutdown deadline).
    Drop = 2,
}

/// The reaper's clock: ticks of a fixed length, advanced by the reaper only.
#[derive(Debug)]
pub(super) struct Clock {
    tick: Duration,
    now: AtomicU64,
}

impl Clock {
    pub(super) fn new(tick: Duration) -> Self {
        Self {
            tick,
            now: AtomicU64::new(0),
        }
    }

    /// The tick for `limits`: a quarter of the shorter timeout, between 10 ms and 1 s.
    pub(super) fn tick_for(limits: &HttpConfig) -> Duration {
        (limits.header_read_timeout.min(limits.idle_timeout) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    pub(super) fn tick(&self) -> Duration {
        self.tick
    }

    pub(super) fn advance(&self) {
        self.now.fetch_add(1, Ordering::AcqRel);
    }

    fn now(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }

    /// Ticks that must have passed, strictly more than, for `limit` to be over for sure.
    fn ticks(&self, limit: Duration) -> u64 {
        let tick = self.tick.as_nanos().max(1);
        u64::try_from(limit.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX)
    }
}

/// One connection's phase, the tick it began at, and the server's order with the waker that delivers it.
#[derive(Debug)]
pub(super) struct Activity {
    clock: Arc<Clock>,
    phase: AtomicU8,
    since: AtomicU64,
    order: AtomicU8,
    waker: AtomicWaker,
}

impl Activity {
    pub(super) fn new(clock: Arc<Clock>) -> Self {
        let since = clock.now();
        Self {
            clock,
            phase: AtomicU8::new(IDLE),
            since: AtomicU64::new(since),
            order: AtomicU8::new(Order::Serve as u8),
            waker: AtomicWaker::new(),
        }
    }

    /// Bytes arrived: on an idle connection, a request head has begun.
    fn read(&self) {
        if self
            .phase
            .compare_exchange(IDLE, HEAD, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.since.store(self.clock.now(), Ordering::Release);
        }
    }

    /// hyper handed a request to the router.
    pub(super) fn request_started(&self) {
        self.phase.store(BUSY, Ordering::Release);
    }

    /// The router answered; the connection waits for the next request.
    pub(super) fn request_finished(&self) {
        self.since.store(self.clock.now(), Ordering::Release);
        self.phase.store(IDLE, Ordering::Release);
    }

    /// Whether the current phase has lasted longer than it may.
    pub(super) fn expired(&self, limits: &HttpConfig) -> bool {
        let limit = match self.phase.load(Ordering::Acquire) {
            IDLE => limits.idle_timeout,
            HEAD => limits.header_read_timeout,
            _ => return false,
        };
        let age = self
            .clock
            .now()
            .saturating_sub(self.since.load(Ordering::Acquire));
        age > self.clock.ticks(limit)
    }

    /// Gives the connection an order (it never goes back from `Drop`) and wakes it to act on it.
    pub(super) fn order(&self, order: Order) {
        self.order.fetch_max(order as u8, Ordering::AcqRel);
        self.waker.wake();
    }

    /// The current order; registers the connection's task to be woken when it changes.
    pub(super) fn poll_order(&self, cx: &Context<'_>) -> Order {
        self.waker.register(cx.waker());
        match self.order.load(Ordering::Acquire) {
            0 => Order::Serve,
            1 => Order::Drain,
            _ => Order::Drop,
        }
    }
}

/// A socket that reports the start of each request head to an [`Activity`].
pub(super) struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    pub(super) fn new(inner: T, activity: Arc<Activity>) -> Self {
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
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(3),
            ..HttpConfig::default()
        }
    }

    /// Advances the clock by `d` in whole ticks.
    fn pass(clock: &Clock, d: Duration) {
        for _ in 0..clock.ticks(d) {
            clock.advance();
        }
    }

    #[test]
    fn a_head_that_does_not_finish_expires_on_the_header_timeout_not_the_idle_one() {
        let clock = Arc::new(Clock::new(Clock::tick_for(&limits())));
        assert_eq!(clock.tick(), Duration::from_millis(250));
        let a = Activity::new(clock.clone());
        pass(&clock, Duration::from_secs(1));
        clock.advance();
        assert!(!a.expired(&limits()), "idle for a second, the idle timeout is 3");
        a.read();
        pass(&clock, Duration::from_secs(1));
        assert!(
            !a.expired(&limits()),
            "exactly the header timeout is not over it yet"
        );
        clock.advance();
        assert!(
            a.expired(&limits()),
            "a head taking longer than the header timeout"
        );
        a.request_started();
        pass(&clock, Duration::from_secs(10));
        assert!(
            !a.expired(&limits()),
            "a request being handled has no deadline here"
        );
        a.request_finished();
        pass(&clock, Duration::from_secs(3));
        assert!(!a.expired(&limits()), "idle again, on the idle timeout");
        clock.advance();
        assert!(a.expired(&limits()));
    }

    #[test]
    fn an_order_never_goes_back_from_drop() {
        let a = Activity::new(Arc::new(Clock::new(Duration::from_secs(1))));
        let cx = Context::from_waker(futures::task::noop_waker_ref());
        assert_eq!(a.poll_order(&cx), Order::Serve);
        a.order(Order::Drop);
        a.order(Order::Drain);
        assert_eq!(a.poll_order(&cx), Order::Drop);
    }
}
