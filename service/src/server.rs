//! The HTTP server: accepts connections up to `SERVER_MAX_CONNECTIONS`, serves each with hyper's HTTP/1.1,
//! closes connections that are idle past `SERVER_IDLE_TIMEOUT` or take longer than
//! `SERVER_HEADER_READ_TIMEOUT` to send a request head, and shuts down within `SERVER_SHUTDOWN_TIMEOUT`.
//!
//! Owns sockets and connection lifetimes. It knows nothing of the routes (`app` hands it the router) or of
//! the database. axum's `serve` has none of these limits: a client that connects and sends nothing, or half
//! a request head, holds its socket forever and holds SIGTERM shutdown until it leaves.
//!
//! Above the connection limit, clients wait in the kernel's listen backlog until a connection closes; the
//! limit is lowered at start when the process's open-file limit could not hold it next to the database pool.
//!
//! The timeouts cost a request nothing but a few atomic stores: one reaper task per server ticks a clock (a
//! quarter of the shorter timeout, at most a second) and drops the connections whose phase lasted too long;
//! shutdown orders every open connection the same way. A connection's task reads its order with one atomic
//! load when it wakes, instead of polling a timer and a channel (whose shared lock every connection would
//! take at every wake-up).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use config::HttpConfig;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt as _;

mod conn;

use conn::{Activity, Clock, Order, Watched};

/// Largest request head accepted (hyper answers 431 beyond it): bounds the memory a connection can take.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Open files kept free for everything but client connections (logs, SQLite, DNS, the pool's connects).
const SPARE_FILES: u64 = 64;
/// How long the dropped connections get to unwind after the shutdown deadline.
const UNWIND: Duration = Duration::from_secs(5);

/// How the server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Connections still open at `SERVER_SHUTDOWN_TIMEOUT` and dropped then.
    pub dropped: u32,
}

/// The connection limit to enforce: `requested`, unless the open-file limit cannot hold it next to
/// `pool_size` database connections. Like Go's runtime, the soft limit is raised towards the hard limit
/// first; only when that is not enough is the connection limit lowered (with a warning).
pub fn fit_connection_limit(requested: u32, pool_size: u32) -> u32 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return requested;
    };
    let needed = u64::from(requested) + u64::from(pool_size) + SPARE_FILES;
    let mut soft_now = soft;
    if soft < needed {
        let raised = needed.min(hard);
        if setrlimit(Resource::RLIMIT_NOFILE, raised, hard).is_ok() {
            soft_now = raised;
        }
    }
    if soft_now >= needed {
        return requested;
    }
    let fitted = soft_now
        .saturating_sub(u64::from(pool_size) + SPARE_FILES)
        .clamp(1, u64::from(requested));
    let fitted = u32::try_from(fitted).unwrap_or(1);
    tracing::warn!(
        requested,
        fitted,
        open_file_limit = soft_now,
        "SERVER_MAX_CONNECTIONS={requested} does not fit the open-file limit ({soft_now}) next to \
         DB_MAX_OPEN_CONNS={pool_size}: serving at most {fitted} connections (raise the limit with ulimit -n)"
    );
    fitted
}

/// The connections open right now, for the reaper and the shutdown.
#[derive(Default)]
struct Open {
    next: AtomicU64,
    all: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Open {
    fn add(self: &Arc<Self>, activity: Arc<Activity>) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut all) = self.all.lock() {
            all.insert(id, activity);
        }
        Registration {
            open: self.clone(),
            id,
        }
    }

    /// Gives every open connection `order`.
    fn order_all(&self, order: Order) {
        let all: Vec<Arc<Activity>> = self
            .all
            .lock()
            .map(|a| a.values().cloned().collect())
            .unwrap_or_default();
        for a in all {
            a.order(order);
        }
    }
}

/// A connection's place in [`Open`], given back when the connection ends.
struct Registration {
    open: Arc<Open>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut all) = self.open.all.lock() {
            all.remove(&self.id);
        }
    }
}

/// Advances the clock every tick and drops the connections whose phase lasted too long.
async fn reap(clock: Arc<Clock>, open: Arc<Open>, limits: Arc<HttpConfig>) {
    let mut tick = tokio::time::interval(clock.tick());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        clock.advance();
        let expired: Vec<Arc<Activity>> = open
            .all
            .lock()
            .map(|all| all.values().filter(|a| a.expired(&limits)).cloned().collect())
            .unwrap_or_default();
        for a in expired {
            a.order(Order::Drop);
        }
    }
}

/// Serves `router` on `listener` until `stop` completes, then drains (see the module docs).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpConfig,
    stop: impl Future<Output = ()>,
) -> Stopped {
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max as usize));
    let clock = Arc::new(Clock::new(Clock::tick_for(&limits)));
    let open = Arc::new(Open::default());
    let limits = Arc::new(limits);
    let reaper = tokio::spawn(reap(clock.clone(), open.clone(), limits.clone()));
    tokio::pin!(stop);
    loop {
        let slot = tokio::select! {
            () = &mut stop => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let activity = Arc::new(Activity::new(clock.clone()));
                // Registered here, before the task runs, so a shutdown that starts now reaches it.
                let registration = open.add(activity.clone());
                let conn = Connection {
                    router: router.clone(),
                    activity,
                    _slot: slot,
                    _registration: registration,
                };
                tokio::spawn(conn.run(stream));
            }
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                // Out of file descriptors or memory: wait for connections to close rather than spin.
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    let open_now = || max.saturating_sub(u32::try_from(slots.available_permits()).unwrap_or(max));
    let still_open = open_now();
    tracing::info!(
        open = still_open,
        "shutting down: not accepting; letting {still_open} open connection(s) finish (at most SERVER_SHUTDOWN_TIMEOUT={})",
        humantime::format_duration(limits.shutdown_timeout)
    );
    open.order_all(Order::Drain);
    let drained = tokio::time::timeout(limits.shutdown_timeout, slots.acquire_many(max))
        .await
        .is_ok();
    let dropped = if drained {
        0
    } else {
        let dropped = open_now();
        tracing::warn!(
            dropped,
            "shutdown deadline (SERVER_SHUTDOWN_TIMEOUT={}) passed: dropping {dropped} connection(s) still open",
            humantime::format_duration(limits.shutdown_timeout)
        );
        open.order_all(Order::Drop);
        let _ = tokio::time::timeout(UNWIND, slots.acquire_many(max)).await;
        dropped
    };
    reaper.abort();
    Stopped { dropped }
}

/// Accept errors that concern one connection only (it went away before it was accepted).
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}

/// One accepted connection and what it needs to live and die.
struct Connection {
    router: Router,
    activity: Arc<Activity>,
    _slot: OwnedSemaphorePermit,
    _registration: Registration,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let activity = self.activity.clone();
        let io = TokioIo::new(Watched::new(stream, activity.clone()));
        let router = self.router.clone();
        let seen = activity.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            seen.request_started();
            let (router, seen) = (router.clone(), seen.clone());
            async move {
                let response = router.oneshot(req.map(Body::new)).await;
                seen.request_finished();
                response
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .keep_alive(true)
            .max_buf_size(MAX_HEAD_BYTES)
            // The reaper enforces the header and idle timeouts, distinctly.
            .header_read_timeout(None);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut draining = false;
        // One atomic load per wake-up for the server's orders; the reaper and the shutdown wake the task.
        std::future::poll_fn(|cx| {
            match activity.poll_order(cx) {
                // Dropping the connection closes the socket.
                Order::Drop => return Poll::Ready(()),
                Order::Drain if !draining => {
                    // Finishes the request in flight, then closes; an idle connection closes now.
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ => {}
            }
            conn.as_mut().poll(cx).map(|_| ())
        })
        .await;
    }
}
