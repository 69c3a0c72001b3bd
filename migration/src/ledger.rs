//! The runner's own history table, `collex_migrations`: one row per applied migration with its checksum, when,
//! how long, who applied it, and whether it succeeded.
//!
//! Reads never write: without the table, everything is pending. The table is created only by commands that
//! change the database, under the migration lock. The SQL that records a migration is built here and sent by
//! the migrator in the same round trip (and transaction) as the migration itself.

use std::sync::OnceLock;

use sea_orm::sqlx::{self, AssertSqlSafe, Row};
use serde::Serialize;

use crate::error::MigrateError;

/// Name of the history table.
pub const TABLE: &str = "collex_migrations";

/// One row of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedRow {
    /// The version.
    pub version: u64,
    /// The name when it was applied.
    pub name: String,
    /// `sql` or `rust`.
    pub kind: String,
    /// Lower-case hex SHA-256 recorded when it was applied.
    pub checksum: String,
    /// When it was applied (UTC, RFC 3339).
    pub applied_at: String,
    /// How long it took, in milliseconds.
    pub execution_ms: i64,
    /// `database user@host name` of the runner.
    pub applied_by: String,
    /// `false` for a no-transaction migration that stopped part-way.
    pub success: bool,
}

/// The pool a migrator works with, taken from the SeaORM connection.
#[derive(Clone)]
pub(crate) enum Pool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Pool {
    pub(crate) fn from_connection(db: &sea_orm::DatabaseConnection) -> Result<Self, MigrateError> {
        match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => Ok(Self::Postgres(db.get_postgres_connection_pool().clone())),
            sea_orm::DbBackend::Sqlite => Ok(Self::Sqlite(db.get_sqlite_connection_pool().clone())),
            other => Err(MigrateError::UnsupportedBackend(format!("{other:?}"))),
        }
    }
}

const PG_CREATE: &str = "CREATE TABLE IF NOT EXISTS collex_migrations (
    version bigint PRIMARY KEY,
    name text NOT NULL,
    kind text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    execution_ms bigint NOT NULL,
    applied_by text NOT NULL,
    success boolean NOT NULL
)";

const SQLITE_CREATE: &str = "CREATE TABLE IF NOT EXISTS collex_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    execution_ms INTEGER NOT NULL,
    applied_by TEXT NOT NULL,
    success INTEGER NOT NULL
)";

// Simple-protocol text results: every column is cast to a type whose text form sqlx decodes.
const PG_SELECT: &str = "SELECT version, name, kind, checksum, \
    to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS applied_at, \
    execution_ms, applied_by, success FROM collex_migrations ORDER BY version";

const SQLITE_SELECT: &str = "SELECT version, name, kind, checksum, applied_at, execution_ms, applied_by, success \
    FROM collex_migrations ORDER BY version";

/// Reads the history in one query. Without the table: empty, and when `create`, the table is created.
pub(crate) async fn read(pool: &Pool, create: bool) -> Result<Vec<AppliedRow>, MigrateError> {
    match pool {
        Pool::Postgres(pg) => {
            let rows = match sqlx::raw_sql(PG_SELECT).fetch_all(pg).await {
                Ok(rows) => rows,
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => {
                    if create {
                        sqlx::raw_sql(PG_CREATE)
                            .execute(pg)
                            .await
                            .map_err(|e| MigrateError::db("creating the history table", e))?;
                    }
                    return Ok(Vec::new());
                }
                Err(e) => return Err(MigrateError::db("reading the migration history", e)),
            };
            rows.iter()
                .map(|r| {
                    Ok(AppliedRow {
                        version: u64::try_from(r.try_get::<i64, _>(0)?).unwrap_or(0),
                        name: r.try_get(1)?,
                        kind: r.try_get(2)?,
                        checksum: r.try_get(3)?,
                        applied_at: r.try_get(4)?,
                        execution_ms: r.try_get(5)?,
                        applied_by: r.try_get(6)?,
                        success: r.try_get(7)?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(|e| MigrateError::db("decoding the migration history", e))
        }
        Pool::Sqlite(lite) => {
            let exists = sqlx::raw_sql(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'collex_migrations'",
            )
            .fetch_optional(lite)
            .await
            .map_err(|e| MigrateError::db("reading the migration history", e))?
            .is_some();
            if !exists {
                if create {
                    sqlx::raw_sql(SQLITE_CREATE)
                        .execute(lite)
                        .await
                        .map_err(|e| MigrateError::db("creating the history table", e))?;
                }
                return Ok(Vec::new());
            }
            let rows = sqlx::raw_sql(SQLITE_SELECT)
                .fetch_all(lite)
                .await
                .map_err(|e| MigrateError::db("reading the migration history", e))?;
            rows.iter()
                .map(|r| {
                    Ok(AppliedRow {
                        version: u64::try_from(r.try_get::<i64, _>(0)?).unwrap_or(0),
                        name: r.try_get(1)?,
                        kind: r.try_get(2)?,
                        checksum: r.try_get(3)?,
                        applied_at: r.try_get(4)?,
                        execution_ms: r.try_get(5)?,
                        applied_by: r.try_get(6)?,
                        success: r.try_get(7)?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(|e| MigrateError::db("decoding the migration history", e))
        }
    }
}

/// A SQL string literal (standard-conforming strings).
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The host name of this machine, read once.
pub fn host_name() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| std::env::var("COMPUTERNAME").ok())
            .unwrap_or_else(|| "unknown-host".to_owned())
    })
}

/// What a history row is written from.
pub(crate) struct Record<'a> {
    pub version: u64,
    pub name: &'a str,
    pub kind: &'a str,
    pub checksum: &'a str,
    pub success: bool,
}

/// PostgreSQL `INSERT` of a row. `execution_ms` is an SQL expression, so the duration can be measured by the
/// server inside the same round trip (`clock_timestamp() - now()` is the time since the transaction began).
pub(crate) fn pg_insert(r: &Record<'_>, execution_ms: &str) -> String {
    format!(
        "INSERT INTO collex_migrations (version, name, kind, checksum, execution_ms, applied_by, success) \
         VALUES ({}, {}, {}, {}, {execution_ms}, current_user || '@' || {}, {})",
        r.version,
        quote(r.name),
        quote(r.kind),
        quote(r.checksum),
        quote(host_name()),
        r.success
    )
}

/// The server-side duration of the current transaction so far, in milliseconds.
pub(crate) const PG_ELAPSED_MS: &str = "(extract(epoch FROM clock_timestamp() - now()) * 1000)::bigint";

/// SQLite `INSERT` of a row; SQLite has no database user, so the OS user is recorded.
pub(crate) fn sqlite_insert(r: &Record<'_>, execution_ms: i64) -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!(
        "INSERT INTO collex_migrations (version, name, kind, checksum, execution_ms, applied_by, success) \
         VALUES ({}, {}, {}, {}, {execution_ms}, {}, {})",
        r.version,
        quote(r.name),
        quote(r.kind),
        quote(r.checksum),
        quote(&format!("{user}@{}", host_name())),
        i32::from(r.success)
    )
}

/// Removes the row of `version`.
pub(crate) fn delete(version: u64) -> String {
    format!("DELETE FROM collex_migrations WHERE version = {version}")
}

/// Marks a no-transaction migration as finished.
pub(crate) fn mark_success(version: u64, execution_ms: i64) -> String {
    format!(
        "UPDATE collex_migrations SET success = true, execution_ms = {execution_ms} WHERE version = {version}"
    )
}

/// Replaces the recorded checksum of `version`.
pub(crate) fn set_checksum(version: u64, checksum: &str) -> String {
    format!(
        "UPDATE collex_migrations SET checksum = {} WHERE version = {version}",
        quote(checksum)
    )
}

/// Executes one statement outside any migration.
pub(crate) async fn exec(pool: &Pool, sql: String, context: &'static str) -> Result<(), MigrateError> {
    let r = match pool {
        Pool::Postgres(pg) => sqlx::raw_sql(AssertSqlSafe(sql)).execute(pg).await.map(|_| ()),
        Pool::Sqlite(lite) => sqlx::raw_sql(AssertSqlSafe(sql)).execute(lite).await.map(|_| ()),
    };
    r.map_err(|e| MigrateError::db(context, e))
}
