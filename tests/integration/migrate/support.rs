//! Helpers for the migration tests: temporary migration directories, the built `migration` binary, and
//! catalog queries.

use std::ops::Deref;
use std::path::Path;
use std::process::Output;

use collex_tests::{TempDir, workspace_bin};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

/// A temporary directory of migration files, removed on drop; [`TempDir`]'s `path` and `write` through
/// `Deref`.
pub struct MigDir(TempDir);

impl Deref for MigDir {
    type Target = TempDir;

    fn deref(&self) -> &TempDir {
        &self.0
    }
}

impl MigDir {
    /// An empty directory.
    pub fn new() -> Self {
        Self(TempDir::new())
    }

    /// Writes `NNN_<name>.sql` and `NNN_rollback.sql` with the spec's header.
    pub fn pair(&self, version: u32, name: &str, up: &str, down: &str) {
        let header = |kind: &str| {
            format!(
                "-- {kind}: {name}\n-- Version: {version:03}\n-- Description: {name}\n-- Created: 2026-01-01T00:00:00Z\n\n"
            )
        };
        self.write(
            &format!("{version:03}_{name}.sql"),
            format!("{}{up}\n", header("Migration")),
        );
        self.write(
            &format!("{version:03}_rollback.sql"),
            format!("{}{down}\n", header("Rollback Migration")),
        );
    }

    /// Writes `count` simple table migrations `t1..tN` starting at version 1.
    pub fn tables(&self, count: u32) {
        for v in 1..=count {
            self.pair(
                v,
                &format!("create_t{v}"),
                &format!("CREATE TABLE t{v} (id bigserial PRIMARY KEY, name text NOT NULL DEFAULT 'x');"),
                &format!("DROP TABLE t{v};"),
            );
        }
    }
}

/// A `migration` command for `url` and `dir`, with every other database variable cleared.
pub fn command(url: &str, dir: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(workspace_bin("migration"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DB_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("DATABASE_URL", url)
        .env("DB_MIGRATE_PATH", dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// What one CLI run gave.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs the CLI to completion.
pub async fn run(url: &str, dir: &Path, args: &[&str]) -> Run {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        command(url, dir, args).output(),
    )
    .await
    .expect("migration CLI finished within 120 s")
    .expect("migration CLI started");
    out.into()
}

/// Runs one query returning a single text value (or NULL).
pub async fn text(db: &DatabaseConnection, sql: &str) -> Option<String> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await
        .expect("query runs")?;
    row.try_get_by_index::<Option<String>>(0).expect("a text column")
}

/// Versions recorded in the history (empty when the table does not exist).
pub async fn history(db: &DatabaseConnection) -> Vec<i64> {
    if text(db, "SELECT to_regclass('collex_migrations')::text")
        .await
        .is_none()
    {
        return Vec::new();
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT version FROM collex_migrations ORDER BY version".to_owned(),
        ))
        .await
        .expect("history query");
    rows.iter()
        .map(|r| r.try_get_by_index::<i64>(0).expect("version"))
        .collect()
}

/// Tables of the `public` schema, sorted.
pub async fn tables(db: &DatabaseConnection) -> Vec<String> {
    text(
        db,
        "SELECT string_agg(table_name::text, ',' ORDER BY table_name) FROM information_schema.tables \
         WHERE table_schema = 'public'",
    )
    .await
    .map(|s| s.split(',').map(str::to_owned).collect())
    .unwrap_or_default()
}

/// Whether a relation exists.
pub async fn exists(db: &DatabaseConnection, relation: &str) -> bool {
    text(db, &format!("SELECT to_regclass('{relation}')::text"))
        .await
        .is_some()
}

/// A text snapshot of the `public` schema: tables, columns with types, nullability and defaults, indexes with
/// their predicates, constraints, enum and domain types.
pub async fn catalog(db: &DatabaseConnection) -> String {
    text(
        db,
        r#"SELECT string_agg(x, E'\n' ORDER BY x) FROM (
            SELECT 'table ' || table_name FROM information_schema.tables WHERE table_schema = 'public'
            UNION ALL
            SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || udt_name
                   || ' nullable=' || is_nullable || ' default=' || coalesce(column_default, '-')
              FROM information_schema.columns WHERE table_schema = 'public'
            UNION ALL
            SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
            UNION ALL
            SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
              FROM pg_constraint WHERE connamespace = 'public'::regnamespace
            UNION ALL
            SELECT 'type ' || typname || ' ' || typtype::text FROM pg_type
              WHERE typnamespace = 'public'::regnamespace AND typtype IN ('e', 'd')
            UNION ALL
            SELECT 'enum ' || t.typname || ' ' || e.enumlabel || ' ' || e.enumsortorder
              FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid WHERE t.typnamespace = 'public'::regnamespace
        ) s(x)"#,
    )
    .await
    .unwrap_or_default()
}
