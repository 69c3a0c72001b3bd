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

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use config::HttpConfig;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt as _;

mod conn;

use conn::{Activity, Watched};

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

/// Serves `router` on `listener` until `stop` completes, then drains (see the module docs).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpConfig,
    stop: impl Future<Output = ()>,
) -> Stopped {
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max as usize));
    let (control, control_rx) = watch::channel(Phase::Serving);
    let limits = Arc::new(limits);
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
                let conn = Connection {
                    router: router.clone(),
                    limits: limits.clone(),
                    _slot: slot,
                    control: control_rx.clone(),
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
    let open = open_now();
    tracing::info!(
        open,
        "shutting down: not accepting; letting {open} open connection(s) finish (at most SERVER_SHUTDOWN_TIMEOUT={})",
        humantime::format_duration(limits.shutdown_timeout)
    );
    let _ = control.send(Phase::Draining);
    if tokio::time::timeout(limits.shutdown_timeout, slots.acquire_many(max))
        .await
        .is_ok()
    {
        return Stopped { dropped: 0 };
    }
    let dropped = open_now();
    tracing::warn!(
        dropped,
        "shutdown deadline (SERVER_SHUTDOWN_TIMEOUT={}) passed: dropping {dropped} connection(s) still open",
        humantime::format_duration(limits.shutdown_timeout)
    );
    let _ = control.send(Phase::Dropping);
    let _ = tokio::time::timeout(UNWIND, slots.acquire_many(max)).await;
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

/// What the server asks of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Serve requests.
    Serving,
    /// Finish the request in flight, then close.
    Draining,
    /// Close now (the shutdown deadline passed).
    Dropping,
}

/// One accepted connection and what it needs to live and die.
struct Connection {
    router: Router,
    limits: Arc<HttpConfig>,
    _slot: OwnedSemaphorePermit,
    control: watch::Receiver<Phase>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
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
            // The watchdog below enforces the header and idle timeouts, distinctly.
            .header_read_timeout(None);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        loop {
            let deadline = activity.deadline(&self.limits);
            // Biased: the connection is polled first on every wake-up, the rarely ready branches after it.
            tokio::select! {
                biased;
                _ = conn.as_mut() => return,
                changed = self.control.changed() => {
                    let phase = *self.control.borrow_and_update();
                    if changed.is_err() || phase == Phase::Dropping {
                        // Dropping the connection closes the socket.
                        return;
                    }
                    // Finishes the request in flight, then closes; an idle connection closes now.
                    conn.as_mut().graceful_shutdown();
                }
                () = tokio::time::sleep_until(deadline.into()) => {
                    if activity.expired(&self.limits) {
                        return;
                    }
                }
            }
        }
    }
}
