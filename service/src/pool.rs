//! The pooled connection, with statistics that mean what Go's `database/sql` `DBStats` means.
//!
//! Owns the [`Pool`] handle: building the sqlx pool from [`DbConfig`] (connect options come from the
//! `config` crate, built from parts so no URL carries the password), acquiring through the gate, pings,
//! guarded scopes and the statistics snapshot. The parts live in submodules, one piece per pool so a replica
//! pool gets its own: [`stats`] (what is counted), `gate` (waits), `hooks` (the sqlx callbacks), `shared`
//! (their common state and rules), `maintenance` (closures nobody asks for), `gated` ([`Db`], SeaORM's
//! connection). It does not own HTTP (see `health`) or rendering (see `metrics`).
//!
//! # How the Go settings are enforced on sqlx
//! sqlx counts no waits and no closures, and its own reaper closes expired connections before any callback
//! sees them. So sqlx's `max_lifetime` and `idle_timeout` are switched off and the pool enforces them:
//! - **Lifetime** (`DB_CONN_MAX_LIFETIME`): checked in `before_acquire` (closed instead of handed out) and in
//!   `after_release` (closed instead of going idle), counted in `max_lifetime_closed`.
//! - **Idle time** (`DB_CONN_MAX_IDLE_TIME`): checked in `before_acquire` from sqlx's `idle_for`, counted in
//!   `max_idle_time_closed`.
//! - **Idle cap** (`DB_MAX_IDLE_CONNS`, `DB_MAX_IDLE_GRACE`): with a grace period (default 5 s) every released
//!   connection stays idle and the maintenance task retires the idle connections above the cap that no caller
//!   needed for a whole grace period (HikariCP retires connections above `minimumIdle` the same way), each
//!   counted in `max_idle_closed`. With `DB_MAX_IDLE_GRACE=0`, as in Go, `after_release` closes and counts a
//!   connection released while `DB_MAX_IDLE_CONNS` are idle; its idle places are reconciled with sqlx's size
//!   on every release, so a connection that dies on its way back (its release ping failed) gives its place
//!   back. Go's rule reconnects at every release during a burst above the cap (the spec's defaults, 10 idle
//!   for 100 open, under 32 concurrent requests: a reconnect storm); the grace keeps the burst's connections.
//! - **Cleaner**: like Go's `connectionCleaner`, a task closes idle connections that expired while nobody asked
//!   for them. sqlx hands idle connections out oldest-first (a FIFO queue), so the task keeps a mirror of
//!   release times in the same order and takes expired ones with `try_acquire`, which runs no callback.
//! - **Waits**: every use of a connection passes a fair semaphore (the gate) with `DB_MAX_OPEN_CONNS`
//!   permits before it asks sqlx; finding no permit free is Go's condition for a wait (every connection
//!   taken), counted in `wait_count`, and the time until the permit comes is added to `wait_duration`. Past
//!   the gate, a caller that finds sqlx with no idle connection and no room for one, and waits there longer
//!   than a connection takes to come back (250 ms), or times out, waits on connections left busy by callers
//!   that gave up: that is counted as a wait too. `DB_CONN_ACQUIRE_TIMEOUT` bounds the wait. [`Pool::acquire`] and [`Pool::ping`]
//!   take a permit with their connection; SeaORM work goes through [`Pool::db`] ([`Db`]), which takes one per
//!   statement, one per transaction from `BEGIN` to its end, and one per stream, then lets SeaORM take the
//!   connection from sqlx. So, as in Go, every query's wait is counted: application code uses `entity::Repo`
//!   over [`Pool::db`].
//! - **Timeouts**: a caller that gives up is told what it met. When callers hold every connection it is
//!   [`PoolError::Timeout`] (exhaustion: raise the limits or find the long holder); otherwise the pool could
//!   not open connections, and [`PoolError::Unreachable`] names the last connection error (HikariCP attaches
//!   it as the cause of its timeout), or one direct attempt's answer when none is known.
//! - **Guarded scopes** ([`Pool::guarded`]): every connection the scope's task takes gets a server-side
//!   `statement_timeout` and `lock_timeout` (set with the liveness check, no extra round trip), reset when it
//!   is released, so a read that gives up on the client does not leave a query waiting on the server.
//!
//! The raw `DatabaseConnection` is reachable only through [`Db::hold`], which takes the permits first: the
//! migration crate's `auto_migrate_with` and `Migrator::status` take that type (they reach the sqlx pool for
//! the advisory lock and the ledger), so the service's auto-migrate and migration state use it.
//!
//! # Differences from Go that remain
//! - A query through [`Db`] is gated, but sqlx hands its connection over inside SeaORM, past any hook: its
//!   `wait_time` ends when the permit is taken (a wait inside sqlx is counted, not timed), and its `use_time`
//!   runs until the statement's result is back, not until sqlx has the connection back.
//! - Work inside [`Db::hold`] is gated once for all its statements, not per statement (auto-migrate holds
//!   two permits, for the lock connection and the migrating one).
//! - A SeaORM acquisition that fails inside sqlx after the gate (an unreachable server) gives SeaORM's
//!   error (`DbErr::ConnectionAcquire`), not [`PoolError::Unreachable`]'s diagnosis.
//! - Each idle connection is pinged before it is handed out (sqlx's `test_before_acquire`, done here so the
//!   closure is visible); sqlx also pings on release. Go does neither and retries on `ErrBadConn` instead.
//! - With `DB_MAX_IDLE_GRACE=0` and releases racing each other, the places are reconciled as described; with
//!   a grace period the surplus rule reads sqlx's idle count, so neither can drift.
//! - The cleaner's mirror of the idle queue can be off by a connection when a release's ping fails or when
//!   releases race; the cleaner may then close a connection slightly early or late and attribute it to the
//!   other reason. Closures on the acquire and release paths use sqlx's own timestamps and are exact.
//! - `open_connections` comes from sqlx's size, which counts a connection from the moment it starts opening
//!   (Go's `numOpen` does the same); while the server is unreachable it shows the attempts in progress.
//! - `create_time` is measured from the start of the [`Pool::acquire`] that opened the connection, so it
//!   includes any wait for a free slot before the connection was opened.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use config::{DbConfig, DbTarget, PoolConfig};
use futures::FutureExt;
use futures::future::BoxFuture;
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::{self, Connection, Postgres, Sqlite};
use sea_orm::{SqlxPostgresConnector, SqlxSqliteConnector};
use serde::Serialize;
use tokio::sync::OwnedSemaphorePermit;

mod gate;
mod gated;
mod hooks;
mod maintenance;
mod replicas;
mod shared;
pub mod stats;

pub(crate) use gate::Gate;
pub use gated::{Db, DbTransaction, GatedStream, Held};
use hooks::{ACQUIRE_STARTED, BackendSql, GUARD};
use maintenance::Maintenance;
use replicas::Replicas;
pub use replicas::{ReplicaStatus, RouteStats, Session};
use shared::{Probe, Shared};
use stats::PendingGuard;
pub use stats::{Counters, PoolStats, go_duration};

use crate::metrics::queries::QueryMetrics;

/// A pool problem, phrased for the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// Callers hold every connection and none came back in time.
    #[error(
        "no database connection became free within {}: all {max_open} connections are in use \
         (raise DB_MAX_OPEN_CONNS or DB_CONN_ACQUIRE_TIMEOUT, or look for connections held too long)",
        humantime::format_duration(*.timeout)
    )]
    Timeout {
        /// The limit that ran out.
        timeout: Duration,
        /// `DB_MAX_OPEN_CONNS`.
        max_open: u32,
    },
    /// No connection could be opened in time, though callers did not hold them all.
    #[error(
        "cannot reach the database within {}: no new connection could be opened ({}, {held} of {max_open} \
         connections held by callers); last connection error {}: {last_error}",
        humantime::format_duration(*.timeout),
        attempts_text(*.attempts),
        ago_text(*.age)
    )]
    Unreachable {
        /// The limit that ran out.
        timeout: Duration,
        /// Connection attempts in progress when it ran out.
        attempts: u32,
        /// Connections callers held then.
        held: u32,
        /// `DB_MAX_OPEN_CONNS`.
        max_open: u32,
        /// The last connection error since a connection last opened (or one direct attempt's answer).
        last_error: String,
        /// How long ago that error happened.
        age: Duration,
    },
    /// A connection was taken but the server did not answer its ping in time.
    #[error("the database did not answer a ping within {}", humantime::format_duration(*.timeout))]
    NoAnswer {
        /// The limit that ran out.
        timeout: Duration,
    },
    /// The database could not be reached or answered with an error.
    #[error("database connection failed: {0}")]
    Database(#[source] sqlx::Error),
    /// The pool was closed (shutting down).
    #[error("the database pool is closed (the service is shutting down)")]
    Closed,
    /// The SQLite URL could not be understood.
    #[error("cannot build the database pool: {0}")]
    Build(#[from] config::ConnectError),
    /// The configuration names a database this pool cannot serve.
    #[error("cannot build the database pool: unsupported database target {target}")]
    Unsupported {
        /// The target, as shown in logs (no password).
        target: String,
    },
}

fn attempts_text(n: u32) -> String {
    match n {
        1 => "1 attempt in progress".to_owned(),
        n => format!("{n} attempts in progress"),
    }
}

fn ago_text(ago: Duration) -> String {
    if ago < Duration::from_millis(100) {
        "just now".to_owned()
    } else {
        // Tenths of a second: enough to tell a fresh error from an old one, short to read.
        let rounded = Duration::from_millis(u64::try_from(ago.as_millis()).unwrap_or(u64::MAX) / 100 * 100);
        format!("{} ago", humantime::format_duration(rounded))
    }
}

/// Much longer than a connection takes on its way back to sqlx's idle queue (a release ping, one round trip,
/// plus the scheduling of sqlx's task on a busy machine): waiting longer inside sqlx means its connections are
/// busy (left running by callers that gave up), not returning.
const IN_TRANSIT: Duration = Duration::from_millis(250);

/// The sqlx pool of one backend, its state and its gate.
struct Tracked<DB: BackendSql> {
    pool: sqlx::Pool<DB>,
    shared: Arc<Shared>,
    gate: Gate,
}

/// The typed pool seen from the untyped [`Shared`] state.
struct TypedProbe<DB: BackendSql>(sqlx::Pool<DB>);

impl<DB: BackendSql> Probe for TypedProbe<DB> {
    fn sizes(&self) -> (u32, usize) {
        (self.0.size(), self.0.num_idle())
    }

    fn diagnose(&self) -> BoxFuture<'static, String> {
        let opts = self.0.connect_options();
        async move {
            match tokio::time::timeout(Duration::from_millis(250), sqlx::ConnectOptions::connect(&*opts))
                .await
            {
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                    "none now: the server accepts connections again".to_owned()
                }
                Err(_) => "a connection attempt got no answer within 250ms".to_owned(),
            }
        }
        .boxed()
    }
}

impl<DB: BackendSql> Tracked<DB> {
    fn new(shared: Arc<Shared>, gate: Gate, opts: <DB::Connection as Connection>::Options) -> Self {
        let pool = hooks::options::<DB>(&shared).connect_lazy_with(opts);
        shared.set_probe(Box::new(TypedProbe(pool.clone())));
        Self { pool, shared, gate }
    }

    async fn acquire(
        &self,
        timeout: Duration,
    ) -> Result<(PoolConnection<DB>, Instant, OwnedSemaphorePermit), PoolError> {
        let started = Instant::now();
        let _pending = PendingGuard::enter(&self.shared.counters);
        let (permit, waited) = self.gate.enter(1, started, timeout).await?;
        // Past the gate, sqlx may have no idle connection and no room for one: its connections are on their
        // way back (for a round trip), or were left busy by callers that gave up. Waiting for the latter is a
        // wait whoever the caller is, though the gate let it through.
        let full = !waited
            && self
                .shared
                .sizes()
                .is_some_and(|(size, idle)| idle == 0 && size >= self.shared.cfg.max_open);
        let inside = Instant::now();
        let remaining = timeout.saturating_sub(started.elapsed());
        let result = ACQUIRE_STARTED
            .scope(started, tokio::time::timeout(remaining, self.pool.acquire()))
            .await;
        let timed_out = matches!(result, Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_));
        let waited_inside = full && (timed_out || inside.elapsed() > IN_TRANSIT);
        if waited_inside {
            Counters::add(&self.shared.counters.wait_count);
        }
        if !waited {
            self.gate.settle(started, waited_inside);
        }
        match result {
            Ok(Ok(conn)) => Ok((conn, Instant::now(), permit)),
            Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) => Err(self.shared.timed_out(timeout, false).await),
            Ok(Err(sqlx::Error::PoolClosed)) => Err(PoolError::Closed),
            Ok(Err(e)) => {
                // sqlx gives up at once on connect errors other than a refusal (it retries those silently).
                self.shared.record_error(e.to_string());
                Err(PoolError::Database(e))
            }
        }
    }
}

#[derive(Clone)]
enum Backend {
    Postgres(Arc<Tracked<Postgres>>),
    Sqlite(Arc<Tracked<Sqlite>>),
}

/// Which database engine the pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// PostgreSQL.
    Postgresql,
    /// SQLite.
    Sqlite,
}

/// The service's pool: a sqlx pool with Go-equivalent statistics, and a SeaORM connection on top of it.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    db: Db,
    shared: Arc<Shared>,
    maintenance: Mutex<Option<tokio::task::JoinHandle<()>>>,
    replicas: Option<Arc<Replicas>>,
    monitor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The hooks hold the shared state and the probe holds the sqlx pool: break the cycle, stop the task.
        if let Some(h) = self.maintenance.lock().ok().and_then(|mut s| s.take()) {
            h.abort();
        }
        if let Some(h) = self.monitor.lock().ok().and_then(|mut s| s.take()) {
            h.abort();
        }
        self.shared.clear_probe();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("engine", &self.engine())
            .field("settings", &self.inner.shared.cfg)
            .finish_non_exhaustive()
    }
}

/// Whether `m` is the text of one of [`PoolError`]'s timeouts: [`Db`] hands them to SeaORM as text, and the
/// query timing counts them as timeouts, not errors.
pub(crate) fn is_timeout_message(m: &str) -> bool {
    [
        "no database connection became free within",
        "cannot reach the database within",
        "the database did not answer a ping within",
    ]
    .iter()
    .any(|p| m.starts_with(p))
}

/// A connection taken with [`Pool::acquire`]; returned to the pool on drop, which records its use time.
pub struct PooledConn {
    inner: ConnInner,
    _permit: OwnedSemaphorePermit,
    acquired_at: Instant,
    shared: Arc<Shared>,
}

enum ConnInner {
    Postgres(PoolConnection<Postgres>),
    Sqlite(PoolConnection<Sqlite>),
}

impl PooledConn {
    /// Sends a ping to the server.
    ///
    /// # Errors
    /// The driver's error when the connection is broken.
    pub async fn ping(&mut self) -> Result<(), PoolError> {
        let pinged = match &mut self.inner {
            ConnInner::Postgres(c) => c.ping().await,
            ConnInner::Sqlite(c) => c.ping().await,
        };
        pinged.map_err(|e| {
            self.shared.record_error(format!("a connection was lost: {e}"));
            PoolError::Database(e)
        })
    }

    /// The PostgreSQL connection, when the pool is PostgreSQL.
    pub fn postgres(&mut self) -> Option<&mut PoolConnection<Postgres>> {
        match &mut self.inner {
            ConnInner::Postgres(c) => Some(c),
            ConnInner::Sqlite(_) => None,
        }
    }
}

impl std::fmt::Debug for PooledConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConn")
            .field("held_for", &self.acquired_at.elapsed())
            .finish()
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        self.shared.counters.use_time.observe(self.acquired_at.elapsed());
    }
}

impl Pool {
    /// Builds the pool without connecting: the first use connects, so a database that is down at start does
    /// not stop the service from starting. Must be called inside a Tokio runtime (maintenance is a task).
    ///
    /// # Errors
    /// [`PoolError::Build`] when a SQLite URL cannot be understood, [`PoolError::Unsupported`] for a target
    /// that is neither PostgreSQL nor SQLite.
    pub fn new(cfg: &DbConfig) -> Result<Self, PoolError> {
        let replicas = Replicas::new(cfg)?;
        let mut inner = Self::single_inner(cfg)?;
        if let Some(r) = replicas {
            let monitor = replicas::spawn_monitor(r.clone(), inner.db.clone());
            inner.db = inner.db.clone().with_replicas(Some(r.clone()));
            inner.replicas = Some(r);
            inner.monitor = Mutex::new(Some(monitor));
        }
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The pool of one server, without replicas.
    fn single(cfg: &DbConfig) -> Result<Self, PoolError> {
        Ok(Self {
            inner: Arc::new(Self::single_inner(cfg)?),
        })
    }

    fn single_inner(cfg: &DbConfig) -> Result<Inner, PoolError> {
        let queries = Arc::new(QueryMetrics::default());
        let shared = Arc::new(Shared::new(cfg.pool.clone()));
        let gate = Gate::new(shared.clone());
        let (backend, orm) = match &cfg.target {
            DbTarget::Postgres(t) => {
                let tracked =
                    Tracked::<Postgres>::new(shared.clone(), gate.clone(), config::pg_connect_options(t));
                let orm = SqlxPostgresConnector::from_sqlx_postgres_pool(tracked.pool.clone());
                (Backend::Postgres(Arc::new(tracked)), orm)
            }
            DbTarget::Sqlite(t) => {
                let opts = config::sqlite_connect_options(t)?;
                let tracked = Tracked::<Sqlite>::new(shared.clone(), gate.clone(), opts);
                let orm = SqlxSqliteConnector::from_sqlx_sqlite_pool(tracked.pool.clone());
                (Backend::Sqlite(Arc::new(tracked)), orm)
            }
            other => {
                return Err(PoolError::Unsupported {
                    target: other.to_string(),
                });
            }
        };
        let maintenance = match &backend {
            Backend::Postgres(t) => spawn_maintenance(t),
            Backend::Sqlite(t) => spawn_maintenance(t),
        };
        Ok(Inner {
            backend,
            db: Db::new(orm, gate, queries),
            shared,
            maintenance: Mutex::new(maintenance),
            replicas: None,
            monitor: Mutex::new(None),
        })
    }

    /// The SeaORM connection over this pool: every statement, and every transaction as a whole, passes the
    /// same gate as [`Pool::acquire`], so its waits are counted and bounded by `DB_CONN_ACQUIRE_TIMEOUT`.
    /// Use it wherever SeaORM takes a connection: `users::Entity::repo(pool.db(), ctx)`.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The query timing of every statement run on [`Pool::db`] (`DB_SLOW_QUERY_THRESHOLD` is set on it).
    pub fn queries(&self) -> &Arc<QueryMetrics> {
        self.inner.db.queries()
    }

    /// The last connection error when no connection has opened since (the database is unreachable, or a
    /// ping found a connection lost): how long ago, and what.
    pub fn connection_error(&self) -> Option<(Duration, String)> {
        self.inner.shared.current_error()
    }

    /// A read session over this pool: like [`Pool::db`], plus a sticky window after its writes
    /// (`DB_REPLICA_STICKY`) and the read-your-writes token of its writes ([`Session::token`]).
    pub fn session(&self) -> Session<'_> {
        Session::new(self)
    }

    /// The primary's WAL position now (`pg_current_wal_lsn()`): after a committed write, a token a replica
    /// read can carry (`ReadFrom::After`) to see it. PostgreSQL only.
    ///
    /// # Errors
    /// The primary's error (on SQLite, the function does not exist).
    pub async fn write_token(&self) -> Result<entity::WriteToken, sea_orm::DbErr> {
        replicas::write_token(&self.inner.db).await
    }

    pub(crate) fn replicas(&self) -> Option<&Arc<Replicas>> {
        self.inner.replicas.as_ref()
    }

    /// Each replica's state, lag and pool statistics (empty without `DB_REPLICA_URLS`).
    pub fn replica_statuses(&self) -> Vec<ReplicaStatus> {
        self.replicas().map(|r| r.statuses()).unwrap_or_default()
    }

    /// How repository reads were routed (all zero without replicas).
    pub fn routing(&self) -> RouteStats {
        self.replicas().map(|r| r.counters.snapshot()).unwrap_or_default()
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        match self.inner.backend {
            Backend::Postgres(_) => Engine::Postgresql,
            Backend::Sqlite(_) => Engine::Sqlite,
        }
    }

    /// The settings the pool enforces.
    pub fn settings(&self) -> &PoolConfig {
        &self.inner.shared.cfg
    }

    /// Counters and histograms beyond [`PoolStats`] (for `/metrics`).
    pub fn counters(&self) -> &Counters {
        &self.inner.shared.counters
    }

    /// Takes a connection, waiting at most `DB_CONN_ACQUIRE_TIMEOUT`; the wait is counted.
    ///
    /// # Errors
    /// [`PoolError::Timeout`] when callers held every connection, [`PoolError::Unreachable`] when none could be
    /// opened in time, [`PoolError::Database`] when a new connection failed, [`PoolError::Closed`] during
    /// shutdown.
    pub async fn acquire(&self) -> Result<PooledConn, PoolError> {
        self.acquire_within(self.inner.shared.cfg.acquire_timeout).await
    }

    /// Like [`Pool::acquire`], waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Pool::acquire`].
    pub async fn acquire_within(&self, timeout: Duration) -> Result<PooledConn, PoolError> {
        let (inner, acquired_at, permit) = match &self.inner.backend {
            Backend::Postgres(t) => t
                .acquire(timeout)
                .await
                .map(|(c, at, p)| (ConnInner::Postgres(c), at, p))?,
            Backend::Sqlite(t) => t
                .acquire(timeout)
                .await
                .map(|(c, at, p)| (ConnInner::Sqlite(c), at, p))?,
        };
        Ok(PooledConn {
            inner,
            _permit: permit,
            acquired_at,
            shared: self.inner.shared.clone(),
        })
    }

    /// Acquires a connection and pings the server, all within `timeout`.
    ///
    /// # Errors
    /// [`PoolError::Timeout`] or [`PoolError::Unreachable`] when `timeout` ran out acquiring,
    /// [`PoolError::NoAnswer`] when it ran out pinging, or the error from acquiring or pinging.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, PoolError> {
        let started = Instant::now();
        let mut conn = self.acquire_within(timeout).await?;
        let remaining = timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(remaining, conn.ping()).await {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                self.inner.shared.record_error("a ping got no answer");
                Err(PoolError::NoAnswer { timeout })
            }
        }
    }

    /// Runs `work` with a server-side `statement_timeout` and `lock_timeout` of `timeout` on every connection
    /// it takes from this pool (in this task, through [`Pool::acquire`], [`Pool::db`] or [`Db::hold`]'s raw
    /// connection alike); each is reset when the connection is released. For reads that must not outlive
    /// their caller's patience: a health read behind another session's lock gives up on the server when the
    /// client gives up, instead of holding its connection until the lock goes. PostgreSQL only; on SQLite the
    /// connections are only checked.
    pub async fn guarded<F: Future>(&self, timeout: Duration, work: F) -> F::Output {
        let _scope = self.inner.shared.enter_guard();
        GUARD.scope(timeout, work).await
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> PoolStats {
        let (size, idle) = match &self.inner.backend {
            Backend::Postgres(t) => (t.pool.size(), t.pool.num_idle()),
            Backend::Sqlite(t) => (t.pool.size(), t.pool.num_idle()),
        };
        self.inner.shared.counters.snapshot(
            self.inner.shared.cfg.max_open,
            size,
            u32::try_from(idle).unwrap_or(u32::MAX),
        )
    }

    /// Closes every connection and stops the maintenance task; waits for connections in use to come back.
    pub async fn close(&self) {
        if let Some(h) = self.inner.maintenance.lock().ok().and_then(|mut s| s.take()) {
            h.abort();
        }
        if let Some(h) = self.inner.monitor.lock().ok().and_then(|mut s| s.take()) {
            h.abort();
        }
        if let Some(r) = self.replicas() {
            r.close().await;
        }
        match &self.inner.backend {
            Backend::Postgres(t) => {
                t.gate.close();
                t.pool.close().await;
            }
            Backend::Sqlite(t) => {
                t.gate.close();
                t.pool.close().await;
            }
        }
        self.inner.shared.clear_probe();
    }
}

fn spawn_maintenance<DB: BackendSql>(tracked: &Arc<Tracked<DB>>) -> Option<tokio::task::JoinHandle<()>> {
    let period = maintenance::period(&tracked.shared)?;
    let shared = tracked.shared.clone();
    let mut task = Maintenance::new(tracked.pool.clone());
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if task.is_closed() {
                break;
            }
            task.run(&shared).await;
        }
    }))
}
