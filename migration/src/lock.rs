//! The migration lock: one runner at a time per database.
//!
//! PostgreSQL: two session-level advisory locks.
//!
//! - The run lock ([`PgLock`], key [`ADVISORY_KEY`]) on a connection of its own, held for the whole run and
//!   released at the end (or by the server when the connection drops): one runner at a time, and the one that
//!   waits is told who holds it. Its connection never runs a migration, so a Rust migration may take the
//!   pool's only connection meanwhile.
//! - The applying lock ([`hold_applying`], key [`APPLYING_KEY`]) on the connection that runs the migrations,
//!   taken right after the run lock and before the history is read. When a runner is killed (`kill -9`), its
//!   run lock goes at once with its connection, but the server goes on running the migration it had sent on
//!   the applying connection until that query ends: that orphaned backend still holds the applying lock, so
//!   the next runner waits for it to commit or roll back, and only then reads the history.
//!
//! A runner that finds a lock taken reports that it waits, then waits under `lock_timeout`, so it gives up
//! with [`MigrateError::LockTimeout`] instead of hanging. Every function is called `pg_catalog.`-qualified.
//!
//! SQLite has no advisory locks. There each migration runs in a `BEGIN IMMEDIATE` transaction (SQLite's
//! database-wide write lock, waited for up to the connection's busy timeout) that first re-checks the history
//! and skips a migration another runner recorded meanwhile. So no lock object exists for SQLite here.

use std::time::{Duration, Instant};

use sea_orm::sqlx::{self, AssertSqlSafe, Connection, Row};

use crate::error::MigrateError;

/// The advisory lock key: `collex` in ASCII. Advisory locks are per database, so one constant suffices.
pub const ADVISORY_KEY: i64 = 0x636f_6c6c_6578;

/// The applying lock's key: held by the connection that runs migrations, for as long as it runs them.
pub const APPLYING_KEY: i64 = ADVISORY_KEY + 1;

/// A held PostgreSQL advisory lock and its dedicated connection.
pub struct PgLock {
    conn: sqlx::PgConnection,
}

/// What a runner reports while it waits.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// The timeout it will wait for.
    pub timeout: Duration,
    /// `pid N (application, user)` of the holder, when visible.
    pub holder: Option<String>,
}

impl PgLock {
    /// Takes the lock on a new connection made with the pool's options, waiting up to `timeout`.
    /// `on_wait` is called once if the lock is taken by someone else.
    ///
    /// # Errors
    /// [`MigrateError::LockTimeout`] after `timeout`; [`MigrateError::Database`] when the connection fails.
    pub async fn acquire(
        pool: &sqlx::PgPool,
        timeout: Duration,
        on_wait: impl FnOnce(&Waiting),
    ) -> Result<(Self, Option<Duration>), MigrateError> {
        let opts = pool.connect_options();
        let mut conn = sqlx::PgConnection::connect_with(&opts)
            .await
            .map_err(|e| MigrateError::db("opening the lock connection", e))?;
        let got: bool = sqlx::raw_sql(AssertSqlSafe(format!(
            "SELECT pg_catalog.pg_try_advisory_lock({ADVISORY_KEY})"
        )))
        .fetch_one(&mut conn)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| MigrateError::db("taking the migration lock", e))?;
        if got {
            return Ok((Self { conn }, None));
        }
        let holder = holder(&mut conn, ADVISORY_KEY).await;
        on_wait(&Waiting {
            timeout,
            holder: holder.clone(),
        });
        let started = Instant::now();
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
        let sql = format!(
            "SET lock_timeout = {ms}; SELECT pg_catalog.pg_advisory_lock({ADVISORY_KEY}); SET lock_timeout = 0"
        );
        match sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await {
            Ok(_) => Ok((Self { conn }, Some(started.elapsed()))),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                Err(MigrateError::LockTimeout {
                    waited: started.elapsed(),
                    holder,
                })
            }
            Err(e) => Err(MigrateError::db("waiting for the migration lock", e)),
        }
    }

    /// Releases the lock and closes its connection.
    pub async fn release(mut self) {
        let _ = sqlx::raw_sql(AssertSqlSafe(format!(
            "SELECT pg_catalog.pg_advisory_unlock({ADVISORY_KEY})"
        )))
        .execute(&mut self.conn)
        .await;
        let _ = self.conn.close().await;
    }
}

/// Takes the applying lock on `conn`, the connection that will run the migrations, waiting up to `timeout`
/// for a backend that still holds it (the server side of a killed runner); `on_wait` is called once then.
/// The session's own `lock_timeout` is restored afterwards (`RESET`), so migrations see their usual setting.
///
/// # Errors
/// [`MigrateError::LockTimeout`] after `timeout`; [`MigrateError::Database`] otherwise.
pub async fn hold_applying(
    conn: &mut sqlx::PgConnection,
    timeout: Duration,
    on_wait: impl FnOnce(&Waiting),
) -> Result<Option<Duration>, MigrateError> {
    let got: bool = sqlx::raw_sql(AssertSqlSafe(format!(
        "SELECT pg_catalog.pg_try_advisory_lock({APPLYING_KEY})"
    )))
    .fetch_one(&mut *conn)
    .await
    .and_then(|r| r.try_get(0))
    .map_err(|e| MigrateError::db("taking the applying lock", e))?;
    if got {
        return Ok(None);
    }
    let holder = holder(conn, APPLYING_KEY)
        .await
        .map(|h| format!("{h}, still running a migration of an earlier run"));
    on_wait(&Waiting {
        timeout,
        holder: holder.clone(),
    });
    let started = Instant::now();
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
    let sql = format!(
        "SET lock_timeout = {ms}; SELECT pg_catalog.pg_advisory_lock({APPLYING_KEY}); RESET lock_timeout"
    );
    let result = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await;
    let _ = sqlx::raw_sql("RESET lock_timeout").execute(&mut *conn).await;
    match result {
        Ok(_) => Ok(Some(started.elapsed())),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
            Err(MigrateError::LockTimeout {
                waited: started.elapsed(),
                holder,
            })
        }
        Err(e) => Err(MigrateError::db("waiting for the applying lock", e)),
    }
}

/// Releases the applying lock on `conn`; `false` when that failed (the connection must not go back to the
/// pool then: it might still hold the lock).
pub async fn release_applying(conn: &mut sqlx::PgConnection) -> bool {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "SELECT pg_catalog.pg_advisory_unlock({APPLYING_KEY})"
    )))
    .execute(conn)
    .await
    .is_ok()
}

async fn holder(conn: &mut sqlx::PgConnection, key: i64) -> Option<String> {
    let sql = format!(
        "SELECT a.pid::text || ' (' || coalesce(nullif(a.application_name, ''), 'unnamed') || ', ' || \
         coalesce(a.usename::text, '?') || ', ' || coalesce(a.client_addr::text, 'local') || ')' \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND ((l.classid::bigint << 32) | l.objid::bigint) = {key} LIMIT 1"
    );
    sqlx::raw_sql(AssertSqlSafe(sql))
        .fetch_optional(conn)
        .await
        .ok()
        .flatten()
        .and_then(|r| r.try_get::<String, _>(0).ok())
        .map(|s| format!("held by pid {s}"))
}
