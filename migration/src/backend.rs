//! Execution: the small trait each database implements ([`Backend`]), so the runner ([`crate::runner`])
//! orchestrates once and never asks which database it talks to.
//!
//! A backend owns the connections of one run: the one that applies migrations (held across consecutive steps)
//! and the lock's. It reads and creates the history, runs one SQL file and records it in the same
//! transaction, runs bookkeeping statements, takes and releases the migration lock, and drops every object
//! for `fresh`. [`choose::for_connection`] picks the backend of a SeaORM connection: the only place that
//! matches on the database. Rust migrations run through SeaORM the same way on both ([`run_rust`]).
//!
//! What each backend does, and why, is in [`postgres`] and [`sqlite`]. What to run, in which order, and what
//! a run reports are not this module's business.

pub(crate) mod choose;
mod postgres;
mod sqlite;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use sea_orm::sqlx::{self, AssertSqlSafe};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use sea_orm_migration::SchemaManager;

use crate::diagnosis;
use crate::dialect::Dialect;
use crate::error::MigrateError;
use crate::ledger::{AppliedRow, Record};
use crate::lock::Waiting;
use crate::plan::Direction;
use crate::source::{Migration, RustMigration, SqlFile};

/// What records a step in the history.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Finish<'a> {
    /// Applying: insert this row.
    Insert(&'a Record<'a>),
    /// Rolling back: delete the version's row.
    Delete,
}

/// One SQL file to run and record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SqlStep<'a> {
    pub version: u64,
    pub file: &'a SqlFile,
    pub finish: Finish<'a>,
    pub direction: Direction,
}

/// One database's way of running migrations. Every method runs on the connections of this run.
#[async_trait]
pub(crate) trait Backend: Send {
    /// Takes the migration lock, calling `on_wait` once if another runner holds it; `Some(waited)` when it
    /// had to wait. A backend without a lock returns `None` at once (SQLite serialises in each transaction).
    async fn lock(
        &mut self,
        timeout: Duration,
        on_wait: &(dyn for<'w> Fn(&'w Waiting) + Send + Sync),
    ) -> Result<Option<Duration>, MigrateError>;

    /// Releases the lock, if one was taken.
    async fn unlock(&mut self);

    /// The history in version order; without the table empty, and with `create` the table is created.
    async fn history(&mut self, create: bool) -> Result<Vec<AppliedRow>, MigrateError>;

    /// Runs one SQL file and records it. `false` when another runner had already done it.
    async fn run_sql(&mut self, step: SqlStep<'_>) -> Result<bool, MigrateError>;

    /// Runs one bookkeeping statement (history edits) outside any migration.
    async fn exec(&mut self, sql: String, context: &'static str) -> Result<(), MigrateError>;

    /// Lets go of the connection held across steps, so SeaORM can take it (a Rust migration; the pool may
    /// have a single connection).
    async fn release(&mut self);

    /// Whether a migration's transaction must re-check the history first, because no lock keeps another
    /// runner out meanwhile.
    fn rechecks_history(&self) -> bool;

    /// The SQL dialect (for the history rows of Rust migrations, written through SeaORM).
    fn dialect(&self) -> Dialect;

    /// The history table's name, schema-qualified once the lock is held (a migration may change
    /// `search_path`).
    fn table(&self) -> &str;

    /// Drops every table, view, sequence, type and function of the current schema, history included.
    async fn drop_everything(&mut self) -> Result<(), MigrateError>;
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// A `-- migrate:no-transaction` file on `conn`, the same on every database: the history row first with
/// `success = false` (applying), then the statements one by one, then the row flipped (or deleted, rolling
/// back); a run that stops part-way stays visible as failed.
async fn run_without_transaction<DB>(
    conn: &mut DB::Connection,
    (dialect, t): (Dialect, &str),
    step: SqlStep<'_>,
) -> Result<bool, MigrateError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let SqlStep {
        version,
        file,
        finish,
        ..
    } = step;
    let exec = |sql: String| sqlx::raw_sql(AssertSqlSafe(sql));
    let started = Instant::now();
    if let Finish::Insert(r) = finish {
        let pending = Record { success: false, ..*r };
        exec(crate::ledger::insert(dialect, t, &pending, "0"))
            .execute(&mut *conn)
            .await
            .map_err(|e| MigrateError::db("recording a no-transaction migration", e))?;
    }
    for s in &file.statements {
        if let Err(e) = exec(s.text(&file.sql).to_owned()).execute(&mut *conn).await {
            return Err(diagnosis::failed(
                version,
                file,
                Some(*s),
                diagnosis::DbFailure::from_sqlx(e),
                s.start,
            ));
        }
    }
    let done = match finish {
        Finish::Insert(_) => crate::ledger::mark_success(t, version, elapsed_ms(started)),
        Finish::Delete => crate::ledger::delete(t, version),
    };
    exec(done)
        .execute(&mut *conn)
        .await
        .map_err(|e| MigrateError::db("recording the migration", e))?;
    Ok(true)
}

/// Runs one Rust migration in a SeaORM transaction (unless it opts out) and records it. The caller has
/// [released](Backend::release) the backend's held connection and passes its [`Backend::dialect`],
/// [`Backend::rechecks_history`] and [`Backend::table`]. `false` when another runner had already done it.
pub(crate) async fn run_rust(
    db: &DatabaseConnection,
    (dialect, rechecks_history, t): (Dialect, bool, &str),
    m: &Migration,
    r: &RustMigration,
    direction: Direction,
    record: &Record<'_>,
) -> Result<bool, MigrateError> {
    let fail = |e| diagnosis::rust_failed(m.version, m.label(), e);
    let started = Instant::now();
    let record_sql = |ms: i64| match direction {
        Direction::Down => crate::ledger::delete(t, m.version),
        Direction::Up => crate::ledger::insert(dialect, t, record, &ms.to_string()),
    };
    if r.migration.use_transaction() == Some(false) {
        let manager = SchemaManager::new(db);
        match direction {
            Direction::Up => r.migration.up(&manager).await.map_err(fail)?,
            Direction::Down => r.migration.down(&manager).await.map_err(fail)?,
        }
        db.execute_unprepared(&record_sql(elapsed_ms(started)))
            .await
            .map_err(|e| MigrateError::db("recording the migration", e))?;
        return Ok(true);
    }
    let txn = db
        .begin()
        .await
        .map_err(|e| MigrateError::db("starting a transaction", e))?;
    if rechecks_history {
        let present = txn
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                crate::ledger::is_recorded(t, m.version),
            ))
            .await
            .map_err(|e| MigrateError::db("re-reading the migration history", e))?
            .is_some();
        if present != (direction == Direction::Down) {
            let _ = txn.rollback().await;
            return Ok(false);
        }
    }
    {
        let manager = SchemaManager::new(&txn);
        match direction {
            Direction::Up => r.migration.up(&manager).await.map_err(fail)?,
            Direction::Down => r.migration.down(&manager).await.map_err(fail)?,
        }
    }
    txn.execute_unprepared(&record_sql(elapsed_ms(started)))
        .await
        .map_err(|e| MigrateError::db("recording the migration", e))?;
    txn.commit().await.map_err(fail)?;
    Ok(true)
}
