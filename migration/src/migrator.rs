//! The [`Migrator`]: compares the plan ([`MigrationSet`]) with the history and runs `up`, `down`, `redo`,
//! `fresh`, `reset`, `accept-checksum`, their dry runs, and a read-only `status`.
//!
//! How a step runs, and why:
//! - PostgreSQL, transactional file: the file text and the history `INSERT` go to the server as ONE simple
//!   query. PostgreSQL runs a multi-statement query as one implicit transaction, so the step is atomic and costs
//!   one round trip, with no prepared statements (the benchmark compares against `psql`).
//! - SQLite, transactional file: `BEGIN IMMEDIATE`, re-check the history (SQLite has no advisory lock, see
//!   [`crate::lock`]), the file, the `INSERT`, `COMMIT`.
//! - `-- migrate:no-transaction` files: statements one by one, outside a transaction; a row with
//!   `success = false` is written first and flipped on success, so a run that stops part-way is visible.
//! - Rust migrations: in a SeaORM transaction (also on SQLite) unless `use_transaction()` says `Some(false)`.
//!
//! When a transactional file fails and the database gave no error position, the file is replayed statement by
//! statement inside a transaction that is rolled back, only to name the failing statement.
//!
//! Output is not printed here: progress goes to an optional [`Reporter`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::sqlx::{self, AssertSqlSafe, postgres::PgDatabaseError};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use sea_orm_migration::SchemaManager;
use serde::Serialize;

use crate::error::MigrateError;
use crate::ledger::{self, AppliedRow, Pool, Record};
use crate::lock::{PgLock, Waiting};
use crate::source::{Body, Migration, MigrationSet, RustMigration, SqlFile};
use crate::statements::{self, Statement};

/// Default time a runner waits for another runner's lock.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Knobs of a run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// How long to wait for the migration lock.
    pub lock_timeout: Duration,
    /// Let `up` continue although applied migrations have no file any more.
    pub ignore_missing: bool,
    /// Let `up` re-run a no-transaction migration recorded as failed (after a manual repair).
    pub retry_failed: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            ignore_missing: false,
            retry_failed: false,
        }
    }
}

impl Options {
    /// Sets the lock timeout.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Sets `ignore_missing`.
    pub fn ignore_missing(mut self, yes: bool) -> Self {
        self.ignore_missing = yes;
        self
    }

    /// Sets `retry_failed`.
    pub fn retry_failed(mut self, yes: bool) -> Self {
        self.retry_failed = yes;
        self
    }
}

/// Which way a run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Applying.
    Up,
    /// Rolling back.
    Down,
}

/// Progress of a run, for the CLI or a service log.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Another runner holds the lock; this one waits.
    WaitingForLock(&'a Waiting),
    /// The lock was taken after waiting.
    LockAcquired {
        /// How long it took.
        waited: Duration,
    },
    /// What is about to run, in order (`(version, label)`), printed before anything changes.
    Plan {
        /// Up or down.
        direction: Direction,
        /// The steps.
        steps: &'a [(u64, String)],
    },
    /// One step finished.
    Done {
        /// Up or down.
        direction: Direction,
        /// The version.
        version: u64,
        /// Its label.
        label: &'a str,
        /// Wall time of the step.
        elapsed: Duration,
    },
    /// `fresh` dropped every object of the schema.
    Dropped,
}

/// Receives [`Event`]s.
pub type Reporter = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// Whether a migration is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Recorded in the history.
    Applied,
    /// Not recorded yet.
    Pending,
}

/// Something wrong with an applied migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Problem {
    /// Its file changed after it was applied.
    Modified,
    /// Its file is gone.
    Missing,
    /// It stopped part-way (no-transaction migration).
    Failed,
}

impl Problem {
    /// Lower-case word used in text and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Modified => "modified",
            Self::Missing => "missing",
            Self::Failed => "failed",
        }
    }
}

/// One line of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusEntry {
    /// The version.
    pub version: u64,
    /// The name (from the file, else from the history).
    pub name: String,
    /// The file (or `rust:<name>`), `None` when missing.
    pub file: Option<String>,
    /// `sql` or `rust`.
    pub kind: String,
    /// Applied or pending.
    pub state: State,
    /// When it was applied.
    pub applied_at: Option<String>,
    /// How long it took, in milliseconds.
    pub execution_ms: Option<i64>,
    /// Who applied it.
    pub applied_by: Option<String>,
    /// Problems (empty when fine).
    pub problems: Vec<Problem>,
}

/// The result of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Every migration known to the files or the history, by version.
    pub migrations: Vec<StatusEntry>,
    /// How many are applied.
    pub applied: usize,
    /// How many are pending.
    pub pending: usize,
    /// How many have a problem.
    pub problems: usize,
}

/// One step a run performed.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Up or down.
    pub direction: Direction,
    /// The version.
    pub version: u64,
    /// The file or Rust migration.
    pub label: String,
    /// Wall time in milliseconds.
    pub elapsed_ms: u128,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// The steps, in the order they ran.
    pub steps: Vec<Step>,
}

/// How far `down` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownTarget {
    /// The latest `n` applied migrations.
    Steps(usize),
    /// Everything applied above this version (0: everything); the version itself stays.
    To(u64),
    /// This version and everything applied above it.
    Through(u64),
}

/// The migrator.
pub struct Migrator {
    set: MigrationSet,
    options: Options,
    reporter: Option<Reporter>,
}

impl std::fmt::Debug for Migrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrator")
            .field("migrations", &self.set.migrations().len())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Applies every pending migration of `dir` (plus `rust`) under the lock: what the service's auto-migrate
/// and tools call.
///
/// # Errors
/// Any [`MigrateError`]; nothing is applied when validation fails.
pub async fn apply_pending(
    db: &DatabaseConnection,
    dir: &Path,
    rust: Vec<RustMigration>,
    options: Options,
) -> Result<RunReport, MigrateError> {
    Migrator::new(MigrationSet::load_for(dir, rust, db.get_database_backend())?)
        .with_options(options)
        .up(db, None)
        .await
}

impl Migrator {
    /// A migrator for a validated plan.
    pub fn new(set: MigrationSet) -> Self {
        Self {
            set,
            options: Options::default(),
            reporter: None,
        }
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Sends progress to `reporter`.
    pub fn with_reporter(mut self, reporter: Reporter) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// The plan.
    pub fn set(&self) -> &MigrationSet {
        &self.set
    }

    fn report(&self, event: &Event<'_>) {
        if let Some(r) = &self.reporter {
            r(event);
        }
    }

    /// Every migration with its state and problems. Reads the history once and never writes.
    ///
    /// # Errors
    /// [`MigrateError::Database`] when the history cannot be read.
    pub async fn status(&self, db: &DatabaseConnection) -> Result<StatusReport, MigrateError> {
        let pool = Pool::from_connection(db)?;
        let history = ledger::read(&pool, false).await?;
        Ok(self.status_from(&history))
    }

    fn status_from(&self, history: &[AppliedRow]) -> StatusReport {
        let rows: BTreeMap<u64, &AppliedRow> = history.iter().map(|r| (r.version, r)).collect();
        let versions: BTreeSet<u64> = rows
            .keys()
            .copied()
            .chain(self.set.migrations().iter().map(|m| m.version))
            .collect();
        let mut migrations = Vec::with_capacity(versions.len());
        for v in versions {
            let m = self.set.get(v);
            let row = rows.get(&v).copied();
            let mut problems = Vec::new();
            if let Some(r) = row {
                match m {
                    None => problems.push(Problem::Missing),
                    Some(m) if m.checksum() != r.checksum => problems.push(Problem::Modified),
                    Some(_) => {}
                }
                if !r.success {
                    problems.push(Problem::Failed);
                }
            }
            migrations.push(StatusEntry {
                version: v,
                name: m.map_or_else(
                    || row.map(|r| r.name.clone()).unwrap_or_default(),
                    |m| m.name.clone(),
                ),
                file: m.map(Migration::label),
                kind: m.map_or_else(
                    || row.map(|r| r.kind.clone()).unwrap_or_default(),
                    |m| m.kind().to_owned(),
                ),
                state: if row.is_some() {
                    State::Applied
                } else {
                    State::Pending
                },
                applied_at: row.map(|r| r.applied_at.clone()),
                execution_ms: row.map(|r| r.execution_ms),
                applied_by: row.map(|r| r.applied_by.clone()),
                problems,
            });
        }
        StatusReport {
            applied: migrations.iter().filter(|e| e.state == State::Applied).count(),
            pending: migrations.iter().filter(|e| e.state == State::Pending).count(),
            problems: migrations.iter().filter(|e| !e.problems.is_empty()).count(),
            migrations,
        }
    }

    /// Applies pending migrations in version order (at most `limit`), under the lock.
    ///
    /// # Errors
    /// Validation errors (modified, missing, previously failed) before anything runs;
    /// [`MigrateError::Failed`] for the first migration that fails (those before it stay applied).
    pub async fn up(&self, db: &DatabaseConnection, limit: Option<usize>) -> Result<RunReport, MigrateError> {
        let pool = Pool::from_connection(db)?;
        let lock = self.lock(&pool).await?;
        let mut report = RunReport::default();
        let result = self.up_locked(db, &pool, limit, None, &mut report).await;
        release(lock).await;
        result.map(|()| report)
    }

    /// Rolls back applied migrations, newest first, under the lock.
    ///
    /// # Errors
    /// [`MigrateError::UnknownVersion`] or [`MigrateError::Irreversible`] before anything runs;
    /// [`MigrateError::Failed`] when a rollback fails.
    pub async fn down(&self, db: &DatabaseConnection, target: DownTarget) -> Result<RunReport, MigrateError> {
        let pool = Pool::from_connection(db)?;
        let lock = self.lock(&pool).await?;
        let mut report = RunReport::default();
        let result = self.down_locked(db, &pool, target, &mut report).await.map(|_| ());
        release(lock).await;
        result.map(|()| report)
    }

    /// Rolls back the latest migration and applies it again, under one lock.
    ///
    /// # Errors
    /// As [`Migrator::down`] and [`Migrator::up`].
    pub async fn redo(&self, db: &DatabaseConnection) -> Result<RunReport, MigrateError> {
        let pool = Pool::from_connection(db)?;
        let lock = self.lock(&pool).await?;
        let mut report = RunReport::default();
        let result = async {
            let undone = self
                .down_locked(db, &pool, DownTarget::Steps(1), &mut report)
                .await?;
            match undone.first() {
                Some(&v) => self.up_locked(db, &pool, Some(1), Some(v), &mut report).await,
                None => Ok(()),
            }
        }
        .await;
        release(lock).await;
        result.map(|()| report)
    }

    /// Rolls back every applied migration, newest first.
    ///
    /// # Errors
    /// As [`Migrator::down`].
    pub async fn reset(&self, db: &DatabaseConnection) -> Result<RunReport, MigrateError> {
        self.down(db, DownTarget::To(0)).await
    }

    /// Drops every table, view, sequence, type and function of the current schema (history included), then
    /// applies every migration, under one lock.
    ///
    /// # Errors
    /// As [`Migrator::up`]; [`MigrateError::Database`] when dropping fails (nothing is dropped then on
    /// PostgreSQL, where the drop is one transaction).
    pub async fn fresh(&self, db: &DatabaseConnection) -> Result<RunReport, MigrateError> {
        let pool = Pool::from_connection(db)?;
        let lock = self.lock(&pool).await?;
        let mut report = RunReport::default();
        let result = async {
            drop_everything(&pool).await?;
            self.report(&Event::Dropped);
            self.up_locked(db, &pool, None, None, &mut report).await
        }
        .await;
        release(lock).await;
        result.map(|()| report)
    }

    /// Records the current checksum of applied migration `version`, accepting a deliberate edit.
    ///
    /// # Errors
    /// [`MigrateError::UnknownVersion`] when `version` is not applied or has no file.
    pub async fn accept_checksum(&self, db: &DatabaseConnection, version: u64) -> Result<(), MigrateError> {
        let pool = Pool::from_connection(db)?;
        let lock = self.lock(&pool).await?;
        let result = async {
            let history = ledger::read(&pool, false).await?;
            if !history.iter().any(|r| r.version == version) {
                return Err(MigrateError::UnknownVersion {
                    version,
                    what: "is not applied: only an applied migration's checksum can be accepted",
                });
            }
            let m = self.set.get(version).ok_or(MigrateError::UnknownVersion {
                version,
                what: "has no migration file: there is no new checksum to accept",
            })?;
            ledger::exec(
                &pool,
                ledger::set_checksum(version, &m.checksum()),
                "accepting the checksum",
            )
            .await
        }
        .await;
        release(lock).await;
        result
    }

    /// The SQL `up` would run, in order, without changing anything (the history is only read).
    ///
    /// # Errors
    /// The same validation errors as [`Migrator::up`].
    pub async fn dry_run_up(
        &self,
        db: &DatabaseConnection,
        limit: Option<usize>,
    ) -> Result<String, MigrateError> {
        let pool = Pool::from_connection(db)?;
        let history = ledger::read(&pool, false).await?;
        let pending = self.pending(&history, limit, None)?;
        let mut out = String::new();
        for m in pending {
            match &m.body {
                Body::Sql { forward, .. } => script_part(&mut out, "up", m, forward),
                Body::Rust(_) => out.push_str(&format!(
                    "-- up {:03} {}: a Rust migration; its statements are built when it runs\n\n",
                    m.version,
                    m.label()
                )),
            }
        }
        Ok(out)
    }

    /// The SQL `down` would run, newest first, without changing anything.
    ///
    /// # Errors
    /// The same errors as [`Migrator::down`] before it runs anything.
    pub async fn dry_run_down(
        &self,
        db: &DatabaseConnection,
        target: DownTarget,
    ) -> Result<String, MigrateError> {
        let pool = Pool::from_connection(db)?;
        let history = ledger::read(&pool, false).await?;
        let targets = self.down_targets(&history, target)?;
        let mut out = String::new();
        for m in targets {
            match &m.body {
                Body::Sql {
                    rollback: Some(rollback),
                    ..
                } => script_part(&mut out, "down", m, rollback),
                _ => out.push_str(&format!(
                    "-- down {:03} {}: a Rust migration; its statements are built when it runs\n\n",
                    m.version,
                    m.label()
                )),
            }
        }
        Ok(out)
    }

    async fn lock(&self, pool: &Pool) -> Result<Option<PgLock>, MigrateError> {
        match pool {
            Pool::Postgres(pg) => {
                let (lock, waited) = PgLock::acquire(pg, self.options.lock_timeout, |w| {
                    self.report(&Event::WaitingForLock(w));
                })
                .await?;
                if let Some(waited) = waited {
                    self.report(&Event::LockAcquired { waited });
                }
                Ok(Some(lock))
            }
            Pool::Sqlite(_) => Ok(None),
        }
    }

    /// Checks the history against the plan and returns what `up` would apply.
    fn pending(
        &self,
        history: &[AppliedRow],
        limit: Option<usize>,
        up_to: Option<u64>,
    ) -> Result<Vec<&Migration>, MigrateError> {
        let mut errors = Vec::new();
        let mut applied = BTreeSet::new();
        for r in history {
            let m = self.set.get(r.version);
            if !r.success {
                // Not applied: with --retry-failed it runs again from scratch (edited file included).
                if !self.options.retry_failed {
                    errors.push(MigrateError::PreviouslyFailed {
                        version: r.version,
                        file: m.map_or_else(|| r.name.clone(), Migration::label),
                    });
                }
                continue;
            }
            match m {
                None if !self.options.ignore_missing => errors.push(MigrateError::MissingFile {
                    version: r.version,
                    name: r.name.clone(),
                }),
                Some(m) if m.checksum() != r.checksum => errors.push(MigrateError::ChecksumMismatch {
                    version: r.version,
                    file: m.label(),
                }),
                _ => {}
            }
            applied.insert(r.version);
        }
        MigrateError::from_many(errors)?;
        Ok(self
            .set
            .migrations()
            .iter()
            .filter(|m| !applied.contains(&m.version) && up_to.is_none_or(|u| m.version <= u))
            .take(limit.unwrap_or(usize::MAX))
            .collect())
    }

    async fn up_locked(
        &self,
        db: &DatabaseConnection,
        pool: &Pool,
        limit: Option<usize>,
        up_to: Option<u64>,
        report: &mut RunReport,
    ) -> Result<(), MigrateError> {
        let history = ledger::read(pool, true).await?;
        let pending = self.pending(&history, limit, up_to)?;
        if pending.is_empty() {
            return Ok(());
        }
        let steps: Vec<(u64, String)> = pending.iter().map(|m| (m.version, m.label())).collect();
        self.report(&Event::Plan {
            direction: Direction::Up,
            steps: &steps,
        });
        let failed: BTreeSet<u64> = history.iter().filter(|r| !r.success).map(|r| r.version).collect();
        let mut held = Held::default();
        for m in pending {
            let started = Instant::now();
            if failed.contains(&m.version) {
                // --retry-failed: the row of the earlier attempt goes; the migration runs again from scratch.
                held.exec(pool, ledger::delete(m.version), "clearing a failed history row")
                    .await?;
            }
            let record = Record {
                version: m.version,
                name: &m.name,
                kind: m.kind(),
                checksum: &m.checksum(),
                success: true,
            };
            let ran = match &m.body {
                Body::Sql { forward, .. } => {
                    run_sql(
                        pool,
                        &mut held,
                        m.version,
                        forward,
                        Finish::Insert(&record),
                        Direction::Up,
                    )
                    .await?
                }
                Body::Rust(r) => {
                    held.release();
                    run_rust(db, pool, m, r, Direction::Up, &record).await?
                }
            };
            if ran {
                self.done(report, Direction::Up, m, started);
            }
        }
        Ok(())
    }

    fn done(&self, report: &mut RunReport, direction: Direction, m: &Migration, started: Instant) {
        let elapsed = started.elapsed();
        let label = m.label();
        self.report(&Event::Done {
            direction,
            version: m.version,
            label: &label,
            elapsed,
        });
        report.steps.push(Step {
            direction,
            version: m.version,
            label,
            elapsed_ms: elapsed.as_millis(),
        });
    }

    fn down_targets(
        &self,
        history: &[AppliedRow],
        target: DownTarget,
    ) -> Result<Vec<&Migration>, MigrateError> {
        let mut applied: Vec<&AppliedRow> = history.iter().collect();
        applied.sort_by_key(|r| std::cmp::Reverse(r.version));
        let chosen: Vec<&AppliedRow> = match target {
            DownTarget::Steps(n) => applied.into_iter().take(n).collect(),
            DownTarget::To(v) => {
                if v != 0 && self.set.get(v).is_none() && !applied.iter().any(|r| r.version == v) {
                    return Err(MigrateError::UnknownVersion {
                        version: v,
                        what: "names no migration: expected 0 or the version of a migration",
                    });
                }
                applied.into_iter().filter(|r| r.version > v).collect()
            }
            DownTarget::Through(v) => {
                if !applied.iter().any(|r| r.version == v) {
                    return Err(MigrateError::UnknownVersion {
                        version: v,
                        what: "is not applied: expected the version of an applied migration",
                    });
                }
                applied.into_iter().filter(|r| r.version >= v).collect()
            }
        };
        let mut errors = Vec::new();
        let mut out = Vec::with_capacity(chosen.len());
        for r in chosen {
            match self.set.get(r.version) {
                None => errors.push(MigrateError::Irreversible {
                    version: r.version,
                    file: r.name.clone(),
                    reason: "its migration file is missing".to_owned(),
                }),
                Some(
                    m @ Migration {
                        body: Body::Sql { rollback: None, .. },
                        ..
                    },
                ) => errors.push(MigrateError::Irreversible {
                    version: r.version,
                    file: m.label(),
                    reason: format!(
                        "there is no {:0w$}_rollback.sql file",
                        r.version,
                        w = self.set.digits()
                    ),
                }),
                Some(m) => out.push(m),
            }
        }
        MigrateError::from_many(errors)?;
        Ok(out)
    }

    /// Returns the versions rolled back.
    async fn down_locked(
        &self,
        db: &DatabaseConnection,
        pool: &Pool,
        target: DownTarget,
        report: &mut RunReport,
    ) -> Result<Vec<u64>, MigrateError> {
        let history = ledger::read(pool, false).await?;
        let targets = self.down_targets(&history, target)?;
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let steps: Vec<(u64, String)> = targets.iter().map(|m| (m.version, m.label())).collect();
        self.report(&Event::Plan {
            direction: Direction::Down,
            steps: &steps,
        });
        let mut undone = Vec::new();
        let mut held = Held::default();
        for m in targets {
            let started = Instant::now();
            let record = Record {
                version: m.version,
                name: &m.name,
                kind: m.kind(),
                checksum: &m.checksum(),
                success: true,
            };
            let ran = match &m.body {
                Body::Sql {
                    rollback: Some(file), ..
                } => run_sql(pool, &mut held, m.version, file, Finish::Delete, Direction::Down).await?,
                Body::Rust(r) => {
                    held.release();
                    run_rust(db, pool, m, r, Direction::Down, &record).await?
                }
                Body::Sql { rollback: None, .. } => false,
            };
            if ran {
                undone.push(m.version);
                self.done(report, Direction::Down, m, started);
            }
        }
        Ok(undone)
    }
}

async fn release(lock: Option<PgLock>) {
    if let Some(l) = lock {
        l.release().await;
    }
}

fn script_part(out: &mut String, dir: &str, m: &Migration, file: &SqlFile) {
    let how = if file.no_transaction {
        "without a transaction (-- migrate:no-transaction)"
    } else {
        "in its own transaction"
    };
    out.push_str(&format!("-- {dir} {:03} {}: {how}\n", m.version, file.file_name));
    out.push_str(file.sql.trim_end());
    out.push_str("\n\n");
}

/// What records the step in the history.
enum Finish<'a> {
    Insert(&'a Record<'a>),
    Delete,
}

/// A PostgreSQL connection held across consecutive SQL steps: one pool checkout (and health check) per run
/// instead of one per migration. Released before a Rust migration, which takes its own through SeaORM (the
/// pool may have a single connection).
#[derive(Default)]
struct Held(Option<sqlx::pool::PoolConnection<sqlx::Postgres>>);

impl Held {
    async fn get(&mut self, pg: &sqlx::PgPool) -> Result<&mut sqlx::PgConnection, MigrateError> {
        if self.0.is_none() {
            let conn = pg
                .acquire()
                .await
                .map_err(|e| MigrateError::db("acquiring a connection", e))?;
            self.0 = Some(conn);
        }
        self.0
            .as_deref_mut()
            .ok_or_else(|| MigrateError::db("acquiring a connection", "no connection"))
    }

    fn release(&mut self) {
        self.0 = None;
    }

    /// Runs a bookkeeping statement: on the held connection for PostgreSQL, on the pool for SQLite.
    async fn exec(&mut self, pool: &Pool, sql: String, context: &'static str) -> Result<(), MigrateError> {
        match pool {
            Pool::Postgres(pg) => {
                let conn = self.get(pg).await?;
                sqlx::raw_sql(AssertSqlSafe(sql))
                    .execute(conn)
                    .await
                    .map(|_| ())
                    .map_err(|e| MigrateError::db(context, e))
            }
            Pool::Sqlite(_) => ledger::exec(pool, sql, context).await,
        }
    }
}

/// Runs one SQL file and records it. Returns `false` when another runner had already done it (SQLite).
async fn run_sql(
    pool: &Pool,
    held: &mut Held,
    version: u64,
    file: &SqlFile,
    finish: Finish<'_>,
    direction: Direction,
) -> Result<bool, MigrateError> {
    match pool {
        Pool::Postgres(pg) if !file.no_transaction => {
            let record_sql = match &finish {
                Finish::Insert(r) => ledger::pg_insert(r, ledger::PG_ELAPSED_MS),
                Finish::Delete => ledger::delete(version),
            };
            // The newline ends a trailing `--` comment; the extra `;` is harmless.
            let sql = format!("{}\n;\n{record_sql}", file.sql);
            let conn = held.get(pg).await?;
            match sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await {
                Ok(_) => Ok(true),
                Err(e) => {
                    let failure = DbFailure::from_sqlx(&e);
                    Err(diagnose_pg(conn, version, file, failure).await)
                }
            }
        }
        Pool::Postgres(pg) => {
            let started = Instant::now();
            if let Finish::Insert(r) = &finish {
                let pending = Record {
                    success: false,
                    ..**r
                };
                held.exec(
                    pool,
                    ledger::pg_insert(&pending, "0"),
                    "recording a no-transaction migration",
                )
                .await?;
            }
            let conn = held.get(pg).await?;
            for s in &file.statements {
                if let Err(e) = sqlx::raw_sql(AssertSqlSafe(s.text(&file.sql).to_owned()))
                    .execute(&mut *conn)
                    .await
                {
                    return Err(failed(
                        version,
                        file,
                        Some(*s),
                        &DbFailure::from_sqlx(&e),
                        s.start,
                    ));
                }
            }
            let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
            let done = match finish {
                Finish::Insert(_) => ledger::mark_success(version, ms),
                Finish::Delete => ledger::delete(version),
            };
            held.exec(pool, done, "recording the migration").await?;
            Ok(true)
        }
        Pool::Sqlite(lite) => run_sqlite(lite, version, file, finish, direction).await,
    }
}

async fn run_sqlite(
    lite: &sqlx::SqlitePool,
    version: u64,
    file: &SqlFile,
    finish: Finish<'_>,
    direction: Direction,
) -> Result<bool, MigrateError> {
    let mut conn = lite
        .acquire()
        .await
        .map_err(|e| MigrateError::db("acquiring a connection", e))?;
    let exec = |sql: String| sqlx::raw_sql(AssertSqlSafe(sql));
    let started = Instant::now();
    if file.no_transaction {
        if let Finish::Insert(r) = &finish {
            let pending = Record {
                success: false,
                ..**r
            };
            exec(ledger::sqlite_insert(&pending, 0))
                .execute(&mut *conn)
                .await
                .map_err(|e| MigrateError::db("recording a no-transaction migration", e))?;
        }
        for s in &file.statements {
            if let Err(e) = exec(s.text(&file.sql).to_owned()).execute(&mut *conn).await {
                return Err(failed(
                    version,
                    file,
                    Some(*s),
                    &DbFailure::from_sqlx(&e),
                    s.start,
                ));
            }
        }
        let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let done = match finish {
            Finish::Insert(_) => ledger::mark_success(version, ms),
            Finish::Delete => ledger::delete(version),
        };
        exec(done)
            .execute(&mut *conn)
            .await
            .map_err(|e| MigrateError::db("recording the migration", e))?;
        return Ok(true);
    }

    exec("BEGIN IMMEDIATE".to_owned())
        .execute(&mut *conn)
        .await
        .map_err(|e| MigrateError::db("starting a transaction", e))?;
    let result: Result<bool, MigrateError> = async {
        let present = exec(format!(
            "SELECT 1 FROM collex_migrations WHERE version = {version}"
        ))
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| MigrateError::db("re-reading the migration history", e))?
        .is_some();
        // Another runner applied (or rolled back) this one since our history read.
        if present != (direction == Direction::Down) {
            return Ok(false);
        }
        if let Err(e) = exec(file.sql.clone()).execute(&mut *conn).await {
            return Err(MigrateError::Failed {
                version,
                file: file.file_name.clone(),
                statement: String::new(),
                line: 0,
                column: None,
                message: DbFailure::from_sqlx(&e).message,
            });
        }
        let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let record_sql = match finish {
            Finish::Insert(r) => ledger::sqlite_insert(r, ms),
            Finish::Delete => ledger::delete(version),
        };
        exec(record_sql)
            .execute(&mut *conn)
            .await
            .map_err(|e| MigrateError::db("recording the migration", e))?;
        Ok(true)
    }
    .await;
    match result {
        Ok(ran) => {
            let end = if ran { "COMMIT" } else { "ROLLBACK" };
            exec(end.to_owned())
                .execute(&mut *conn)
                .await
                .map_err(|e| MigrateError::db("committing the migration", e))?;
            Ok(ran)
        }
        Err(err) => {
            let _ = exec("ROLLBACK".to_owned()).execute(&mut *conn).await;
            if let MigrateError::Failed { message, .. } = &err {
                // Name the statement: replay one by one in a transaction that is rolled back.
                let found = replay::<sqlx::Sqlite>(&mut *conn, file, "BEGIN").await;
                let _ = exec("ROLLBACK".to_owned()).execute(&mut *conn).await;
                let failure = DbFailure {
                    message: message.clone(),
                    position: None,
                };
                return Err(match found {
                    Some((s, f)) => failed(version, file, Some(s), &f, s.start),
                    None => failed(version, file, None, &failure, 0),
                });
            }
            Err(err)
        }
    }
}

/// Runs one Rust migration in a SeaORM transaction (unless it opts out) and records it.
async fn run_rust(
    db: &DatabaseConnection,
    pool: &Pool,
    m: &Migration,
    r: &RustMigration,
    direction: Direction,
    record: &Record<'_>,
) -> Result<bool, MigrateError> {
    let fail = |e: sea_orm::DbErr| MigrateError::Failed {
        version: m.version,
        file: m.label(),
        statement: String::new(),
        line: 0,
        column: None,
        message: e.to_string(),
    };
    let started = Instant::now();
    let record_sql = |ms: i64| match (direction, pool) {
        (Direction::Down, _) => ledger::delete(m.version),
        (Direction::Up, Pool::Postgres(_)) => ledger::pg_insert(record, &ms.to_string()),
        (Direction::Up, Pool::Sqlite(_)) => ledger::sqlite_insert(record, ms),
    };
    if r.migration.use_transaction() == Some(false) {
        let manager = SchemaManager::new(db);
        match direction {
            Direction::Up => r.migration.up(&manager).await.map_err(fail)?,
            Direction::Down => r.migration.down(&manager).await.map_err(fail)?,
        }
        let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        db.execute_unprepared(&record_sql(ms))
            .await
            .map_err(|e| MigrateError::db("recording the migration", e))?;
        return Ok(true);
    }
    let txn = db
        .begin()
        .await
        .map_err(|e| MigrateError::db("starting a transaction", e))?;
    if matches!(pool, Pool::Sqlite(_)) {
        let present = txn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                format!("SELECT 1 FROM collex_migrations WHERE version = {}", m.version),
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
    let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    txn.execute_unprepared(&record_sql(ms))
        .await
        .map_err(|e| MigrateError::db("recording the migration", e))?;
    txn.commit().await.map_err(fail)?;
    Ok(true)
}

/// The database's side of a failure.
struct DbFailure {
    message: String,
    /// 1-based character position in the text that was sent.
    position: Option<usize>,
}

impl DbFailure {
    fn from_sqlx(e: &sqlx::Error) -> Self {
        let sqlx::Error::Database(db) = e else {
            return Self {
                message: e.to_string(),
                position: None,
            };
        };
        let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() else {
            return Self {
                message: db.message().to_owned(),
                position: None,
            };
        };
        let mut message = format!("{} (SQLSTATE {})", pg.message(), pg.code());
        if let Some(d) = pg.detail() {
            message.push_str(&format!("; detail: {d}"));
        }
        if let Some(h) = pg.hint() {
            message.push_str(&format!("; hint: {h}"));
        }
        // Errors inside function bodies and DO blocks say where there (the position is not in the file).
        if let Some(w) = pg.r#where() {
            message.push_str(&format!("; context: {}", w.replace('\n', " / ")));
        }
        if pg.code() == "25001" {
            message.push_str(
                "; put `-- migrate:no-transaction` on the file's first line to run it outside a transaction",
            );
        }
        let position = match pg.position() {
            Some(sqlx::postgres::PgErrorPosition::Original(p)) => Some(p),
            _ => None,
        };
        Self { message, position }
    }
}

/// Builds [`MigrateError::Failed`]: `offset` is where the text that was sent starts in the file, so the
/// database's position (relative to that text) lands on a line of the file.
fn failed(
    version: u64,
    file: &SqlFile,
    stmt: Option<Statement>,
    f: &DbFailure,
    offset: usize,
) -> MigrateError {
    let sent = file.sql.get(offset..).unwrap_or("");
    let at = f
        .position
        .and_then(|p| statements::char_pos_to_byte(sent, p))
        .map(|b| offset + b)
        .filter(|b| *b < file.sql.len());
    let stmt = stmt.or_else(|| {
        let b = at?;
        file.statements.iter().rev().find(|s| s.start <= b).copied()
    });
    let (line, column) = match (at, stmt) {
        (Some(b), _) => {
            let (l, c) = statements::line_col(&file.sql, b);
            (l, Some(c))
        }
        (None, Some(s)) => (statements::line_col(&file.sql, s.start).0, None),
        (None, None) => (0, None),
    };
    MigrateError::Failed {
        version,
        file: file.file_name.clone(),
        statement: stmt.map(|s| s.text(&file.sql).to_owned()).unwrap_or_default(),
        line,
        column,
        message: f.message.clone(),
    }
}

/// A PostgreSQL failure of a whole-file query: map the position, or replay to find the statement.
async fn diagnose_pg(
    conn: &mut sqlx::PgConnection,
    version: u64,
    file: &SqlFile,
    f: DbFailure,
) -> MigrateError {
    let in_file = f
        .position
        .and_then(|p| statements::char_pos_to_byte(&file.sql, p))
        .is_some();
    if in_file || file.statements.len() <= 1 {
        let only = if in_file {
            None
        } else {
            file.statements.first().copied()
        };
        return failed(version, file, only, &f, 0);
    }
    let found = replay::<sqlx::Postgres>(conn, file, "BEGIN").await;
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    match found {
        Some((s, replayed)) => failed(version, file, Some(s), &replayed, s.start),
        None => failed(version, file, None, &f, 0),
    }
}

/// Runs the file's statements one by one after `begin`; returns the first that fails. The caller rolls back.
async fn replay<DB>(
    conn: &mut DB::Connection,
    file: &SqlFile,
    begin: &'static str,
) -> Option<(Statement, DbFailure)>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    sqlx::raw_sql(begin).execute(&mut *conn).await.ok()?;
    for s in &file.statements {
        if let Err(e) = sqlx::raw_sql(AssertSqlSafe(s.text(&file.sql).to_owned()))
            .execute(&mut *conn)
            .await
        {
            return Some((*s, DbFailure::from_sqlx(&e)));
        }
    }
    None
}

const PG_DROP_ALL: &str = r#"DO $collex$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format(CASE r.relkind
        WHEN 'v' THEN 'DROP VIEW IF EXISTS %I CASCADE'
        WHEN 'm' THEN 'DROP MATERIALIZED VIEW IF EXISTS %I CASCADE'
        WHEN 'S' THEN 'DROP SEQUENCE IF EXISTS %I CASCADE'
        WHEN 'f' THEN 'DROP FOREIGN TABLE IF EXISTS %I CASCADE'
        ELSE 'DROP TABLE IF EXISTS %I CASCADE' END, r.relname);
  END LOOP;
  FOR r IN SELECT t.typname, t.typtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = current_schema() AND t.typtype IN ('e', 'd')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format(CASE r.typtype WHEN 'd' THEN 'DROP DOMAIN IF EXISTS %I CASCADE'
        ELSE 'DROP TYPE IF EXISTS %I CASCADE' END, r.typname);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure::text AS sig, p.prokind FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = current_schema()
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format(CASE r.prokind WHEN 'p' THEN 'DROP PROCEDURE IF EXISTS %s CASCADE'
        WHEN 'a' THEN 'DROP AGGREGATE IF EXISTS %s CASCADE'
        ELSE 'DROP FUNCTION IF EXISTS %s CASCADE' END, r.sig);
  END LOOP;
END
$collex$"#;

async fn drop_everything(pool: &Pool) -> Result<(), MigrateError> {
    match pool {
        Pool::Postgres(pg) => sqlx::raw_sql(PG_DROP_ALL)
            .execute(pg)
            .await
            .map(|_| ())
            .map_err(|e| MigrateError::db("dropping the schema's objects", e)),
        Pool::Sqlite(lite) => {
            use sea_orm::sqlx::Row;
            let err = |e| MigrateError::db("dropping the schema's objects", e);
            let mut conn = lite.acquire().await.map_err(err)?;
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
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await
                .map(|_| ())
                .map_err(err)
        }
    }
}
