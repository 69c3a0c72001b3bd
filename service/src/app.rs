//! Start-up, the shared state, the router and shutdown.
//!
//! Order: configuration (done by the caller) → pool (lazy, so a database that is down does not stop the
//! start) → listener → a background task that connects and migrates (see `boot`) → serving (see `server`).
//! Shutdown stops accepting, drains requests in flight within `SERVER_SHUTDOWN_TIMEOUT`, then closes the
//! pool. The cached migration state that the health endpoints and `/metrics` share lives here too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use config::{AppConfig, DbTarget, ServerAddr};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::metrics::{self, HttpMetrics};
use crate::migrations::{MigrationState, Migrations};
use crate::pool::{Pool, PoolError};
use crate::server::{self, Stopped};
use crate::{dashboard, health};

/// Timeout of the readiness ping (the spec's "short timeout", at most 1 s).
pub const READY_TIMEOUT: Duration = Duration::from_secs(1);
/// Server-side `statement_timeout` and `lock_timeout` of each statement of a migration state read.
pub const STATE_STATEMENT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a whole migration state read may take on the client: past the statement timeout, so that the
/// server's own answer (which names what it waited for) usually arrives first.
pub const STATE_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a migration state read (ledger plus drift: catalog queries, about 45 ms on PostgreSQL), known or
/// unknown, serves `/health/detailed`, `/metrics` and `/ready` before the next asker reads it again.
pub const MIGRATION_STATE_TTL: Duration = Duration::from_secs(30);
/// How long closing the pool may take after the server stopped.
const POOL_CLOSE_LIMIT: Duration = Duration::from_secs(5);

/// The last migration state, shared by every asker; one read at a time.
#[derive(Debug, Default)]
struct MigrationCache {
    /// The state and when it was read (an `unknown` state too: a database that cannot answer is not asked
    /// again at every scrape).
    last: tokio::sync::Mutex<Option<(Instant, MigrationState)>>,
    /// How many times the runner was asked.
    reads: std::sync::atomic::AtomicU64,
}

/// How far start-up got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Boot {
    /// The database has not answered yet.
    Connecting = 0,
    /// Connected; applying migrations.
    Migrating = 1,
    /// Connected and migrated (or auto-migrate is off).
    Done = 2,
    /// Auto-migrate failed in a way retrying cannot heal; start-up stopped (see [`AppState::boot_error`]).
    Failed = 3,
}

/// What every handler sees: one reference-counted handle, so the per-request clones axum makes of the state
/// (the route's service, the `State` extractor) cost one atomic increment each.
#[derive(Clone)]
pub struct AppState(Arc<StateData>);

/// The data behind [`AppState`] (reached through it by `Deref`).
pub struct StateData {
    /// The pool.
    pub pool: Pool,
    /// The configuration.
    pub config: AppConfig,
    /// When the service started.
    pub started: Instant,
    /// HTTP request metrics.
    pub http: Arc<HttpMetrics>,
    /// The migration runner.
    pub migrations: Arc<dyn Migrations>,
    /// The sampled history `/dashboard` draws.
    pub dashboard: dashboard::History,
    boot: AtomicU8,
    boot_error: std::sync::Mutex<Option<String>>,
    migration_cache: MigrationCache,
}

impl std::ops::Deref for AppState {
    type Target = StateData;

    fn deref(&self) -> &StateData {
        &self.0
    }
}

impl AppState {
    /// How far start-up got.
    pub fn boot(&self) -> Boot {
        match self.boot.load(Ordering::Acquire) {
            0 => Boot::Connecting,
            1 => Boot::Migrating,
            2 => Boot::Done,
            _ => Boot::Failed,
        }
    }

    pub(crate) fn set_boot(&self, boot: Boot) {
        self.boot.store(boot as u8, Ordering::Release);
    }

    /// Why the last start-up attempt failed, while start-up is not done.
    pub fn boot_error(&self) -> Option<String> {
        self.boot_error.lock().ok().and_then(|e| e.clone())
    }

    pub(crate) fn set_boot_error(&self, e: Option<String>) {
        if let Ok(mut slot) = self.boot_error.lock() {
            *slot = e;
        }
    }

    /// The migration state. A state read less than [`MIGRATION_STATE_TTL`] ago, known or unknown, is served
    /// from memory, so frequent scrapes cost no catalog queries; concurrent callers share one read.
    pub async fn migration_state(&self) -> MigrationState {
        self.read_migration_state(false).await
    }

    /// Reads the migration state now and keeps it (after start-up migrated, the kept state is stale).
    pub async fn refresh_migration_state(&self) -> MigrationState {
        self.read_migration_state(true).await
    }

    /// How many times the migration runner was asked for the state (the cache's misses).
    pub fn migration_state_reads(&self) -> u64 {
        self.migration_cache.reads.load(Ordering::Relaxed)
    }

    async fn read_migration_state(&self, force: bool) -> MigrationState {
        let cache = &self.migration_cache;
        // Whoever asks while a read is running waits for it (and then finds its result), as long as a read
        // may take, not longer.
        let Ok(mut last) = tokio::time::timeout(STATE_READ_TIMEOUT, cache.last.lock()).await else {
            return MigrationState::unknown("a read of the migration state is still in progress");
        };
        if !force
            && let Some((at, state)) = last.as_ref()
            && at.elapsed() < MIGRATION_STATE_TTL
        {
            return state.clone();
        }
        cache.reads.fetch_add(1, Ordering::Relaxed);
        // Every statement of the read gets a server-side timeout: a read behind another session's lock gives
        // up on the server, so it never holds a pool connection after the caller stopped waiting.
        let read = self
            .pool
            .guarded(STATE_STATEMENT_TIMEOUT, self.migrations.state(self.pool.db()));
        let state = match tokio::time::timeout(STATE_READ_TIMEOUT, read).await {
            Ok(s) => s,
            Err(_) => MigrationState::unknown(format!(
                "the database did not answer within {}",
                humantime::format_duration(STATE_READ_TIMEOUT)
            )),
        };
        *last = Some((Instant::now(), state.clone()));
        state
    }

    /// The directory whose filesystem the disk check watches: the SQLite file's, else the working directory.
    pub fn data_dir(&self) -> std::path::PathBuf {
        if let DbTarget::Sqlite(s) = &self.config.db.target
            && let Some(path) = s.url.strip_prefix("sqlite://")
        {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(parent) = std::path::Path::new(path).parent()
                && !parent.as_os_str().is_empty()
            {
                return parent.to_path_buf();
            }
        }
        ".".into()
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The pool could not be built.
    #[error("cannot build the database pool: {0}")]
    Pool(#[from] PoolError),
    /// The address is taken or not ours, or its host name does not resolve.
    #[error("cannot listen on {addr} (SERVER_ADDR): {}", bind_advice(source))]
    Bind {
        /// `SERVER_ADDR`.
        addr: ServerAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The OS error of a failed bind, said once and with what to do.
fn bind_advice(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::AddrInUse => {
            "the address is already in use by another process: stop it or set SERVER_ADDR to a free port".to_owned()
        }
        ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges): set SERVER_ADDR to a port above 1023".to_owned()
        }
        ErrorKind::AddrNotAvailable => {
            "the address is not one of this machine's: set SERVER_ADDR to a local address such as 127.0.0.1:8080 \
             or 0.0.0.0:8080"
                .to_owned()
        }
        _ => e.to_string(),
    }
}

/// The routes, with request metrics.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/live", get(health::live))
        .route("/ready", get(health::ready))
        .route("/health", get(health::health))
        .route("/health/detailed", get(health::detailed))
        .route("/health/database", get(health::database))
        .route("/metrics", get(metrics::metrics))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/app.css", get(dashboard::style))
        .route("/dashboard/favicon.svg", get(dashboard::favicon))
        .route("/dashboard/data", get(dashboard::data))
        // Explicit fallbacks, so 404s and 405s answer JSON and pass the metrics layer too.
        .fallback(health::not_found)
        .method_not_allowed_fallback(health::method_not_allowed)
        .layer(metrics::TrackLayer(state.http.clone()))
        .with_state(state)
}

/// A running service.
pub struct Running {
    addr: SocketAddr,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Stopped>,
    boot: JoinHandle<()>,
    sampler: JoinHandle<()>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Builds the pool, binds `SERVER_ADDR` and starts serving; connecting and migrating continue in the
/// background. Must run inside a Tokio runtime.
///
/// # Errors
/// [`StartError`] when the pool cannot be built or the address cannot be bound.
pub async fn start(config: AppConfig, migrations: Arc<dyn Migrations>) -> Result<Running, StartError> {
    let pool = Pool::new(&config.db)?;
    pool.queries().set_slow_threshold(config.slow_query_threshold);
    let bind_error = |source| StartError::Bind {
        addr: config.server_addr.clone(),
        source,
    };
    // A host name is resolved here, and the first of its addresses that binds is used.
    let listener = tokio::net::TcpListener::bind(config.server_addr.as_pair())
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    for w in &config.db.warnings {
        tracing::warn!("{w}");
    }
    let p = &config.db.pool;
    tracing::info!(
        database = %config.db,
        max_open = p.max_open,
        max_idle = p.max_idle,
        max_idle_grace = ?p.idle_grace,
        max_lifetime = ?p.max_lifetime,
        max_idle_time = ?p.max_idle_time,
        acquire_timeout = ?p.acquire_timeout,
        auto_migrate = config.db.auto_migrate,
        "using database"
    );
    let mut limits = config.http.clone();
    limits.max_connections = server::fit_connection_limit(limits.max_connections, p.max_open);
    let state = AppState(Arc::new(StateData {
        pool: pool.clone(),
        config,
        started: Instant::now(),
        http: Arc::default(),
        migrations,
        dashboard: dashboard::History::default(),
        boot: AtomicU8::new(Boot::Connecting as u8),
        boot_error: std::sync::Mutex::default(),
        migration_cache: MigrationCache::default(),
    }));
    let boot = tokio::spawn(crate::boot::run(state.clone()));
    let sampler = tokio::spawn(dashboard::sampler(state.clone()));
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(state.clone());
    tracing::info!(
        %addr,
        max_connections = limits.max_connections,
        header_read_timeout = ?limits.header_read_timeout,
        idle_timeout = ?limits.idle_timeout,
        shutdown_timeout = ?limits.shutdown_timeout,
        "listening on http://{addr}"
    );
    let server = tokio::spawn(async move {
        let stopped = server::serve(listener, app, limits, async {
            let _ = stopped.await;
        })
        .await;
        if tokio::time::timeout(POOL_CLOSE_LIMIT, pool.close())
            .await
            .is_err()
        {
            tracing::warn!("the database pool did not close within {POOL_CLOSE_LIMIT:?}");
        }
        stopped
    });
    Ok(Running {
        addr,
        state,
        stop: Some(stop),
        server,
        boot,
        sampler,
    })
}

impl Running {
    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.state.pool
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting, lets requests in flight finish (at most `SERVER_SHUTDOWN_TIMEOUT`, then drops the
    /// connections still open) and closes the pool.
    ///
    /// # Errors
    /// When the server task panicked.
    pub async fn shutdown(mut self) -> std::io::Result<Stopped> {
        self.boot.abort();
        self.sampler.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.server).await.map_err(std::io::Error::other)
    }

    /// Serves until `signal` completes, then shuts down as [`Running::shutdown`] does.
    ///
    /// # Errors
    /// When the server task panicked.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> std::io::Result<Stopped> {
        tokio::select! {
            () = signal => self.shutdown().await,
            r = &mut self.server => r.map_err(std::io::Error::other),
        }
    }
}
