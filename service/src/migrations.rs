//! The migration state the service reports and the auto-migrate step it runs at start-up.
//!
//! Owns the [`Migrations`] seam between the service and the migration crate: [`Runner`] wires it to
//! `migration::auto_migrate` (under the runner's lock) and to the read-only `Migrator::status` and
//! `drift_of` (entities versus the live catalog); [`NotWired`] reports `unknown` and applies nothing.

use std::path::PathBuf;

use crate::pool::Db;
use async_trait::async_trait;
use config::DbConfig;
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
    async fn apply_pending(&self, db: &Db) -> Result<usize, MigrateFailure>;

    /// Reads the state without writing.
    async fn state(&self, db: &Db) -> MigrationState;
}

/// Reports `unknown` and applies nothing: for tests and tools that do not migrate.
#[derive(Debug, Default, Clone, Copy)]
pub struct NotWired;

#[async_trait]
impl Migrations for NotWired {
    async fn apply_pending(&self, _db: &Db) -> Result<usize, MigrateFailure> {
        tracing::warn!("auto-migrate is not wired to a runner: nothing applied");
        Ok(0)
    }

    async fn state(&self, _db: &Db) -> MigrationState {
        MigrationState::unknown("migration runner not wired")
    }
}

/// The migration crate's runner: `migration::auto_migrate` (pending files of `DB_MIGRATE_PATH`, then the
/// additive entity changes) to migrate, `Migrator::status` and `drift_of` (read-only) for the state.
#[derive(Debug, Clone)]
pub struct Runner {
    dir: PathBuf,
}

/// What a [`Runner`] can be built from: a configuration (its `DB_MIGRATE_PATH`) or the directory itself.
pub trait MigrationsDir {
    /// The directory of SQL migrations.
    fn into_dir(self) -> PathBuf;
}

impl MigrationsDir for DbConfig {
    fn into_dir(self) -> PathBuf {
        self.migrate_path
    }
}

impl MigrationsDir for &DbConfig {
    fn into_dir(self) -> PathBuf {
        self.migrate_path.clone()
    }
}

impl MigrationsDir for PathBuf {
    fn into_dir(self) -> PathBuf {
        self
    }
}

impl MigrationsDir for &PathBuf {
    fn into_dir(self) -> PathBuf {
        self.clone()
    }
}

impl MigrationsDir for &std::path::Path {
    fn into_dir(self) -> PathBuf {
        self.to_path_buf()
    }
}

impl Runner {
    /// A runner for `DB_MIGRATE_PATH`, given as the configuration or as the directory.
    pub fn new(source: impl MigrationsDir) -> Self {
        Self {
            dir: source.into_dir(),
        }
    }
}

#[async_trait]
impl Migrations for Runner {
    async fn apply_pending(&self, db: &Db) -> Result<usize, MigrateFailure> {
        let entities = entity::registry::all();
        // The migration crate takes the raw connection (it reaches the sqlx pool for the advisory lock) and
        // holds two connections on PostgreSQL: the lock's and the one migrating. Both pass the gate first.
        let held = db.hold_many(2).await?;
        let report =
            migration::auto_migrate_with(&held, &self.dir, &entities, migration::Options::default()).await?;
        drop(held);
        for w in &report.warnings {
            tracing::warn!("auto-migrate: {w}");
        }
        Ok(report.migrations.steps.len() + report.applied.len())
    }

    async fn state(&self, db: &Db) -> MigrationState {
        let dir = &self.dir;
        let set = match migration::MigrationSet::load_for(
            dir,
            migration::rust_migrations(),
            sea_orm::ConnectionTrait::get_database_backend(db),
        ) {
            Ok(s) => s,
            Err(e) => return MigrationState::unknown(e.to_string()),
        };
        // `status` takes the raw connection (it reads the ledger through the sqlx pool): hold a permit for it,
        // and release it before the drift check, whose statements pass the gate one by one.
        let status = match db.hold().await {
            Ok(held) => migration::Migrator::new(set)
                .status(&held)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let report = match status {
            Ok(r) => r,
            Err(e) => return MigrationState::unknown(e),
        };
        let drift = match migration::drift_of(db, dir, &entity::registry::all()).await {
            Ok(d) if d.is_empty() => Drift::No,
            Ok(_) => Drift::Yes,
            Err(e) => {
                tracing::debug!("drift check failed: {e}");
                Drift::Unknown
            }
        };
        MigrationState {
            state: "known",
            latest_applied_version: report
                .migrations
                .iter()
                .filter(|m| m.state == migration::State::Applied)
                .map(|m| m.version)
                .max(),
            pending: Some(report.pending),
            history_problems: Some(report.problems),
            drift,
            error: None,
        }
    }
}
