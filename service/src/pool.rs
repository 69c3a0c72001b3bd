//! The pooled connection, with statistics that mean what Go's `database/sql` `DBStats` means.
//!
//! Owns: building the sqlx pool from [`DbConfig`] (connect options come from the `config` crate, built from parts
//! so no URL carries the password), enforcing the idle cap, idle time and lifetime where they can be counted,
//! timing waits, and the statistics snapshot. It does not own HTTP (see `health`) or rendering (see `metrics`).
//!
//! # How the Go settings are enforced on sqlx
//! sqlx counts no waits and no closures, and its own reaper closes expired connections before any callback
//! sees them. So sqlx's `max_lifetime` and `idle_timeout` are switched off and this module enforces them:
//! - **Lifetime** (`DB_CONN_MAX_LIFETIME`): checked in `before_acquire` (closed instead of handed out) and in
//!   `after_release` (closed instead of going idle), counted in `max_lifetime_closed`.
//! - **Idle time** (`DB_CONN_MAX_IDLE_TIME`): checked in `before_acquire` from sqlx's `idle_for`, counted in
//!   `max_idle_time_closed`.
//! - **Idle cap** (`DB_MAX_IDLE_CONNS`): `after_release` reserves an idle slot; when none is left the connection
//!   is closed and `max_idle_closed` counts it.
//! - **Cleaner**: like Go's `connectionCleaner`, a task closes idle connections that expired while nobody asked
//!   for them. sqlx hands idle connections out oldest-first (a FIFO queue), so the cleaner keeps a mirror of
//!   release times in the same order and takes expired ones with `try_acquire`, which runs no callback.
//! - **Waits**: every use of a connection passes a fair semaphore (the gate) with `DB_MAX_OPEN_CONNS`
//!   permits before it asks sqlx; finding no permit free is Go's condition for a wait (every connection
//!   taken), counted in `wait_count`, and the time until the permit comes is added to `wait_duration`.
//!   `DB_CONN_ACQUIRE_TIMEOUT` bounds the wait. [`Pool::acquire`] and [`Pool::ping`] take a permit with their
//!   connection; SeaORM work goes through [`Pool::db`] ([`Db`]), which takes one per statement, one per
//!   transaction from `BEGIN` to its end, and one per stream, then lets SeaORM take the connection from sqlx.
//!   So, as in Go, every query's wait is counted: application code uses `entity::Repo` over [`Pool::db`].
//!
//! The raw `DatabaseConnection` is reachable only through [`Db::hold`], which takes the permits first: the
//! migration crate's `auto_migrate_with` and `Migrator::status` take that type (they reach the sqlx pool for
//! the advisory lock and the ledger), so the service's auto-migrate and migration state use it.
//!
//! # Differences from Go that remain
//! - A query through [`Db`] is gated, but sqlx hands its connection over inside SeaORM, past any hook: its
//!   `wait_time` ends when the permit is taken, and its `use_time` runs until the statement's result is
//!   back, not until sqlx has the connection back. With the gate passed a connection is normally free, but
//!   sqlx returns a released connection from a spawned task (after its release ping), so the next holder can
//!   briefly wait inside sqlx, or open a new connection; that moment is in neither `wait_count` nor the
//!   `wait_time` of a [`Db`] query ([`Pool::acquire`] includes it in `wait_time`).
//! - Work inside [`Db::hold`] is gated once for all its statements, not per statement (auto-migrate holds
//!   two permits, for the lock connection and the migrating one).
//! - A SeaORM acquisition that fails inside sqlx after the gate (an unreachable server) gives SeaORM's
//!   error (`DbErr::ConnectionAcquire`), not [`PoolError::Unreachable`]'s diagnosis.
//! - Each idle connection is pinged before it is handed out (sqlx's `test_before_acquire`, done here so the
//!   closure is visible); sqlx also pings on release. Go does neither and retries on `ErrBadConn` instead.
//! - The cleaner's mirror of the idle queue can drift by a connection when a release's ping fails or when
//!   releases race; the cleaner may then close a connection slightly early or late and attribute it to the
//!   other reason. Closures on the acquire and release paths use sqlx's own timestamps and are exact.
//! - The idle cap can be exceeded by one for the length of a release when the slot count drifts the same
//!   way; it is reconciled with sqlx's idle count on every cleaner run.
//! - `open_connections` comes from sqlx's size, which counts a connection from the moment it starts opening
//!   (Go's `numOpen` does the same); while the server is unreachable it shows the attempt in progress.
//! - `create_time` is measured from the start of the [`Pool::acquire`] that opened the connection, so it
//!   includes any wait for a free slot before the connection was opened.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use config::{DbConfig, DbTarget, PoolConfig};
use futures::FutureExt;
use sea_orm::sqlx::pool::{PoolConnection, PoolConnectionMetadata, PoolOptions};
use sea_orm::sqlx::{self, Connection, Database as SqlxDatabase, Postgres, Sqlite};
use sea_orm::{SqlxPostgresConnector, SqlxSqliteConnector};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::histogram::Histogram;

mod gated;

pub use gated::{Db, DbTransaction, GatedStream, Held};

/// A pool problem, phrased for the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// No connection became free in time.
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
    /// No connection could be opened in time, though the pool had room for one.
    #[error("cannot reach the database within {}: {reason}", humantime::format_duration(*.timeout))]
    Unreachable {
        /// The limit that ran out.
        timeout: Duration,
        /// What a direct connection attempt answered.
        reason: String,
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

/// Go `DBStats`-equivalent statistics. Serialises to the spec's `pool_stats` object.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
pub struct PoolStats {
    /// `DB_MAX_OPEN_CONNS`.
    pub max_open_connections: u32,
    /// Connections open, in use or idle.
    pub open_connections: u32,
    /// Connections handed out.
    pub in_use: u32,
    /// Connections waiting in the pool.
    pub idle: u32,
    /// Acquisitions that had to wait because every connection was in use.
    pub wait_count: u64,
    /// Total time waited, in Go's duration syntax (`1.5s`).
    #[serde(serialize_with = "ser_go_duration")]
    #[ts(type = "string")]
    pub wait_duration: Duration,
    /// Connections closed because the idle cap was reached.
    pub max_idle_closed: u64,
    /// Connections closed because they were idle too long.
    pub max_idle_time_closed: u64,
    /// Connections closed because they lived too long.
    pub max_lifetime_closed: u64,
}

fn ser_go_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&go_duration(*d))
}

/// Formats a duration the way Go's `time.Duration.String` does (`0s`, `150ms`, `1.5s`, `2m3.5s`, `1h0m0s`).
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim(format!("{:.3}", nanos as f64 / 1e3)));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim(format!("{:.6}", nanos as f64 / 1e6)));
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let frac = d.subsec_nanos();
    let sec = if frac == 0 {
        format!("{s}")
    } else {
        trim(format!("{s}.{frac:09}"))
    };
    match (h, m) {
        (0, 0) => format!("{sec}s"),
        (0, m) => format!("{m}m{sec}s"),
        (h, m) => format!("{h}h{m}m{sec}s"),
    }
}

/// Counters and histograms shared by the callbacks and the acquire path.
#[derive(Debug, Default)]
pub struct Counters {
    wait_count: AtomicU64,
    wait_nanos: AtomicU64,
    max_idle_closed: AtomicU64,
    max_idle_time_closed: AtomicU64,
    max_lifetime_closed: AtomicU64,
    broken_closed: AtomicU64,
    timeouts: AtomicU64,
    pending: AtomicU64,
    /// Time to obtain a connection (OpenTelemetry `db.client.connection.wait_time`).
    pub wait_time: Histogram,
    /// Time to open a connection (`db.client.connection.create_time`).
    pub create_time: Histogram,
    /// Time between acquire and release (`db.client.connection.use_time`).
    pub use_time: Histogram,
}

impl Counters {
    /// Acquisitions that timed out.
    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }
    /// Callers waiting for a connection now.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }
    /// Idle connections closed because a ping failed (not a Go counter; useful during outages).
    pub fn broken_closed(&self) -> u64 {
        self.broken_closed.load(Ordering::Relaxed)
    }
}

/// Why the cleaner closes a connection.
#[derive(Clone, Copy)]
struct IdleEntry {
    released_at: Instant,
    created_at: Instant,
}

/// State the sqlx callbacks share with the pool handle.
struct Shared {
    cfg: PoolConfig,
    counters: Arc<Counters>,
    /// Idle slots reserved by `after_release`, freed when an idle connection leaves the queue.
    idle_slots: AtomicU32,
    /// Mirror of sqlx's idle queue (oldest first), for the cleaner.
    idle_mirror: Mutex<VecDeque<IdleEntry>>,
}

impl Shared {
    fn free_slot(&self) {
        let _ = self
            .idle_slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    fn pop_mirror(&self) -> Option<IdleEntry> {
        self.idle_mirror.lock().ok().and_then(|mut q| q.pop_front())
    }

    fn expired_lifetime(&self, age: Duration) -> bool {
        self.cfg.max_lifetime.is_some_and(|max| age > max)
    }

    fn expired_idle(&self, idle_for: Duration) -> bool {
        self.cfg.max_idle_time.is_some_and(|max| idle_for > max)
    }
}

tokio::task_local! {
    /// Start of the [`Pool::acquire`] running in this task, so `after_connect` can time connection creation.
    static ACQUIRE_STARTED: Instant;
}

fn options<DB: SqlxDatabase>(shared: &Arc<Shared>) -> PoolOptions<DB> {
    let cfg = &shared.cfg;
    let (s1, s2, s3) = (shared.clone(), shared.clone(), shared.clone());
    PoolOptions::<DB>::new()
        .max_connections(cfg.max_open.max(1))
        .min_connections(0)
        .acquire_timeout(cfg.acquire_timeout)
        // Enforced below, where the closures can be counted.
        .max_lifetime(None)
        .idle_timeout(None)
        .test_before_acquire(false)
        .after_connect(move |_conn, _meta: PoolConnectionMetadata| {
            if let Ok(started) = ACQUIRE_STARTED.try_with(|s| *s) {
                s1.counters.create_time.observe(started.elapsed());
            }
            async { Ok(()) }.boxed()
        })
        .before_acquire(move |conn: &mut DB::Connection, meta: PoolConnectionMetadata| {
            let shared = s2.clone();
            async move {
                shared.free_slot();
                let _ = shared.pop_mirror();
                if shared.expired_lifetime(meta.age) {
                    shared
                        .counters
                        .max_lifetime_closed
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(false);
                }
                if shared.expired_idle(meta.idle_for) {
                    shared
                        .counters
                        .max_idle_time_closed
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(false);
                }
                if conn.ping().await.is_err() {
                    shared.counters.broken_closed.fetch_add(1, Ordering::Relaxed);
                    return Ok(false);
                }
                Ok(true)
            }
            .boxed()
        })
        .after_release(move |_conn, meta: PoolConnectionMetadata| {
            let shared = s3.clone();
            let keep = release_decision(&shared, meta.age);
            async move { Ok(keep) }.boxed()
        })
}

fn release_decision(shared: &Shared, age: Duration) -> bool {
    if shared.expired_lifetime(age) {
        shared
            .counters
            .max_lifetime_closed
            .fetch_add(1, Ordering::Relaxed);
        return false;
    }
    let max_idle = shared.cfg.max_idle;
    let reserved = shared
        .idle_slots
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max_idle).then_some(n + 1)
        });
    if reserved.is_err() {
        shared.counters.max_idle_closed.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    let now = Instant::now();
    if let Ok(mut q) = shared.idle_mirror.lock() {
        q.push_back(IdleEntry {
            released_at: now,
            created_at: now.checked_sub(age).unwrap_or(now),
        });
    }
    true
}

/// The fair semaphore every user of a connection passes first: one permit per connection in use through
/// [`Pool::acquire`], [`Pool::ping`] or [`Pool::db`]. Finding no permit free is Go's condition for a wait.
#[derive(Clone)]
pub(crate) struct Gate {
    sem: Arc<Semaphore>,
    shared: Arc<Shared>,
}

impl Gate {
    fn new(shared: Arc<Shared>) -> Self {
        let sem = Arc::new(Semaphore::new(shared.cfg.max_open.max(1) as usize));
        Self { sem, shared }
    }

    fn counters(&self) -> &Arc<Counters> {
        &self.shared.counters
    }

    fn timeout(&self) -> Duration {
        self.shared.cfg.acquire_timeout
    }

    /// Takes `n` permits (at most `DB_MAX_OPEN_CONNS`), waiting at most `timeout` since `started`. A wait is
    /// counted in `wait_count`, and its length in `wait_duration` and `wait_time`; the caller records the
    /// time of an acquisition that did not wait, once it has its connection. The caller counts `pending`.
    async fn enter(
        &self,
        n: u32,
        started: Instant,
        timeout: Duration,
    ) -> Result<(OwnedSemaphorePermit, bool), PoolError> {
        let c = &self.shared.counters;
        let n = n.clamp(1, self.shared.cfg.max_open.max(1));
        // The gate is fair (FIFO), like Go's queue of waiters.
        match self.sem.clone().try_acquire_many_owned(n) {
            Ok(p) => Ok((p, false)),
            Err(TryAcquireError::Closed) => Err(PoolError::Closed),
            Err(TryAcquireError::NoPermits) => {
                c.wait_count.fetch_add(1, Ordering::Relaxed);
                let remaining = timeout.saturating_sub(started.elapsed());
                let got = tokio::time::timeout(remaining, self.sem.clone().acquire_many_owned(n)).await;
                self.record_wait(started, true);
                match got {
                    Ok(Ok(p)) => Ok((p, true)),
                    Ok(Err(_)) => Err(PoolError::Closed),
                    Err(_) => {
                        c.timeouts.fetch_add(1, Ordering::Relaxed);
                        Err(PoolError::Timeout {
                            timeout,
                            max_open: self.shared.cfg.max_open,
                        })
                    }
                }
            }
        }
    }

    /// Records the time to obtain a connection; a wait also adds to `wait_duration`.
    fn record_wait(&self, started: Instant, waited: bool) {
        let c = &self.shared.counters;
        let elapsed = started.elapsed();
        if waited {
            let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
            c.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
        }
        c.wait_time.observe(elapsed);
    }

    fn close(&self) {
        self.sem.close();
    }
}

/// The sqlx pool of one backend plus its shared state.
struct Tracked<DB: SqlxDatabase> {
    pool: sqlx::Pool<DB>,
    shared: Arc<Shared>,
    gate: Gate,
}

impl<DB: SqlxDatabase> Tracked<DB> {
    fn new(shared: Arc<Shared>, gate: Gate, opts: <DB::Connection as Connection>::Options) -> Self {
        let pool = options::<DB>(&shared).connect_lazy_with(opts);
        Self { pool, shared, gate }
    }

    async fn acquire(
        &self,
        timeout: Duration,
    ) -> Result<(PoolConnection<DB>, Instant, OwnedSemaphorePermit), PoolError> {
        let c = &self.shared.counters;
        let started = Instant::now();
        c.pending.fetch_add(1, Ordering::Relaxed);
        // Decrements `pending` also when the caller's future is dropped mid-wait (timeouts around ping).
        let _pending = PendingGuard(c);
        let timed_out = || {
            c.timeouts.fetch_add(1, Ordering::Relaxed);
            PoolError::Timeout {
                timeout,
                max_open: self.shared.cfg.max_open,
            }
        };
        let (permit, waited) = self.gate.enter(1, started, timeout).await?;
        let remaining = timeout.saturating_sub(started.elapsed());
        let result = ACQUIRE_STARTED
            .scope(started, tokio::time::timeout(remaining, self.pool.acquire()))
            .await;
        if !waited {
            self.gate.record_wait(started, false);
        }
        match result {
            Ok(Ok(conn)) => Ok((conn, Instant::now(), permit)),
            Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) if self.pool.size() < self.shared.cfg.max_open => {
                // Not exhausted: sqlx spent the time retrying to connect (it retries refused connections
                // silently). One direct attempt tells the operator why, without a password in it.
                c.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(PoolError::Unreachable {
                    timeout,
                    reason: self.diagnose().await,
                })
            }
            Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) => Err(timed_out()),
            Ok(Err(sqlx::Error::PoolClosed)) => Err(PoolError::Closed),
            Ok(Err(e)) => Err(PoolError::Database(e)),
        }
    }

    /// Why a new connection cannot be opened, from one short direct attempt.
    async fn diagnose(&self) -> String {
        let opts = self.pool.connect_options();
        match tokio::time::timeout(Duration::from_millis(250), sqlx::ConnectOptions::connect(&*opts)).await {
            Ok(Err(e)) => e.to_string(),
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                "the server accepts connections again".to_owned()
            }
            Err(_) => "the server did not answer".to_owned(),
        }
    }

    /// Closes idle connections that expired while nobody asked for them.
    async fn clean(&self) {
        let now = Instant::now();
        loop {
            let front = self
                .shared
                .idle_mirror
                .lock()
                .ok()
                .and_then(|q| q.front().copied());
            let Some(entry) = front else { break };
            let lifetime = self
                .shared
                .cfg
                .max_lifetime
                .is_some_and(|max| now.saturating_duration_since(entry.created_at) > max);
            let idle = self
                .shared
                .cfg
                .max_idle_time
                .is_some_and(|max| now.saturating_duration_since(entry.released_at) > max);
            if !(lifetime || idle) {
                break;
            }
            let Some(conn) = self.pool.try_acquire() else {
                // Nothing idle after all: the mirror is ahead of the queue.
                let _ = self.shared.pop_mirror();
                break;
            };
            let _ = self.shared.pop_mirror();
            self.shared.free_slot();
            let counter = if lifetime {
                &self.shared.counters.max_lifetime_closed
            } else {
                &self.shared.counters.max_idle_time_closed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = conn.close().await;
        }
        // Reconcile the slot count and the mirror with sqlx's idle count (see the module docs).
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        let _ = self
            .shared
            .idle_slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > idle).then_some(idle)
            });
        if let Ok(mut q) = self.shared.idle_mirror.lock() {
            while q.len() > idle as usize {
                q.pop_front();
            }
        }
    }
}

pub(crate) struct PendingGuard<'a>(pub(crate) &'a Counters);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
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
    backend: Backend,
    db: Db,
    shared: Arc<Shared>,
    cleaner: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("engine", &self.engine())
            .field("settings", &self.shared.cfg)
            .finish_non_exhaustive()
    }
}

/// A connection taken with [`Pool::acquire`]; returned to the pool on drop, which records its use time.
pub struct PooledConn {
    inner: ConnInner,
    _permit: OwnedSemaphorePermit,
    acquired_at: Instant,
    counters: Arc<Counters>,
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
        match &mut self.inner {
            ConnInner::Postgres(c) => c.ping().await,
            ConnInner::Sqlite(c) => c.ping().await,
        }
        .map_err(PoolError::Database)
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
        self.counters.use_time.observe(self.acquired_at.elapsed());
    }
}

impl Pool {
    /// Builds the pool without connecting: the first use connects, so a database that is down at start does
    /// not stop the service from starting. Must be called inside a Tokio runtime (the cleaner is a task).
    ///
    /// # Errors
    /// [`PoolError::Build`] when a SQLite URL cannot be understood.
    pub fn new(cfg: &DbConfig) -> Result<Self, PoolError> {
        let shared = Arc::new(Shared {
            cfg: cfg.pool.clone(),
            counters: Arc::new(Counters::default()),
            idle_slots: AtomicU32::new(0),
            idle_mirror: Mutex::new(VecDeque::new()),
        });
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
        let pool = Self {
            backend,
            db: Db::new(orm, gate),
            shared,
            cleaner: Arc::new(Mutex::new(None)),
        };
        pool.spawn_cleaner();
        Ok(pool)
    }

    fn spawn_cleaner(&self) {
        let cfg = &self.shared.cfg;
        let Some(shortest) = [cfg.max_lifetime, cfg.max_idle_time].into_iter().flatten().min() else {
            return;
        };
        // Go's cleaner runs at the shortest limit, at least every second; half of it keeps closures closer.
        let period = (shortest / 2).clamp(Duration::from_millis(50), Duration::from_secs(60));
        let backend = self.backend.clone();
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match &backend {
                    Backend::Postgres(t) if !t.pool.is_closed() => t.clean().await,
                    Backend::Sqlite(t) if !t.pool.is_closed() => t.clean().await,
                    _ => break,
                }
            }
        });
        if let Ok(mut slot) = self.cleaner.lock() {
            *slot = Some(handle);
        }
    }

    /// The SeaORM connection over this pool: every statement, and every transaction as a whole, passes the
    /// same gate as [`Pool::acquire`], so its waits are counted and bounded by `DB_CONN_ACQUIRE_TIMEOUT`.
    /// Use it wherever SeaORM takes a connection: `users::Entity::repo(pool.db(), ctx)`.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        match self.backend {
            Backend::Postgres(_) => Engine::Postgresql,
            Backend::Sqlite(_) => Engine::Sqlite,
        }
    }

    /// The settings the pool enforces.
    pub fn settings(&self) -> &PoolConfig {
        &self.shared.cfg
    }

    /// Counters and histograms beyond [`PoolStats`] (for `/metrics`).
    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Takes a connection, waiting at most `DB_CONN_ACQUIRE_TIMEOUT`; the wait is counted.
    ///
    /// # Errors
    /// [`PoolError::Timeout`] when none became free, [`PoolError::Unreachable`] or [`PoolError::Database`]
    /// when a new connection failed, [`PoolError::Closed`] during shutdown.
    pub async fn acquire(&self) -> Result<PooledConn, PoolError> {
        self.acquire_within(self.shared.cfg.acquire_timeout).await
    }

    /// Like [`Pool::acquire`], waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Pool::acquire`].
    pub async fn acquire_within(&self, timeout: Duration) -> Result<PooledConn, PoolError> {
        let (inner, acquired_at, permit) = match &self.backend {
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
            counters: self.shared.counters.clone(),
        })
    }

    /// Acquires a connection and pings the server, all within `timeout`.
    ///
    /// # Errors
    /// [`PoolError::Timeout`] when `timeout` ran out, or the error from acquiring or pinging.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, PoolError> {
        let started = Instant::now();
        let mut conn = self.acquire_within(timeout).await?;
        let remaining = timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(remaining, conn.ping()).await {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(PoolError::Unreachable {
                timeout,
                reason: "the server did not answer a ping".to_owned(),
            }),
        }
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> PoolStats {
        let (size, idle) = match &self.backend {
            Backend::Postgres(t) => (t.pool.size(), t.pool.num_idle()),
            Backend::Sqlite(t) => (t.pool.size(), t.pool.num_idle()),
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        let c = &self.shared.counters;
        PoolStats {
            max_open_connections: self.shared.cfg.max_open,
            open_connections: size,
            in_use: size - idle,
            idle,
            wait_count: c.wait_count.load(Ordering::Relaxed),
            wait_duration: Duration::from_nanos(c.wait_nanos.load(Ordering::Relaxed)),
            max_idle_closed: c.max_idle_closed.load(Ordering::Relaxed),
            max_idle_time_closed: c.max_idle_time_closed.load(Ordering::Relaxed),
            max_lifetime_closed: c.max_lifetime_closed.load(Ordering::Relaxed),
        }
    }

    /// Closes every connection and stops the cleaner; waits for connections in use to come back.
    pub async fn close(&self) {
        if let Some(h) = self.cleaner.lock().ok().and_then(|mut s| s.take()) {
            h.abort();
        }
        match &self.backend {
            Backend::Postgres(t) => {
                t.gate.close();
                t.pool.close().await;
            }
            Backend::Sqlite(t) => {
                t.gate.close();
                t.pool.close().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_matches_go_formatting() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_millis(150)), "150ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(123_500)), "2m3.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
    }
}
