//! The sqlx pool callbacks through which the pool sees its connections: opened (`after_connect`), handed out
//! from the idle queue (`before_acquire`) and given back (`after_release`), and the session settings of
//! guarded scopes (the server-side timeouts of health reads).
//!
//! Owns what runs on a connection at those moments and the per-backend SQL for it ([`BackendSql`]). The
//! decisions the callbacks apply (keep or close, what to count) are [`Shared`]'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use sea_orm::sqlx::pool::{PoolConnectionMetadata, PoolOptions};
use sea_orm::sqlx::{self, AssertSqlSafe, Connection, Database as SqlxDatabase, Postgres, Sqlite};

use super::shared::Shared;
use super::stats::Counters;

tokio::task_local! {
    /// Start of the [`super::Pool::acquire`] running in this task, so `after_connect` can time connection
    /// creation.
    pub(super) static ACQUIRE_STARTED: Instant;
    /// The server-side timeout of the guarded scope running in this task ([`super::Pool::guarded`]).
    pub(super) static GUARD: Duration;
}

/// The per-backend part of the callbacks.
pub(super) trait BackendSql: SqlxDatabase {
    /// Sets the session's statement and lock timeouts to `timeout` for a guarded scope; like a ping, it
    /// proves the connection alive.
    fn guard(conn: &mut Self::Connection, timeout: Duration) -> BoxFuture<'_, Result<(), sqlx::Error>>;
    /// Puts the session's timeouts back to the server's defaults.
    fn unguard(conn: &mut Self::Connection) -> BoxFuture<'_, Result<(), sqlx::Error>>;
}

impl BackendSql for Postgres {
    fn guard(conn: &mut Self::Connection, timeout: Duration) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        // Milliseconds, at least 1: `0` would mean no timeout at all.
        let ms = timeout.as_millis().max(1);
        let sql = format!("SET statement_timeout = {ms}; SET lock_timeout = {ms}");
        async move { sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn).await.map(drop) }.boxed()
    }

    fn unguard(conn: &mut Self::Connection) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        async move {
            sqlx::raw_sql("RESET statement_timeout; RESET lock_timeout")
                .execute(conn)
                .await
                .map(drop)
        }
        .boxed()
    }
}

impl BackendSql for Sqlite {
    // SQLite has no statement timeout; a reader does not wait behind a writer in WAL mode, and a lock wait
    // ends at the connection's busy timeout. The guard only checks the connection.
    fn guard(conn: &mut Self::Connection, _timeout: Duration) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        conn.ping().boxed()
    }

    fn unguard(_conn: &mut Self::Connection) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        async { Ok(()) }.boxed()
    }
}

/// The sqlx pool options: sqlx's own lifetime, idle reaper and pings are off, these callbacks count instead.
pub(super) fn options<DB: BackendSql>(shared: &Arc<Shared>) -> PoolOptions<DB> {
    let cfg = &shared.cfg;
    let (s1, s2, s3) = (shared.clone(), shared.clone(), shared.clone());
    PoolOptions::<DB>::new()
        .max_connections(cfg.max_open.max(1))
        .min_connections(0)
        .acquire_timeout(cfg.acquire_timeout)
        .max_lifetime(None)
        .idle_timeout(None)
        .test_before_acquire(false)
        .after_connect(move |conn: &mut DB::Connection, _meta: PoolConnectionMetadata| {
            let shared = s1.clone();
            // Task-locals are read here, in the acquiring task; the future below runs in it too.
            let started = ACQUIRE_STARTED.try_with(|s| *s).ok();
            let guard = GUARD.try_with(|g| *g).ok();
            async move {
                if let Some(started) = started {
                    shared.counters.create_time.observe(started.elapsed());
                }
                shared.connected();
                if let Some(timeout) = guard {
                    DB::guard(conn, timeout).await?;
                }
                shared.handed();
                Ok(())
            }
            .boxed()
        })
        .before_acquire(move |conn: &mut DB::Connection, meta: PoolConnectionMetadata| {
            let shared = s2.clone();
            let guard = GUARD.try_with(|g| *g).ok();
            async move {
                shared.left_idle();
                let c = &shared.counters;
                if shared.expired_lifetime(meta.age) {
                    Counters::add(&c.max_lifetime_closed);
                    return Ok(false);
                }
                if shared.expired_idle(meta.idle_for) {
                    Counters::add(&c.max_idle_time_closed);
                    return Ok(false);
                }
                // The check sqlx's test_before_acquire would make, done here so a broken one is counted.
                let alive = match guard {
                    Some(timeout) => DB::guard(conn, timeout).await,
                    None => conn.ping().await,
                };
                if let Err(e) = alive {
                    Counters::add(&c.broken_closed);
                    shared.record_error(format!("an idle connection was found broken: {e}"));
                    return Ok(false);
                }
                shared.handed();
                Ok(true)
            }
            .boxed()
        })
        .after_release(move |conn: &mut DB::Connection, meta: PoolConnectionMetadata| {
            let shared = s3.clone();
            async move {
                shared.returned();
                if shared.guard_window_open() && DB::unguard(conn).await.is_err() {
                    Counters::add(&shared.counters.broken_closed);
                    return Ok(false);
                }
                Ok(shared.keep_on_release(meta.age))
            }
            .boxed()
        })
}
