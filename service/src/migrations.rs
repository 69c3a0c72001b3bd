//! The migration state the service reports and the auto-migrate step it runs at start-up.
//!
//! Owns the [`Migrations`] seam between the service and the migration crate: [`Runner`] wires it to
//! `migration::auto_migrate` (under the runner's lock) and to the read-only `Migrator::status` and
//! `drift_of` (entities versus the live catalog); [`NotWired`] reports `unknown` and applies nothing. It also
//! owns which auto-migrate failures waiting can heal ([`FailureKind`]); start-up acts on that (see `boot`).

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

/// Whether waiting can heal an auto-migrate failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// It may pass by itself (another runner holds the migration lock, the database went away): retry.
    Transient,
    /// Retrying gives the same answer (an invalid or edited migration file, a failed migration's SQL).
    Permanent,
    /// A database error that is permanent if the database still answers and transient if it does not (a
    /// connection lost mid-way reads like a failed statement).
    Unclear,
}

/// An auto-migrate run that failed: why, as the runner phrased it, and whether to retry.
#[derive(Debug)]
pub struct MigrateFailure {
    /// Whether waiting can heal it.
    pub kind: FailureKind,
    /// The runner's error.
    pub error: Box<dyn std::error::Error + Send + Sync>,
}

impl MigrateFailure {
    /// A failure of `kind`.
    pub fn new(kind: FailureKind, error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            kind,
            error: error.into(),
        }
    }
}

impl std::fmt::Display for MigrateFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for MigrateFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// The service's view of the migration runner.
#[async_trait]
pub trait Migrations: Send + Sync + 'static {
    /// Applies every pending migration (auto-migrate); returns how many ran.
    ///
    /// # Errors
    /// The runner's error and whether waiting can heal it; the service retries the transient ones with
    /// backoff and stops at the others.
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
/// additive entity changes) to migrate, `Migrator::status` and `drift_of` (read-only) for the state. With
/// `DB_BACKUP_BEFORE_MIGRATE=true` it first takes a snapshot when anything is pending
/// (`migration::backup::backup_if_pending`); a failed snapshot is a permanent failure: nothing is applied.
#[derive(Debug, Clone)]
pub struct Runner {
    dir: PathBuf,
    /// `DB_MIGRATION_URL`'s configuration: auto-migrate connects there directly instead of using the pool.
    direct: Option<DbConfig>,
    snapshot_before: Option<SnapshotBefore>,
}

/// Where the snapshot before auto-migrating goes.
#[derive(Debug, Clone)]
pub struct SnapshotBefore {
    target: config::DbTarget,
    backup: config::BackupConfig,
}

/// What a [`Runner`] can be built from: a configuration (its `DB_MIGRATE_PATH`, and its
/// `DB_BACKUP_BEFORE_MIGRATE`) or the directory itself.
pub trait MigrationsDir {
    /// The snapshot to take before migrating, if the source asks for one.
    fn snapshot_before(&self) -> Option<SnapshotBefore> {
        None
    }

    /// The directory of SQL migrations.
    fn into_dir(self) -> PathBuf;

    /// The direct connection migrations use instead of the pool (`DB_MIGRATION_URL`), if any.
    fn direct(&self) -> Option<DbConfig> {
        None
    }
}

fn snapshot_of(cfg: &DbConfig) -> Option<SnapshotBefore> {
    cfg.backup.before_migrate.then(|| SnapshotBefore {
        target: cfg.target.clone(),
        backup: cfg.backup.clone(),
    })
}

impl MigrationsDir for DbConfig {
    fn snapshot_before(&self) -> Option<SnapshotBefore> {
        snapshot_of(self)
    }

    fn into_dir(self) -> PathBuf {
        self.migrate_path
    }

    fn direct(&self) -> Option<DbConfig> {
        self.migration_target.is_some().then(|| self.for_migrations())
    }
}

impl MigrationsDir for &DbConfig {
    fn snapshot_before(&self) -> Option<SnapshotBefore> {
        snapshot_of(self)
    }

    fn into_dir(self) -> PathBuf {
        self.migrate_path.clone()
    }

    fn direct(&self) -> Option<DbConfig> {
        (*self).direct()
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
        let direct = source.direct();
        let snapshot_before = source.snapshot_before();
        Self {
            dir: source.into_dir(),
            direct,
            snapshot_before,
        }
    }
}

/// Which auto-migrate errors waiting can heal: a lock held by another runner can; validation, checksum,
/// history and generator errors cannot; a database error is judged by the driver's error (see
/// [`driver_kind`]); a migration whose statement failed is [`FailureKind::Unclear`] (its message is text).
pub fn classify(e: &migration::SchemaError) -> FailureKind {
    use migration::{MigrateError, SchemaError};
    match e {
        SchemaError::Migrate(MigrateError::LockTimeout { .. }) => FailureKind::Transient,
        SchemaError::Migrate(MigrateError::Database { source, .. })
        | SchemaError::Database { source, .. } => driver_kind(source),
        SchemaError::Migrate(MigrateError::Failed { .. }) => FailureKind::Unclear,
        _ => FailureKind::Permanent,
    }
}

/// SQLSTATEs that say the server or the moment, not the SQL, is the problem: too many connections, admin or
/// crash shutdown, cannot connect now, serialization failure, deadlock, lock not available.
const TRANSIENT_SQLSTATES: [&str; 7] = ["53300", "57P01", "57P02", "57P03", "40001", "40P01", "55P03"];

/// Transient for a connection that failed or broke (I/O, TLS, pool, protocol) and for the SQLSTATEs of
/// connection exceptions (class 08) and [`TRANSIENT_SQLSTATES`]; permanent for any other error the database
/// answered with; unclear when the driver's error says nothing either way.
pub fn driver_kind(e: &migration::DriverError) -> FailureKind {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{DbErr, RuntimeErr};
    let sqlx: Option<&Sqlx> = match e {
        migration::DriverError::Sqlx(e) => Some(e),
        migration::DriverError::Orm(e) => match &**e {
            DbErr::Conn(RuntimeErr::SqlxError(e))
            | DbErr::Exec(RuntimeErr::SqlxError(e))
            | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e),
            DbErr::ConnectionAcquire(_) => return FailureKind::Transient,
            _ => None,
        },
        _ => None,
    };
    match sqlx {
        Some(
            Sqlx::Io(_)
            | Sqlx::Tls(_)
            | Sqlx::PoolTimedOut
            | Sqlx::PoolClosed
            | Sqlx::WorkerCrashed
            | Sqlx::Protocol(_),
        ) => FailureKind::Transient,
        Some(Sqlx::Database(db)) => match db.code() {
            Some(code) if code.starts_with("08") || TRANSIENT_SQLSTATES.contains(&code.as_ref()) => {
                FailureKind::Transient
            }
            Some(_) => FailureKind::Permanent,
            None => FailureKind::Unclear,
        },
        _ => FailureKind::Unclear,
    }
}

impl Runner {
    /// Auto-migrate over `DB_MIGRATION_URL`: its own connection (and the lock's), opened for the run and
    /// closed after it, so migrations never pass through a pooler.
    /// `DB_BACKUP_BEFORE_MIGRATE`: a snapshot of `db` (which is `target`, else the configured database)
    /// when anything is pending. A failed snapshot is permanent: nothing is applied.
    async fn snapshot_first(
        &self,
        db: &sea_orm::DatabaseConnection,
        target: Option<&config::DbTarget>,
    ) -> Result<(), MigrateFailure> {
        let Some(before) = &self.snapshot_before else {
            return Ok(());
        };
        let set = migration::MigrationSet::load_for(
            &self.dir,
            migration::rust_migrations(),
            sea_orm::ConnectionTrait::get_database_backend(db),
        )
        .map_err(|e| MigrateFailure::new(FailureKind::Permanent, e))?;
        let options = migration::BackupOptions::from_config(&before.backup);
        let target = target.unwrap_or(&before.target);
        match migration::backup::backup_if_pending(db, target, &migration::Migrator::new(set), &options).await
        {
            Ok(Some(s)) => {
                tracing::info!(
                    file = %s.file.display(),
                    schema_version = s.manifest.schema_version,
                    bytes = s.manifest.size_bytes,
                    "auto-migrate took a snapshot before migrating (DB_BACKUP_BEFORE_MIGRATE)"
                );
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(MigrateFailure::new(
                FailureKind::Permanent,
                format!("the snapshot before migrating failed, so nothing was applied: {e}"),
            )),
        }
    }

    async fn apply_direct(&self, cfg: &DbConfig) -> Result<usize, MigrateFailure> {
        let transient = |e| MigrateFailure::new(FailureKind::Transient, e);
        let conn = match &cfg.target {
            // Two connections, as through the pool: the run may read the catalog while it holds another.
            config::DbTarget::Postgres(t) => sea_orm::sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .min_connections(0)
                .acquire_timeout(cfg.pool.acquire_timeout)
                .connect_with(config::pg_connect_options(t))
                .await
                .map(sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool)
                .map_err(|source| {
                    transient(config::ConnectError::Connect {
                        target: t.to_string(),
                        source,
                    })
                })?,
            _ => config::connect(cfg).await.map_err(transient)?,
        };
        let entities = entity::registry::all();
        let report = match self.snapshot_first(&conn, Some(&cfg.target)).await {
            Ok(()) => {
                migration::auto_migrate_with(&conn, &self.dir, &entities, migration::Options::default()).await
            }
            Err(e) => {
                let _ = conn.close().await;
                return Err(e);
            }
        };
        let _ = conn.close().await;
        let report = report.map_err(|e| MigrateFailure::new(classify(&e), e))?;
        for w in &report.warnings {
            tracing::warn!("auto-migrate: {w}");
        }
        Ok(report.migrations.steps.len() + report.applied.len())
    }
}

#[async_trait]
impl Migrations for Runner {
    async fn apply_pending(&self, db: &Db) -> Result<usize, MigrateFailure> {
        if let Some(cfg) = &self.direct {
            return self.apply_direct(cfg).await;
        }
        let entities = entity::registry::all();
        // The migration crate takes the raw connection (it reaches the sqlx pool for the advisory lock) and
        // holds two connections on PostgreSQL: the lock's and the one migrating. Both pass the gate first.
        let held = db
            .hold_many(2)
            .await
            .map_err(|e| MigrateFailure::new(FailureKind::Transient, e))?;
        self.snapshot_first(&held, None).await?;
        let report = migration::auto_migrate_with(&held, &self.dir, &entities, migration::Options::default())
            .await
            .map_err(|e| MigrateFailure::new(classify(&e), e))?;
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use migration::{MigrateError, SchemaError};

    use super::*;

    #[test]
    fn a_lock_held_by_another_runner_is_retried_and_a_checksum_mismatch_is_not() {
        let lock = SchemaError::Migrate(MigrateError::LockTimeout {
            waited: Duration::from_secs(60),
            holder: None,
        });
        assert_eq!(classify(&lock), FailureKind::Transient);
        let edited = SchemaError::Migrate(MigrateError::ChecksumMismatch {
            version: 1,
            file: "001_x.sql".into(),
        });
        assert_eq!(classify(&edited), FailureKind::Permanent);
        let invalid = SchemaError::Migrate(MigrateError::Empty {
            file: "001_x.sql".into(),
        });
        assert_eq!(classify(&invalid), FailureKind::Permanent);
        let reset = SchemaError::Migrate(MigrateError::Database {
            context: "reading the history",
            source: sea_orm::sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()).into(),
        });
        assert_eq!(classify(&reset), FailureKind::Transient);
        let decode = SchemaError::Migrate(MigrateError::Database {
            context: "reading the history",
            source: sea_orm::sqlx::Error::ColumnNotFound("version".into()).into(),
        });
        assert_eq!(classify(&decode), FailureKind::Unclear);
    }
}
