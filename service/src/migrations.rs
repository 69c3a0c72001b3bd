//! The migration state the service reports and the auto-migrate step it runs at start-up.
//!
//! Owns the [`Migrations`] seam between the service and the migration runner: [`Runner`] wires it to
//! `migration::Migrator` (read-only `status`, `apply_pending` under the runner's lock); [`NotWired`] reports
//! `unknown` and applies nothing. Schema drift (entities versus the live catalog) is not known to the runner
//! yet, so [`Runner`] reports it as unknown until that check exists.

use std::path::PathBuf;

use async_trait::async_trait;
use sea_orm::DatabaseConnection;
use serde::Serialize;

/// Whether the live schema differs from what the code expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Drift {
    /// It differs.
    Yes,
    /// It matches.
    No,
    /// Not checked.
    Unknown,
}

/// What `/health/detailed` and `/metrics` report about migrations.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct MigrationState {
    /// `known` when the runner answered, `unknown` otherwise.
    pub state: &'static str,
    /// The highest applied version.
    pub latest_applied_version: Option<u64>,
    /// How many migrations are pending.
    pub pending: Option<usize>,
    /// Applied migrations whose file changed, vanished or failed part-way.
    pub history_problems: Option<usize>,
    /// Schema drift.
    pub drift: Drift,
    /// Why the state is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<String>,
}

impl MigrationState {
    /// Nothing known.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self {
            state: "unknown",
            latest_applied_version: None,
            pending: None,
            history_problems: None,
            drift: Drift::Unknown,
            error: Some(reason.into()),
        }
    }
}

/// The error of an auto-migrate run, as the runner phrased it.
pub type MigrateFailure = Box<dyn std::error::Error + Send + Sync>;

/// The service's view of the migration runner.
#[async_trait]
pub trait Migrations: Send + Sync + 'static {
    /// Applies every pending migration (auto-migrate); returns how many ran.
    ///
    /// # Errors
    /// The runner's error; the service retries with backoff.
    async fn apply_pending(&self, db: &DatabaseConnection) -> Result<usize, MigrateFailure>;

    /// Reads the state without writing.
    async fn state(&self, db: &DatabaseConnection) -> MigrationState;
}

/// Reports `unknown` and applies nothing: for tests and tools that do not migrate.
#[derive(Debug, Default, Clone, Copy)]
pub struct NotWired;

#[async_trait]
impl Migrations for NotWired {
    async fn apply_pending(&self, _db: &DatabaseConnection) -> Result<usize, MigrateFailure> {
        tracing::warn!("auto-migrate is not wired to a runner: nothing applied");
        Ok(0)
    }

    async fn state(&self, _db: &DatabaseConnection) -> MigrationState {
        MigrationState::unknown("migration runner not wired")
    }
}

/// The migration crate's runner over the SQL files in `dir` plus `migration::rust_migrations()`.
#[derive(Debug, Clone)]
pub struct Runner {
    dir: PathBuf,
}

impl Runner {
    /// A runner for `DB_MIGRATE_PATH`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

#[async_trait]
impl Migrations for Runner {
    async fn apply_pending(&self, db: &DatabaseConnection) -> Result<usize, MigrateFailure> {
        let report = migration::apply_pending(
            db,
            &self.dir,
            migration::rust_migrations(),
            migration::Options::default(),
        )
        .await?;
        Ok(report.steps.len())
    }

    async fn state(&self, db: &DatabaseConnection) -> MigrationState {
        let set = match migration::MigrationSet::load(&self.dir, migration::rust_migrations()) {
            Ok(s) => s,
            Err(e) => return MigrationState::unknown(e.to_string()),
        };
        match migration::Migrator::new(set).status(db).await {
            Ok(report) => MigrationState {
                state: "known",
                latest_applied_version: report
                    .migrations
                    .iter()
                    .filter(|m| m.state == migration::State::Applied)
                    .map(|m| m.version)
                    .max(),
                pending: Some(report.pending),
                history_problems: Some(report.problems),
                drift: Drift::Unknown,
                error: None,
            },
            Err(e) => MigrationState::unknown(e.to_string()),
        }
    }
}
