//! SQLite: how migrations run there, and why.
//!
//! - SQLite has no advisory lock. Each transactional step runs in `BEGIN IMMEDIATE` (SQLite's database-wide
//!   write lock, waited for up to the connection's busy timeout) and first re-checks the history, skipping a
//!   migration another runner recorded meanwhile; then the file, the history row, `COMMIT`.
//! - When a transactional file fails, SQLite gives no position: the failing statement is the one after those
//!   the driver reported complete (nothing runs again).
//! - A `-- migrate:no-transaction` file runs statement by statement, its history row written first with
//!   `success = false` and flipped on success, as on PostgreSQL.
//! - Each step takes a connection from the pool for its duration.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use sea_orm::sqlx::{self, AssertSqlSafe, Row, SqlitePool};

use super::{Backend, Finish, SqlStep, elapsed_ms, run_without_transaction};
use crate::diagnosis::{self, DbFailure};
use crate::dialect::Dialect;
use crate::error::MigrateError;
use crate::ledger::{self, AppliedRow};
use crate::lock::Waiting;
use crate::plan::Direction;

/// The SQLite backend of one run.
pub(super) struct Lite {
    pool: SqlitePool,
}

impl Lite {
    pub(super) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

fn exec(sql: String) -> sqlx::RawSql {
    sqlx::raw_sql(AssertSqlSafe(sql))
}

/// How a transactional step ended before `COMMIT` or `ROLLBACK`.
enum Outcome {
    /// Ran and recorded (`true`), or skipped because another runner had done it (`false`).
    Done(bool),
    /// The file failed with this error after that many of its statements completed.
    FileFailed(usize, DbFailure),
}

#[async_trait]
impl Backend for Lite {
    async fn lock(
        &mut self,
        _timeout: Duration,
        _on_wait: &(dyn for<'w> Fn(&'w Waiting) + Send + Sync),
    ) -> Result<Option<Duration>, MigrateError> {
        Ok(None)
    }

    async fn unlock(&mut self) {}

    async fn history(&mut self, create: bool) -> Result<Vec<AppliedRow>, MigrateError> {
        let exists = sqlx::raw_sql(ledger::SQLITE_EXISTS)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| MigrateError::db("reading the migration history", e))?
            .is_some();
        if !exists {
            if create {
                exec(ledger::create_sql(Dialect::Sqlite, ledger::SQLITE_TABLE))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| MigrateError::db("creating the history table", e))?;
            }
            return Ok(Vec::new());
        }
        let rows = exec(ledger::select_sql(Dialect::Sqlite, ledger::SQLITE_TABLE))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| MigrateError::db("reading the migration history", e))?;
        ledger::decode(&rows)
    }

    async fn run_sql(&mut self, step: SqlStep<'_>) -> Result<bool, MigrateError> {
        let SqlStep {
            version,
            file,
            finish,
            direction,
        } = step;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| MigrateError::db("acquiring a connection", e))?;
        let started = Instant::now();
        if file.no_transaction {
            let how = (Dialect::Sqlite, ledger::SQLITE_TABLE);
            return run_without_transaction::<sqlx::Sqlite>(&mut conn, how, step).await;
        }

        exec("BEGIN IMMEDIATE".to_owned())
            .execute(&mut *conn)
            .await
            .map_err(|e| MigrateError::db("starting a transaction", e))?;
        let result: Result<Outcome, MigrateError> = async {
            let present = exec(ledger::is_recorded(ledger::SQLITE_TABLE, version))
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| MigrateError::db("re-reading the migration history", e))?
                .is_some();
            // Another runner applied (or rolled back) this one since our history read.
            if present != (direction == Direction::Down) {
                return Ok(Outcome::Done(false));
            }
            if let Err((completed, e)) =
                diagnosis::run_counted::<sqlx::Sqlite>(&mut conn, file.sql.clone()).await
            {
                return Ok(Outcome::FileFailed(completed, DbFailure::from_sqlx(e)));
            }
            let record_sql = match finish {
                Finish::Insert(r) => ledger::insert(
                    Dialect::Sqlite,
                    ledger::SQLITE_TABLE,
                    r,
                    &elapsed_ms(started).to_string(),
                ),
                Finish::Delete => ledger::delete(ledger::SQLITE_TABLE, version),
            };
            exec(record_sql)
                .execute(&mut *conn)
                .await
                .map_err(|e| MigrateError::db("recording the migration", e))?;
            Ok(Outcome::Done(true))
        }
        .await;
        match result {
            Ok(Outcome::Done(ran)) => {
                let end = if ran { "COMMIT" } else { "ROLLBACK" };
                exec(end.to_owned())
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| MigrateError::db("committing the migration", e))?;
                Ok(ran)
            }
            Ok(Outcome::FileFailed(completed, failure)) => {
                let _ = exec("ROLLBACK".to_owned()).execute(&mut *conn).await;
                Err(diagnosis::failed_after(version, file, completed, failure))
            }
            Err(err) => {
                let _ = exec("ROLLBACK".to_owned()).execute(&mut *conn).await;
                Err(err)
            }
        }
    }

    async fn exec(&mut self, sql: String, context: &'static str) -> Result<(), MigrateError> {
        exec(sql)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| MigrateError::db(context, e))
    }

    async fn release(&mut self) {}

    fn rechecks_history(&self) -> bool {
        true
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn table(&self) -> &str {
        ledger::SQLITE_TABLE
    }

    async fn drop_everything(&mut self) -> Result<(), MigrateError> {
        let err = |e| MigrateError::db("dropping the schema's objects", e);
        let mut conn = self.pool.acquire().await.map_err(err)?;
        let rows = sqlx::raw_sql(
            "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?;
        let mut sql = String::from("PRAGMA foreign_keys = OFF;\n");
        for r in rows {
            let kind: String = r.try_get(0).map_err(err)?;
            let name: String = r.try_get(1).map_err(err)?;
            let kw = if kind == "view" { "VIEW" } else { "TABLE" };
            sql.push_str(&format!(
                "DROP {kw} IF EXISTS \"{}\";\n",
                name.replace('"', "\"\"")
            ));
        }
        sql.push_str("PRAGMA foreign_keys = ON;");
        exec(sql).execute(&mut *conn).await.map(|_| ()).map_err(err)
    }
}
