//! Start-up, the shared state, the router and shutdown.
//!
//! Order: configuration (done by the caller) → pool (lazy, so a database that is down does not stop the
//! start) → listener → a background task that connects and, when `DB_AUTO_MIGRATE` is true, applies pending
//! migrations, retrying with capped backoff until it succeeds → serving. Shutdown stops accepting, drains
//! requests in flight, then closes the pool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use config::{AppConfig, DbTarget, ServerAddr};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::health;
use crate::metrics::{self, HttpMetrics};
use crate::migrations::{MigrationState, Migrations};
use crate::pool::{Pool, PoolError};

/// Longest pause between two attempts to reach the database at start-up.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Timeout of the readiness ping (the spec's "short timeout", at most 1 s).
pub const READY_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a migration state read (ledger plus drift: catalog queries, about 45 ms on PostgreSQL) serves
/// `/health/detailed` and `/metrics` before the next scrape reads it again.
pub const MIGRATION_STATE_TTL: Duration = Duration::from_secs(30);

/// The last known migration state, shared by the scrapes; one read at a time.
#[derive(Debug, Default)]
struct MigrationCache {
    /// The state and when it was read; only `known` states are kept, so an outage is retried every scrape.
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
}

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    /// The pool.
    pub pool: Pool,
    /// The configuration.
    pub config: Arc<AppConfig>,
    /// When the service started.
    pub started: Instant,
    /// HTTP request metrics.
    pub http: Arc<HttpMetrics>,
    /// The migration runner.
    pub migrations: Arc<dyn Migrations>,
    boot: Arc<AtomicU8>,
    boot_error: Arc<std::sync::Mutex<Option<String>>>,
    migration_cache: Arc<MigrationCache>,
}

impl AppState {
    /// How far start-up got.
    pub fn boot(&self) -> Boot {
        match self.boot.load(Ordering::Acquire) {
            0 => Boot::Connecting,
            1 => Boot::Migrating,
            _ => Boot::Done,
        }
    }

    /// Why the last start-up attempt failed, while start-up is not done.
    pub fn boot_error(&self) -> Option<String> {
        self.boot_error.lock().ok().and_then(|e| e.clone())
    }

    fn set_boot_error(&self, e: Option<String>) {
        if let Ok(mut slot) = self.boot_error.lock() {
            *slot = e;
        }
    }

    /// The migration state, or unknown when the database does not answer within a second. A state read less
    /// than [`MIGRATION_STATE_TTL`] ago is served from memory, so frequent scrapes cost no catalog queries;
    /// concurrent callers share one read.
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
        let read = async {
            let mut last = cache.last.lock().await;
            if !force
                && let Some((at, state)) = last.as_ref()
                && at.elapsed() < MIGRATION_STATE_TTL
            {
                return state.clone();
            }
            cache.reads.fetch_add(1, Ordering::Relaxed);
            let state = self.migrations.state(self.pool.db()).await;
            *last = (state.state == "known").then(|| (Instant::now(), state.clone()));
            state
        };
        match tokio::time::timeout(READY_TIMEOUT, read).await {
            Ok(s) => s,
            Err(_) => MigrationState::unknown("the database did not answer within 1s"),
        }
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
    #[error("cannot listen on {addr} (SERVER_ADDR): {source}")]
    Bind {
        /// `SERVER_ADDR`.
        addr: ServerAddr,
        /// The OS error.
        source: std::io::Error,
    },
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
        // An explicit fallback, so 404s pass the metrics middleware too (as route `unmatched`).
        .fallback(health::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// A running service.
pub struct Running {
    addr: SocketAddr,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
    boot: JoinHandle<()>,
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
    // A host name is resolved here, and the first of its addresses that binds is used.
    let listener = tokio::net::TcpListener::bind(config.server_addr.as_pair())
        .await
        .map_err(|source| StartError::Bind {
            addr: config.server_addr.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.server_addr.clone(),
        source,
    })?;
    for w in &config.db.warnings {
        tracing::warn!("{w}");
    }
    let p = &config.db.pool;
    tracing::info!(
        database = %config.db,
        max_open = p.max_open,
        max_idle = p.max_idle,
        max_lifetime = ?p.max_lifetime,
        max_idle_time = ?p.max_idle_time,
        acquire_timeout = ?p.acquire_timeout,
        auto_migrate = config.db.auto_migrate,
        "using database"
    );
    let state = AppState {
        pool: pool.clone(),
        config: Arc::new(config),
        started: Instant::now(),
        http: Arc::default(),
        migrations,
        boot: Arc::new(AtomicU8::new(Boot::Connecting as u8)),
        boot_error: Arc::default(),
        migration_cache: Arc::default(),
    };
    let boot = tokio::spawn(bootstrap(state.clone()));
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(state.clone());
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        pool.close().await;
        served
    });
    tracing::info!(%addr, "listening on http://{addr}");
    Ok(Running {
        addr,
        state,
        stop: Some(stop),
        server,
        boot,
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

    /// Stops accepting, drains requests in flight and closes the pool.
    ///
    /// # Errors
    /// The server's I/O error.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.boot.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.server).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    ///
    /// # Errors
    /// The server's I/O error.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> std::io::Result<()> {
        tokio::select! {
            () = signal => {
                tracing::info!("shutting down: draining requests in flight, then closing the pool");
                self.shutdown().await
            }
            r = &mut self.server => match r {
                Ok(r) => r,
                Err(e) => Err(std::io::Error::other(e)),
            },
        }
    }
}

/// Connects and migrates, retrying with capped exponential backoff: the database may come later.
async fn bootstrap(state: AppState) {
    let mut backoff = Duration::from_millis(100);
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let step = async {
            state
                .pool
                .ping(state.config.db.pool.acquire_timeout.min(Duration::from_secs(5)))
                .await
                .map_err(|e| e.to_string())?;
            if !state.config.db.auto_migrate {
                return Ok(None);
            }
            state.boot.store(Boot::Migrating as u8, Ordering::Release);
            state
                .migrations
                .apply_pending(state.pool.db())
                .await
                .map(Some)
                .map_err(|e| format!("auto-migrate failed: {e}"))
        };
        match step.await {
            Ok(applied) => {
                match applied {
                    Some(n) => tracing::info!(
                        applied = n,
                        "database ready; auto-migrate applied {n} migration(s)"
                    ),
                    None => tracing::info!("database ready; auto-migrate is off (DB_AUTO_MIGRATE=false)"),
                }
                state.set_boot_error(None);
                state.boot.store(Boot::Done as u8, Ordering::Release);
                // After readiness, so start-up-to-ready does not wait for the catalog queries; the first
                // scrape then finds the state start-up left (or shares this read).
                state.refresh_migration_state().await;
                return;
            }
            Err(e) => {
                state.boot.store(Boot::Connecting as u8, Ordering::Release);
                tracing::warn!(attempt, retry_in = ?backoff, "database not ready: {e}");
                state.set_boot_error(Some(e));
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
