//! The migration lock: one runner at a time per database.
//!
//! PostgreSQL: a session-level advisory lock taken on a connection of its own (never the one running
//! migrations, never inside a migration's transaction), held for the whole run and released at the end (or by
//! the server when the connection drops). A runner that finds it taken reports that it waits, then waits under
//! `lock_timeout`, so it gives up with [`MigrateError::LockTimeout`] instead of hanging. The history is read
//! only after the lock is held, so a runner that waited sees what the other one applied.
//!
//! SQLite has no advisory locks. There each migration runs in a `BEGIN IMMEDIATE` transaction (SQLite's
//! database-wide write lock, waited for up to the connection's busy timeout) that first re-checks the history
//! and skips a migration another runner recorded meanwhile. So no lock object exists for SQLite here.

use std::time::{Duration, Instant};

use sea_orm::sqlx::{self, AssertSqlSafe, Connection, Row};

use crate::error::MigrateError;

/// The advisory lock key: `collex` in ASCII. Advisory locks are per database, so one constant suffices.
pub const ADVISORY_KEY: i64 = 0x636f_6c6c_6578;

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
        let holder = holder(&mut conn).await;
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

async fn holder(conn: &mut sqlx::PgConnection) -> Option<String> {
    let sql = format!(
        "SELECT a.pid::text || ' (' || coalesce(nullif(a.application_name, ''), 'unnamed') || ', ' || \
         coalesce(a.usename::text, '?') || ', ' || coalesce(a.client_addr::text, 'local') || ')' \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND ((l.classid::bigint << 32) | l.objid::bigint) = {ADVISORY_KEY} LIMIT 1"
    );
    sqlx::raw_sql(AssertSqlSafe(sql))
        .fetch_optional(conn)
        .await
        .ok()
        .flatten()
        .and_then(|r| r.try_get::<String, _>(0).ok())
        .map(|s| format!("held by pid {s}"))
}
