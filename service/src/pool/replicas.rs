//! Read replicas: their pools, what is known of each (up, replayed WAL position, lag), where a repository
//! read goes, and read sessions with a sticky window after their writes.
//!
//! Owns routing by intent. A repository statement says where its reads may go ([`entity::ReadFrom`] in its
//! [`entity::Op`]); nothing here looks at SQL text or method names (SeaORM sends `INSERT … RETURNING` through
//! `query_all`). Only a [`entity::OpKind::Select`] run on the direct path outside a transaction may leave the
//! primary; writes, transactions and every statement through `ConnectionTrait` go to the primary.
//!
//! - **Replica** (`ReadFrom::Replica`): the next replica (round robin) that is up and within
//!   `DB_REPLICA_MAX_LAG`; none → the primary, counted as a fallback.
//! - **After a write** (`ReadFrom::After(token)`): a replica whose replayed position is at least the token.
//!   The position known from the last check is used when it is enough; otherwise the replica is asked
//!   (`pg_last_wal_replay_lsn()`, PostgreSQL 15 has no server-side wait) on the connection that will run the
//!   read, every millisecond until `DB_REPLICA_MAX_WAIT`; then the read goes to the primary (counted). Measured
//!   on this machine: right after a commit 427 of 500 loopback replica reads were stale, and the wait took a
//!   median 0.77 ms.
//! - **Sticky window** ([`Session`]): after a write through a session, its replica reads without a token go to
//!   the primary for `DB_REPLICA_STICKY` (Rails' `DatabaseSelector` does the same for 2 s).
//! - A replica whose connection cannot be had within the wait budget, or whose check fails, is marked down
//!   at once and the read goes to the primary in the same request; a monitor task checks every replica each
//!   second (up, replayed position, lag in bytes and seconds) and brings it back when it answers.
//!
//! Replica pools are [`Pool`]s like the primary's (same `DB_MAX_*` settings, their own gate and statistics).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use config::{DbConfig, DbTarget, PgTarget, ReplicaConfig};
use entity::{Direct, ReadFrom, WriteToken};
use sea_orm::sqlx::{self, PgConnection, Postgres, pool::PoolConnection};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use serde::Serialize;
use tokio::sync::OwnedSemaphorePermit;

use super::shared::Shared;
use super::{Backend, Db, Pool, PoolError};

/// How often the monitor checks every replica.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long one check of a replica (or of the primary's WAL position) may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// The shortest time a read waits for a replica connection before it goes to the primary: a loaded replica
/// pool answers within this, a stopped replica never does.
const MIN_REPLICA_ACQUIRE: Duration = Duration::from_millis(50);
/// Pause between two asks of a replica's replayed position while a read waits for it.
const POLL_EVERY: Duration = Duration::from_millis(1);

/// The primary's current WAL position, as a number (`pg_lsn - '0/0'`).
const PRIMARY_LSN: &str = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS lsn";
/// A replica's replayed position.
const REPLAY_LSN: &str = "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint";
/// A replica's state: in recovery, replayed position, and seconds since the last replayed transaction while
/// WAL it has received is still to be replayed (0 when it has replayed all it received: an idle primary
/// writes no transactions, so the timestamp alone would grow without lag).
const REPLICA_STATE: &str = "SELECT pg_is_in_recovery() AS recovering, \
     (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS replayed, \
     CASE WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
     ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8 AS lag_seconds";

/// What is known of one replica.
#[derive(Debug, Default)]
struct State {
    up: AtomicBool,
    replayed: AtomicU64,
    lag_bytes: AtomicU64,
    lag_micros: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// One replica: its pool and its state.
pub(crate) struct Replica {
    name: String,
    shown: String,
    pub(crate) pool: Pool,
    state: State,
}

impl Replica {
    fn mark_down(&self, why: String) {
        self.state.up.store(false, Ordering::Release);
        if let Ok(mut e) = self.state.last_error.lock() {
            *e = Some(why);
        }
    }

    fn lag(&self) -> Duration {
        Duration::from_micros(self.state.lag_micros.load(Ordering::Relaxed))
    }
}

/// Reads routed by intent, and why some did not reach a replica.
#[derive(Debug, Default)]
pub struct RouteCounters {
    /// Reads served by a replica.
    pub replica_reads: AtomicU64,
    /// Reads that asked for a replica and went to the primary because of the sticky window.
    pub sticky_reads: AtomicU64,
    /// Reads with a token whose replica had not replayed it within `DB_REPLICA_MAX_WAIT`.
    pub fallback_token_timeout: AtomicU64,
    /// Reads that found no replica up (down, unreachable, failing its check).
    pub fallback_unavailable: AtomicU64,
    /// Reads that found every replica up lagging beyond `DB_REPLICA_MAX_LAG`.
    pub fallback_lagging: AtomicU64,
    /// Reads with a token that waited for a replica to replay it (and were then served by it).
    pub token_waits: AtomicU64,
}

impl RouteCounters {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot.
    pub fn snapshot(&self) -> RouteStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RouteStats {
            replica_reads: get(&self.replica_reads),
            sticky_reads: get(&self.sticky_reads),
            fallback_token_timeout: get(&self.fallback_token_timeout),
            fallback_unavailable: get(&self.fallback_unavailable),
            fallback_lagging: get(&self.fallback_lagging),
            token_waits: get(&self.token_waits),
        }
    }
}

/// The routing counters at one moment (see [`RouteCounters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct RouteStats {
    /// Reads served by a replica.
    pub replica_reads: u64,
    /// Replica reads kept on the primary by the sticky window.
    pub sticky_reads: u64,
    /// Token reads that fell back to the primary after `DB_REPLICA_MAX_WAIT`.
    pub fallback_token_timeout: u64,
    /// Replica reads that fell back because no replica was up.
    pub fallback_unavailable: u64,
    /// Replica reads that fell back because every replica lagged beyond `DB_REPLICA_MAX_LAG`.
    pub fallback_lagging: u64,
    /// Token reads that waited for a replica and were served by it.
    pub token_waits: u64,
}

impl RouteStats {
    /// Every fallback to the primary.
    pub fn fallbacks(&self) -> u64 {
        self.fallback_token_timeout + self.fallback_unavailable + self.fallback_lagging
    }
}

/// One replica as health and metrics report it.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct ReplicaStatus {
    /// The pool's name (`replica1`, `replica2`, … in `DB_REPLICA_URLS` order).
    pub pool_name: String,
    /// The replica, without its password.
    pub target: String,
    /// `healthy`, `lagging` or `down`.
    pub status: &'static str,
    /// Bytes of WAL the primary has written that the replica has not replayed.
    pub lag_bytes: u64,
    /// Seconds the replica's replay is behind.
    pub lag_seconds: f64,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<String>,
    /// Its pool's statistics.
    pub pool_stats: super::PoolStats,
}

/// The replicas of a primary, and the routing of reads to them.
pub(crate) struct Replicas {
    cfg: ReplicaConfig,
    members: Vec<Replica>,
    next: AtomicUsize,
    pub(crate) counters: RouteCounters,
}

impl Replicas {
    /// Pools for `cfg`'s replicas (lazy: none connects here); `None` without replicas.
    pub(crate) fn new(cfg: &DbConfig) -> Result<Option<Arc<Self>>, PoolError> {
        if cfg.replicas.targets.is_empty() {
            return Ok(None);
        }
        let members = cfg
            .replicas
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| replica(cfg, i, t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Arc::new(Self {
            cfg: cfg.replicas.clone(),
            members,
            next: AtomicUsize::new(0),
            counters: RouteCounters::default(),
        })))
    }

    /// The replica a read with `read` goes to, with its connection, or `None` for the primary (counted when
    /// a replica was asked for). `wrote_at`: the reading session's last write, for the sticky window.
    pub(crate) async fn lend(&self, read: ReadFrom, wrote_at: Option<Instant>) -> Option<Direct<'_>> {
        let token = match read {
            ReadFrom::Replica => None,
            ReadFrom::After(t) => Some(t),
            _ => return None,
        };
        if token.is_none()
            && !self.cfg.sticky.is_zero()
            && wrote_at.is_some_and(|at| at.elapsed() < self.cfg.sticky)
        {
            RouteCounters::add(&self.counters.sticky_reads);
            return None;
        }
        let replica = self.pick()?;
        let budget = self.cfg.max_wait.max(MIN_REPLICA_ACQUIRE);
        let started = Instant::now();
        let mut lease = match replica.pool.acquire_pg(budget).await {
            Ok(lease) => lease,
            Err(e) => {
                replica.mark_down(e.to_string());
                RouteCounters::add(&self.counters.fallback_unavailable);
                return None;
            }
        };
        if let Some(token) = token
            && replica.state.replayed.load(Ordering::Acquire) < token.0
        {
            match self.wait_for(replica, &mut lease.conn, token, started).await {
                Ok(true) => RouteCounters::add(&self.counters.token_waits),
                Ok(false) => {
                    RouteCounters::add(&self.counters.fallback_token_timeout);
                    return None;
                }
                Err(e) => {
                    replica.mark_down(format!("asking its replayed position failed: {e}"));
                    RouteCounters::add(&self.counters.fallback_unavailable);
                    return None;
                }
            }
        }
        RouteCounters::add(&self.counters.replica_reads);
        Some(Direct::connection(lease))
    }

    /// The next replica that is up and within the lag limit; counts why there is none.
    fn pick(&self) -> Option<&Replica> {
        let n = self.members.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let mut lagging = false;
        for i in 0..n {
            let r = &self.members[(first + i) % n];
            if !r.state.up.load(Ordering::Acquire) {
                continue;
            }
            if r.lag() > self.cfg.max_lag {
                lagging = true;
                continue;
            }
            return Some(r);
        }
        RouteCounters::add(if lagging {
            &self.counters.fallback_lagging
        } else {
            &self.counters.fallback_unavailable
        });
        None
    }

    /// Asks the replica its replayed position until it reaches `token` (`true`) or `DB_REPLICA_MAX_WAIT` has
    /// passed since `started` (`false`).
    async fn wait_for(
        &self,
        replica: &Replica,
        conn: &mut PgConnection,
        token: WriteToken,
        started: Instant,
    ) -> Result<bool, sqlx::Error> {
        loop {
            let replayed: Option<i64> = sqlx::query_scalar(REPLAY_LSN).fetch_one(&mut *conn).await?;
            let replayed = replayed.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
            replica.state.replayed.fetch_max(replayed, Ordering::AcqRel);
            if replayed >= token.0 {
                return Ok(true);
            }
            if started.elapsed() >= self.cfg.max_wait {
                return Ok(false);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Checks every replica once: up, replayed position, lag against `primary_lsn` (when known).
    async fn check(&self, primary_lsn: Option<u64>) {
        for r in &self.members {
            let stmt = Statement::from_string(DbBackend::Postgres, REPLICA_STATE);
            let answer = tokio::time::timeout(CHECK_TIMEOUT, r.pool.db().query_one_raw(stmt)).await;
            let row = match answer {
                Ok(Ok(Some(row))) => row,
                Ok(Ok(None)) => {
                    r.mark_down("its state query returned no row".to_owned());
                    continue;
                }
                Ok(Err(e)) => {
                    r.mark_down(e.to_string());
                    continue;
                }
                Err(_) => {
                    r.mark_down(format!(
                        "no answer within {}",
                        humantime::format_duration(CHECK_TIMEOUT)
                    ));
                    continue;
                }
            };
            let recovering: bool = row.try_get("", "recovering").unwrap_or(false);
            if !recovering {
                r.mark_down("it is not in recovery: not a replica (promoted?)".to_owned());
                continue;
            }
            let replayed: Option<i64> = row.try_get("", "replayed").unwrap_or(None);
            let replayed = replayed.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
            let lag_seconds: f64 = row.try_get("", "lag_seconds").unwrap_or(0.0);
            r.state.replayed.fetch_max(replayed, Ordering::AcqRel);
            if let Some(p) = primary_lsn {
                r.state
                    .lag_bytes
                    .store(p.saturating_sub(replayed), Ordering::Relaxed);
            }
            let micros = if lag_seconds.is_finite() && lag_seconds > 0.0 {
                (lag_seconds * 1e6) as u64
            } else {
                0
            };
            r.state.lag_micros.store(micros, Ordering::Relaxed);
            r.state.up.store(true, Ordering::Release);
            if let Ok(mut e) = r.state.last_error.lock() {
                *e = None;
            }
        }
    }

    /// What health and metrics show of every replica.
    pub(crate) fn statuses(&self) -> Vec<ReplicaStatus> {
        self.members
            .iter()
            .map(|r| {
                let up = r.state.up.load(Ordering::Acquire);
                let lag = r.lag();
                ReplicaStatus {
                    pool_name: r.name.clone(),
                    target: r.shown.clone(),
                    status: if !up {
                        "down"
                    } else if lag > self.cfg.max_lag {
                        "lagging"
                    } else {
                        "healthy"
                    },
                    lag_bytes: r.state.lag_bytes.load(Ordering::Relaxed),
                    lag_seconds: lag.as_secs_f64(),
                    error: if up {
                        None
                    } else {
                        r.state.last_error.lock().ok().and_then(|e| e.clone())
                    },
                    pool_stats: r.pool.stats(),
                }
            })
            .collect()
    }

    /// Closes every replica pool (boxed: a replica's `Pool::close` is this pool type's own).
    pub(crate) fn close(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            for r in &self.members {
                r.pool.close().await;
            }
        })
    }
}

fn replica(cfg: &DbConfig, i: usize, t: &PgTarget) -> Result<Replica, PoolError> {
    let mut one = cfg.for_migrations();
    one.target = DbTarget::Postgres(t.clone());
    one.replicas.targets.clear();
    let pool = Pool::single(&one)?;
    let state = State::default();
    // Optimistic until the first check: a read that finds it away marks it down and goes to the primary.
    state.up.store(true, Ordering::Release);
    Ok(Replica {
        name: format!("replica{}", i + 1),
        shown: t.to_string(),
        pool,
        state,
    })
}

/// The monitor: checks every replica each [`CHECK_EVERY`], with the primary's WAL position for the lag in
/// bytes. Holds the primary's gated connection without its replicas (no reference cycle).
pub(crate) fn spawn_monitor(replicas: Arc<Replicas>, primary: Db) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let stmt = Statement::from_string(DbBackend::Postgres, PRIMARY_LSN);
            let lsn = match tokio::time::timeout(CHECK_TIMEOUT, primary.query_one_raw(stmt)).await {
                Ok(Ok(Some(row))) => row
                    .try_get::<Option<i64>>("", "lsn")
                    .ok()
                    .flatten()
                    .and_then(|n| u64::try_from(n).ok()),
                _ => None,
            };
            replicas.check(lsn).await;
        }
    })
}

/// The primary's WAL position now: a token that any write committed before this call is at or before.
pub(crate) async fn write_token(primary: &Db) -> Result<WriteToken, DbErr> {
    let stmt = Statement::from_string(DbBackend::Postgres, PRIMARY_LSN);
    let row = primary
        .query_one_raw(stmt)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("pg_current_wal_lsn() returned no row".to_owned()))?;
    let lsn: Option<i64> = row.try_get("", "lsn")?;
    Ok(WriteToken(lsn.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)))
}

/// A replica connection lent to one statement: returned to its pool (and its gate permit released, its use
/// time observed) when dropped.
pub(crate) struct PgLease {
    pub(crate) conn: PoolConnection<Postgres>,
    _permit: OwnedSemaphorePermit,
    acquired_at: Instant,
    shared: Arc<Shared>,
}

impl std::ops::Deref for PgLease {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for PgLease {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

impl Drop for PgLease {
    fn drop(&mut self) {
        self.shared.counters.use_time.observe(self.acquired_at.elapsed());
    }
}

impl Pool {
    /// A PostgreSQL connection of this pool through its gate, within `timeout`.
    pub(crate) async fn acquire_pg(&self, timeout: Duration) -> Result<PgLease, PoolError> {
        match &self.inner.backend {
            Backend::Postgres(t) => {
                let (conn, acquired_at, permit) = t.acquire(timeout).await?;
                Ok(PgLease {
                    conn,
                    _permit: permit,
                    acquired_at,
                    shared: self.inner.shared.clone(),
                })
            }
            Backend::Sqlite(_) => Err(PoolError::Unsupported {
                target: "a SQLite replica".to_owned(),
            }),
        }
    }
}

/// A read session: the primary's connection plus the time of its last write, so that its replica reads
/// without a token stay on the primary for `DB_REPLICA_STICKY` after it wrote. Get one per request (or per
/// user session) with [`Pool::session`]; it implements `entity::Executor`, so repositories take it like
/// [`Pool::db`]:
///
/// ```rust,ignore
/// let s = pool.session();
/// Users::repo(&s, ctx)?.insert(u).await?;                       // primary
/// let token = s.token().await?;                                  // Some(..): carry it to the next request
/// Users::repo(&s, ctx.read_from(ReadFrom::Replica))?.get(id).await?; // primary: inside the sticky window
/// ```
pub struct Session<'p> {
    pool: &'p Pool,
    wrote_at: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("wrote_at", &self.last_write())
            .finish_non_exhaustive()
    }
}

impl<'p> Session<'p> {
    pub(crate) fn new(pool: &'p Pool) -> Self {
        Self {
            pool,
            wrote_at: Mutex::new(None),
        }
    }

    fn wrote(&self) {
        if let Ok(mut at) = self.wrote_at.lock() {
            *at = Some(Instant::now());
        }
    }

    /// When this session last wrote (or sent a statement through `ConnectionTrait`, which may write).
    pub fn last_write(&self) -> Option<Instant> {
        self.wrote_at.lock().ok().and_then(|at| *at)
    }

    /// The read-your-writes token of this session's writes: the primary's WAL position now, which every
    /// write committed before is at or before. `None` when the session has not written.
    ///
    /// # Errors
    /// The primary's error.
    pub async fn token(&self) -> Result<Option<WriteToken>, DbErr> {
        if self.last_write().is_none() {
            return Ok(None);
        }
        write_token(self.pool.db()).await.map(Some)
    }
}

/// Sets the session's last write when the statement is done (it may have taken a while).
struct WriteMark<'s, 'p>(&'s Session<'p>);

impl Drop for WriteMark<'_, '_> {
    fn drop(&mut self) {
        self.0.wrote();
    }
}

impl entity::Executor for Session<'_> {
    async fn direct(&self, op: entity::Op) -> Result<Option<Direct<'_>>, DbErr> {
        if op.kind == entity::OpKind::Select {
            if let Some(replicas) = self.pool.replicas()
                && let Some(lent) = replicas.lend(op.read, self.last_write()).await
            {
                return Ok(Some(lent));
            }
            return self.pool.db().primary_direct().await;
        }
        self.wrote();
        let primary = self.pool.db().primary_direct().await?;
        Ok(primary.map(|d| d.holding(WriteMark(self))))
    }

    fn observer(&self) -> Option<&dyn entity::Observer> {
        entity::Executor::observer(self.pool.db())
    }

    async fn run_raw(&self, stmt: Statement, want: entity::Want) -> Result<entity::Output, DbErr> {
        let _mark = WriteMark(self);
        entity::Executor::run_raw(self.pool.db(), stmt, want).await
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Session<'_> {
    fn get_database_backend(&self) -> DbBackend {
        self.pool.db().get_database_backend()
    }

    // Through `ConnectionTrait` nothing says whether a statement writes (`INSERT … RETURNING` comes as a
    // query): every one goes to the primary and counts as a write for the sticky window.
    async fn execute_raw(&self, stmt: Statement) -> Result<sea_orm::ExecResult, DbErr> {
        let _mark = WriteMark(self);
        self.pool.db().execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<sea_orm::ExecResult, DbErr> {
        let _mark = WriteMark(self);
        self.pool.db().execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<sea_orm::QueryResult>, DbErr> {
        let _mark = WriteMark(self);
        self.pool.db().query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
        let _mark = WriteMark(self);
        self.pool.db().query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.pool.db().support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        false
    }
}
