//! The [`Migrator`]: runs `up`, `down`, `redo`, `fresh`, `reset`, `accept-checksum`, their dry runs, and a
//! read-only `status`, under the migration lock, reporting progress to an optional [`Reporter`].
//!
//! It only orchestrates: what to run comes from the plan ([`crate::plan`], pure), how a step runs on each
//! database from its backend (`crate::backend`). Output is not printed here.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use serde::Serialize;

use crate::backend::{self, Backend, Finish, SqlStep};
use crate::error::MigrateError;
use crate::ledger::{self, Record};
use crate::lock::Waiting;
use crate::plan::{self, Direction, DownTarget, StatusReport, Tolerance};
use crate::source::{Body, Migration, MigrationSet, RustMigration};

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

    fn tolerance(&self) -> Tolerance {
        Tolerance {
            ignore_missing: self.ignore_missing,
            retry_failed: self.retry_failed,
        }
    }
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
        let history = backend::choose::for_connection(db)?.history(false).await?;
        Ok(plan::status(&self.set, &history))
    }

    /// Applies pending migrations in version order (at most `limit`), under the lock.
    ///
    /// # Errors
    /// Validation errors (modified, missing, previously failed) before anything runs;
    /// [`MigrateError::Failed`] for the first migration that fails (those before it stay applied).
    pub async fn up(&self, db: &DatabaseConnection, limit: Option<usize>) -> Result<RunReport, MigrateError> {
        let mut b = backend::choose::for_connection(db)?;
        self.lock(&mut *b).await?;
        let mut report = RunReport::default();
        let result = self.up_locked(db, &mut *b, limit, None, &mut report).await;
        b.unlock().await;
        result.map(|()| report)
    }

    /// Rolls back applied migrations, newest first, under the lock.
    ///
    /// # Errors
    /// [`MigrateError::UnknownVersion`] or [`MigrateError::Irreversible`] before anything runs;
    /// [`MigrateError::Failed`] when a rollback fails.
    pub async fn down(&self, db: &DatabaseConnection, target: DownTarget) -> Result<RunReport, MigrateError> {
        let mut b = backend::choose::for_connection(db)?;
        self.lock(&mut *b).await?;
        let mut report = RunReport::default();
        let result = self
            .down_locked(db, &mut *b, target, &mut report)
            .await
            .map(|_| ());
        b.unlock().await;
        result.map(|()| report)
    }

    /// Rolls back the latest migration and applies it again, under one lock.
    ///
    /// # Errors
    /// As [`Migrator::down`] and [`Migrator::up`].
    pub async fn redo(&self, db: &DatabaseConnection) -> Result<RunReport, MigrateError> {
        let mut b = backend::choose::for_connection(db)?;
        self.lock(&mut *b).await?;
        let mut report = RunReport::default();
        let result = async {
            let undone = self
                .down_locked(db, &mut *b, DownTarget::Steps(1), &mut report)
                .await?;
            match undone.first() {
                Some(&v) => self.up_locked(db, &mut *b, Some(1), Some(v), &mut report).await,
                None => Ok(()),
            }
        }
        .await;
        b.unlock().await;
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
        let mut b = backend::choose::for_connection(db)?;
        self.lock(&mut *b).await?;
        let mut report = RunReport::default();
        let result = async {
            b.drop_everything().await?;
            self.report(&Event::Dropped);
            self.up_locked(db, &mut *b, None, None, &mut report).await
        }
        .await;
        b.unlock().await;
        result.map(|()| report)
    }

    /// Records the current checksum of applied migration `version`, accepting a deliberate edit.
    ///
    /// # Errors
    /// [`MigrateError::UnknownVersion`] when `version` is not applied or has no file.
    pub async fn accept_checksum(&self, db: &DatabaseConnection, version: u64) -> Result<(), MigrateError> {
        let mut b = backend::choose::for_connection(db)?;
        self.lock(&mut *b).await?;
        let result = async {
            let history = b.history(false).await?;
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
            b.exec(
                ledger::set_checksum(b.table(), version, &m.checksum()),
                "accepting the checksum",
            )
            .await
        }
        .await;
        b.unlock().await;
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
        let history = backend::choose::for_connection(db)?.history(false).await?;
        let pending = plan::pending(&self.set, &history, self.options.tolerance(), limit, None)?;
        Ok(plan::script(Direction::Up, &pending))
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
        let history = backend::choose::for_connection(db)?.history(false).await?;
        let targets = plan::down_targets(&self.set, &history, target)?;
        Ok(plan::script(Direction::Down, &targets))
    }

    async fn lock(&self, b: &mut dyn Backend) -> Result<(), MigrateError> {
        let on_wait = |w: &Waiting| self.report(&Event::WaitingForLock(w));
        if let Some(waited) = b.lock(self.options.lock_timeout, &on_wait).await? {
            self.report(&Event::LockAcquired { waited });
        }
        Ok(())
    }

    async fn up_locked(
        &self,
        db: &DatabaseConnection,
        b: &mut dyn Backend,
        limit: Option<usize>,
        up_to: Option<u64>,
        report: &mut RunReport,
    ) -> Result<(), MigrateError> {
        // Validation first: a refused plan (an empty template, an edited file) leaves the database as it
        // was, without even a history table.
        let history = b.history(false).await?;
        let pending = plan::pending(&self.set, &history, self.options.tolerance(), limit, up_to)?;
        if pending.is_empty() {
            return Ok(());
        }
        if history.is_empty() {
            b.history(true).await?;
        }
        self.announce(Direction::Up, &pending);
        let failed: BTreeSet<u64> = history.iter().filter(|r| !r.success).map(|r| r.version).collect();
        for m in pending {
            let started = Instant::now();
            if failed.contains(&m.version) {
                // --retry-failed: the row of the earlier attempt goes; the migration runs again from scratch.
                b.exec(
                    ledger::delete(b.table(), m.version),
                    "clearing a failed history row",
                )
                .await?;
            }
            if self.step(db, b, m, Direction::Up).await? {
                self.done(report, Direction::Up, m, started);
            }
        }
        Ok(())
    }

    /// Returns the versions rolled back.
    async fn down_locked(
        &self,
        db: &DatabaseConnection,
        b: &mut dyn Backend,
        target: DownTarget,
        report: &mut RunReport,
    ) -> Result<Vec<u64>, MigrateError> {
        let history = b.history(false).await?;
        let targets = plan::down_targets(&self.set, &history, target)?;
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        self.announce(Direction::Down, &targets);
        let mut undone = Vec::new();
        for m in targets {
            let started = Instant::now();
            if self.step(db, b, m, Direction::Down).await? {
                undone.push(m.version);
                self.done(report, Direction::Down, m, started);
            }
        }
        Ok(undone)
    }

    /// Runs one migration one way and records it; `false` when another runner had done it already (or, going
    /// down, there is nothing to run).
    async fn step(
        &self,
        db: &DatabaseConnection,
        b: &mut dyn Backend,
        m: &Migration,
        direction: Direction,
    ) -> Result<bool, MigrateError> {
        let checksum = m.checksum();
        let record = Record {
            version: m.version,
            name: &m.name,
            kind: m.kind(),
            checksum: &checksum,
            success: true,
        };
        let finish = match direction {
            Direction::Up => Finish::Insert(&record),
            Direction::Down => Finish::Delete,
        };
        let file = match (&m.body, direction) {
            (Body::Sql { forward, .. }, Direction::Up) => forward,
            (
                Body::Sql {
                    rollback: Some(file), ..
                },
                Direction::Down,
            ) => file,
            (Body::Sql { rollback: None, .. }, Direction::Down) => return Ok(false),
            (Body::Rust(r), _) => {
                b.release().await;
                let how = (b.dialect(), b.rechecks_history(), b.table());
                return backend::run_rust(db, how, m, r, direction, &record).await;
            }
        };
        b.run_sql(SqlStep {
            version: m.version,
            file,
            finish,
            direction,
        })
        .await
    }

    fn announce(&self, direction: Direction, steps: &[&Migration]) {
        let steps: Vec<(u64, String)> = steps.iter().map(|m| (m.version, m.label())).collect();
        self.report(&Event::Plan {
            direction,
            steps: &steps,
        });
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
}
