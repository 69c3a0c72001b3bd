//! The runner's own history table, `collex_migrations`: one row per applied migration with its checksum, when,
//! how long, who applied it, and whether it succeeded.
//!
//! Owns the table's definition, its rows ([`AppliedRow`], `Record`) and the SQL that reads and writes it, in
//! each dialect. Sending that SQL is the backends' (`crate::backend`): they send a migration's history row in
//! the same round trip (and transaction) as the migration itself. Reads never write: without the table,
//! everything is pending; the table is created only by commands that change the database, under the lock.

use std::sync::OnceLock;

use sea_orm::sqlx::{self, Row};
use serde::Serialize;

use crate::dialect::Dialect;
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

// `{t}` is the table's qualified name (see [`qualified`]).
const PG_CREATE: &str = "CREATE TABLE IF NOT EXISTS {t} (
    version bigint PRIMARY KEY,
    name text NOT NULL,
    kind text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    execution_ms bigint NOT NULL,
    applied_by text NOT NULL,
    success boolean NOT NULL
)";

const SQLITE_CREATE: &str = "CREATE TABLE IF NOT EXISTS {t} (
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
    execution_ms, applied_by, success FROM {t} ORDER BY version";

const SQLITE_SELECT: &str = "SELECT version, name, kind, checksum, applied_at, execution_ms, applied_by, success \
    FROM {t} ORDER BY version";

/// SQLite: whether the table exists (PostgreSQL reads and treats SQLSTATE 42P01 as "no history").
pub(crate) const SQLITE_EXISTS: &str =
    "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'collex_migrations'";

/// PostgreSQL's SQLSTATE for a missing table: the history table does not exist yet.
pub(crate) const PG_UNDEFINED_TABLE: &str = "42P01";

/// The history table's name qualified with `schema` (already quoted as an identifier where needed), so a
/// migration that changes `search_path` cannot send the runner's own statements to another table. SQLite's
/// is always in `main`.
pub(crate) fn qualified(schema: &str) -> String {
    format!("{schema}.{TABLE}")
}

/// The history table of SQLite, qualified.
pub(crate) const SQLITE_TABLE: &str = "main.collex_migrations";

/// `CREATE TABLE IF NOT EXISTS` of the history `t` in `dialect`.
pub(crate) fn create_sql(dialect: Dialect, t: &str) -> String {
    match dialect {
        Dialect::Postgres => PG_CREATE,
        Dialect::Sqlite => SQLITE_CREATE,
    }
    .replace("{t}", t)
}

/// The history `t` in version order, in `dialect`; rows decode with [`decode`].
pub(crate) fn select_sql(dialect: Dialect, t: &str) -> String {
    match dialect {
        Dialect::Postgres => PG_SELECT,
        Dialect::Sqlite => SQLITE_SELECT,
    }
    .replace("{t}", t)
}

/// The rows of [`select_sql`].
pub(crate) fn decode<R>(rows: &[R]) -> Result<Vec<AppliedRow>, MigrateError>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    bool: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let row = |r: &R| -> Result<AppliedRow, sqlx::Error> {
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
    };
    rows.iter()
        .map(row)
        .collect::<Result<_, _>>()
        .map_err(|e| MigrateError::db("decoding the migration history", e))
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

/// The OS user running this process: `USER`, `LOGNAME` or `USERNAME`, else (a container, cron, systemd
/// unit without them) the name `/etc/passwd` gives the process's uid, else `uid N`.
pub fn os_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(user_from_uid)
        .unwrap_or_else(|| "unknown".to_owned())
}

fn user_from_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_owned())
    });
    Some(name.unwrap_or_else(|| format!("uid {uid}")))
}

/// What a history row is written from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    pub version: u64,
    pub name: &'a str,
    pub kind: &'a str,
    pub checksum: &'a str,
    pub success: bool,
}

/// The `INSERT` of a row in `dialect`. `execution_ms` is an SQL expression, so on PostgreSQL the duration can
/// be measured by the server inside the same round trip ([`PG_ELAPSED_MS`]). PostgreSQL records the database
/// user, SQLite (which has none) the OS user.
pub(crate) fn insert(dialect: Dialect, t: &str, r: &Record<'_>, execution_ms: &str) -> String {
    let applied_by = match dialect {
        Dialect::Postgres => format!("current_user || '@' || {}", quote(host_name())),
        Dialect::Sqlite => quote(&format!("{}@{}", os_user(), host_name())),
    };
    let success = match dialect {
        Dialect::Postgres => r.success.to_string(),
        Dialect::Sqlite => i32::from(r.success).to_string(),
    };
    format!(
        "INSERT INTO {t} (version, name, kind, checksum, execution_ms, applied_by, success) \
         VALUES ({}, {}, {}, {}, {execution_ms}, {applied_by}, {success})",
        r.version,
        quote(r.name),
        quote(r.kind),
        quote(r.checksum),
    )
}

/// The server-side duration of the current transaction so far, in milliseconds.
pub(crate) const PG_ELAPSED_MS: &str =
    "(extract(epoch FROM pg_catalog.clock_timestamp() - pg_catalog.now()) * 1000)::bigint";

/// Whether `version` is recorded: a migration's transaction re-checks it where no lock serialises runners.
pub(crate) fn is_recorded(t: &str, version: u64) -> String {
    format!("SELECT 1 FROM {t} WHERE version = {version}")
}

/// Removes the row of `version`.
pub(crate) fn delete(t: &str, version: u64) -> String {
    format!("DELETE FROM {t} WHERE version = {version}")
}

/// Marks a no-transaction migration as finished.
pub(crate) fn mark_success(t: &str, version: u64, execution_ms: i64) -> String {
    format!("UPDATE {t} SET success = true, execution_ms = {execution_ms} WHERE version = {version}")
}

/// Replaces the recorded checksum of `version`.
pub(crate) fn set_checksum(t: &str, version: u64, checksum: &str) -> String {
    format!(
        "UPDATE {t} SET checksum = {} WHERE version = {version}",
        quote(checksum)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record<'static> {
        Record {
            version: 7,
            name: "it's",
            kind: "sql",
            checksum: "ab",
            success: false,
        }
    }

    #[test]
    fn an_insert_quotes_text_and_writes_booleans_as_each_dialect_reads_them() {
        let pg = insert(
            Dialect::Postgres,
            "public.collex_migrations",
            &record(),
            PG_ELAPSED_MS,
        );
        assert!(pg.starts_with("INSERT INTO public.collex_migrations ("), "{pg}");
        assert!(pg.contains("VALUES (7, 'it''s', 'sql', 'ab', (extract"), "{pg}");
        assert!(pg.contains(", current_user || '@' || '"), "{pg}");
        assert!(pg.ends_with(", false)"), "{pg}");
        let lite = insert(Dialect::Sqlite, SQLITE_TABLE, &record(), "3");
        assert!(lite.contains("VALUES (7, 'it''s', 'sql', 'ab', 3, '"), "{lite}");
        assert!(lite.ends_with(", 0)"), "{lite}");
    }
}
