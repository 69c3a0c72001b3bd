//! Snapshots of the configured database, taken before migrating and restored when a migration went wrong:
//! `migration backup`, `migration backups`, `migration restore FILE --yes`, `up --backup` and
//! `DB_BACKUP_BEFORE_MIGRATE`.
//!
//! Owns what a snapshot is (a file plus its [`Manifest`], in `DB_BACKUP_DIR`), how it is named, verified,
//! listed and pruned (`DB_BACKUP_KEEP`), and the rule that a snapshot is taken before migrating only when
//! something is pending. How each database writes and reads one is its module's: [`postgres`] (`pg_dump -Fc`,
//! `pg_restore` into `psql` in one transaction, the password in the environment only) and [`sqlite`]
//! (`VACUUM INTO`, the file swapped back). Running migrations is the runner's, not this module's.
//!
//! The file is streamed to disk (and hashed on the way) and renamed into place only when complete, so a
//! failed snapshot leaves no file that could be mistaken for one; the manifest is written last.

pub mod manifest;
mod postgres;
mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use config::DbTarget;
use sea_orm::DatabaseConnection;

pub use manifest::{Listed, Manifest, list, manifest_path, prune, verify};

use crate::error::MigrateError;
use crate::runner::Migrator;

/// Called with the bytes written so far while a snapshot streams to disk (the CLI shows it on a terminal).
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Where a snapshot goes and what happens around it.
#[derive(Clone, Default)]
pub struct BackupOptions {
    /// The directory (`DB_BACKUP_DIR`); created when missing.
    pub dir: PathBuf,
    /// Keep only the newest N snapshots of this database afterwards (`DB_BACKUP_KEEP`); `None` keeps all.
    pub keep: Option<u32>,
    /// How long to wait for the migration lock, held while the snapshot is taken.
    pub lock_timeout: Duration,
    /// Progress reports, if anyone listens.
    pub progress: Option<Progress>,
}

impl std::fmt::Debug for BackupOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupOptions")
            .field("dir", &self.dir)
            .field("keep", &self.keep)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

impl BackupOptions {
    /// The options of a configuration: its `DB_BACKUP_DIR` and `DB_BACKUP_KEEP`, the default lock wait.
    pub fn from_config(cfg: &config::BackupConfig) -> Self {
        Self {
            dir: cfg.dir.clone(),
            keep: cfg.keep,
            lock_timeout: crate::runner::DEFAULT_LOCK_TIMEOUT,
            progress: None,
        }
    }
}

/// A snapshot just taken.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The snapshot file.
    pub file: PathBuf,
    /// Its manifest.
    pub manifest_file: PathBuf,
    /// What the manifest says.
    pub manifest: Manifest,
    /// Older snapshots deleted by retention (their data files).
    pub pruned: Vec<PathBuf>,
}

/// What went wrong with a snapshot. Nothing here holds a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A PostgreSQL client program is not on `PATH`.
    #[error(
        "{tool} not found on PATH: install the PostgreSQL client programs of the server's major version \
         (Debian: postgresql-client-{server_major}) or put their directory first on PATH"
    )]
    ToolMissing {
        /// `pg_dump`, `pg_restore` or `psql`.
        tool: &'static str,
        /// The server's major version.
        server_major: u32,
    },
    /// A PostgreSQL client program older than the server (or than the archive it must read).
    #[error(
        "{tool} at {} is version {client}, older than {reason}; install postgresql-client-{needed_major} and \
         put its directory first on PATH{hint}",
        path.display()
    )]
    ToolTooOld {
        /// The program.
        tool: &'static str,
        /// Where it was found.
        path: PathBuf,
        /// Its version.
        client: String,
        /// The major version it needs.
        needed_major: u32,
        /// What it is older than and what it therefore cannot do.
        reason: String,
        /// Where a matching one already is, when it is installed.
        hint: String,
    },
    /// A program that could not be started, or whose version could not be read.
    #[error("cannot run {}: {reason}", path.display())]
    Tool {
        /// The program.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A program that exited with an error.
    #[error("{tool} failed ({status}): {stderr}")]
    ToolFailed {
        /// The program.
        tool: &'static str,
        /// Its exit status.
        status: String,
        /// What it printed on standard error (the end of it).
        stderr: String,
    },
    /// A file or directory that cannot be read or written.
    #[error("{what} `{}`: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A snapshot without its manifest.
    #[error(
        "no manifest for `{}`: expected `{}` next to it (a snapshot is only restored with its checksum)",
        file.display(),
        manifest.display()
    )]
    ManifestMissing {
        /// The snapshot file.
        file: PathBuf,
        /// Where its manifest should be.
        manifest: PathBuf,
    },
    /// A manifest that is not one.
    #[error("manifest `{}` is not a valid snapshot manifest: {reason}", path.display())]
    ManifestInvalid {
        /// The manifest.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A snapshot file whose bytes are not the ones its manifest recorded.
    #[error(
        "`{}` does not match its manifest: sha256 {actual} ({actual_size} bytes), the manifest says {expected} \
         ({expected_size} bytes); the file is damaged or was replaced: refusing to restore it",
        file.display()
    )]
    ChecksumMismatch {
        /// The snapshot file.
        file: PathBuf,
        /// The recorded checksum.
        expected: String,
        /// The file's checksum.
        actual: String,
        /// The recorded size.
        expected_size: u64,
        /// The file's size.
        actual_size: u64,
    },
    /// A snapshot of the other kind of database.
    #[error("`{}` is a {found} snapshot; the configured database is {expected}", file.display())]
    WrongBackend {
        /// The snapshot file.
        file: PathBuf,
        /// The snapshot's backend.
        found: String,
        /// The configured backend.
        expected: &'static str,
    },
    /// A database that cannot be snapshotted (in memory).
    #[error("cannot snapshot {target}: {reason}")]
    Unsupported {
        /// The target (no password).
        target: String,
        /// Why.
        reason: &'static str,
    },
    /// A database error (the lock, the history, the server version, `VACUUM INTO`).
    #[error("database error while {context}: {source}")]
    Database {
        /// What was being done.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: sea_orm::sqlx::Error,
    },
    /// The migration lock or the history.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

impl BackupError {
    /// Whether the input was refused before anything changed (a damaged or foreign snapshot, a missing
    /// manifest): the CLI's exit code 2. Everything else is a failure while running (exit 1).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::ManifestMissing { .. }
                | Self::ManifestInvalid { .. }
                | Self::ChecksumMismatch { .. }
                | Self::WrongBackend { .. }
        ) || matches!(self, Self::Io { what, .. } if *what == "cannot read the snapshot")
    }

    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.to_owned(),
            source,
        }
    }
}

/// Takes a snapshot of `db` (which is `target`) into `options.dir`, under the migration lock, writes its
/// manifest and applies the retention.
///
/// # Errors
/// [`BackupError`]: the client program missing or too old, the dump failing, the directory not writable.
/// Nothing is left in the directory then.
pub async fn backup(
    db: &DatabaseConnection,
    target: &DbTarget,
    options: &BackupOptions,
) -> Result<Snapshot, BackupError> {
    std::fs::create_dir_all(&options.dir)
        .map_err(|e| BackupError::io("cannot create the backup directory", &options.dir, e))?;
    let taken = match target {
        DbTarget::Postgres(t) => postgres::backup(db, t, options).await?,
        DbTarget::Sqlite(t) => sqlite::backup(db, t, options).await?,
        _ => {
            return Err(BackupError::Unsupported {
                target: target.to_string(),
                reason: "only PostgreSQL and SQLite are supported",
            });
        }
    };
    let manifest_file = manifest::write(&options.dir, &taken)?;
    let pruned = match options.keep {
        Some(keep) => prune(&options.dir, &taken.backend, &taken.database, keep)?,
        None => Vec::new(),
    };
    Ok(Snapshot {
        file: options.dir.join(&taken.file),
        manifest_file,
        manifest: taken,
        pruned,
    })
}

/// Takes a snapshot only when `migrator` has something pending on `db`: what `up --backup`,
/// `DB_BACKUP_BEFORE_MIGRATE` and the service's auto-migrate call. `None`: nothing pending, no snapshot.
///
/// # Errors
/// As [`backup`]; the history cannot be read.
pub async fn backup_if_pending(
    db: &DatabaseConnection,
    target: &DbTarget,
    migrator: &Migrator,
    options: &BackupOptions,
) -> Result<Option<Snapshot>, BackupError> {
    let status = migrator.status(db).await?;
    if status.pending == 0 {
        return Ok(None);
    }
    backup(db, target, options).await.map(Some)
}

/// Restores the snapshot `file` (or its manifest) into `target` after checking it against its manifest.
/// PostgreSQL: `db` holds the migration lock meanwhile, and the schema's objects are replaced in one
/// transaction (a failure leaves the database as it was). SQLite: `db` must be `None` (no connection may be
/// open): the file is replaced.
///
/// # Errors
/// A refusal ([`BackupError::is_refusal`]) before anything changed; a tool or database failure.
pub async fn restore(
    db: Option<&DatabaseConnection>,
    target: &DbTarget,
    file: &Path,
    lock_timeout: Duration,
) -> Result<Manifest, BackupError> {
    let (data, m) = verify(file)?;
    let expected = match target {
        DbTarget::Postgres(_) => "postgres",
        _ => "sqlite",
    };
    if m.backend != expected {
        return Err(BackupError::WrongBackend {
            file: data,
            found: m.backend,
            expected,
        });
    }
    match target {
        DbTarget::Postgres(t) => postgres::restore(db, t, &data, &m, lock_timeout).await?,
        DbTarget::Sqlite(t) => sqlite::restore(t, &data).await?,
        _ => {
            return Err(BackupError::Unsupported {
                target: target.to_string(),
                reason: "only PostgreSQL and SQLite are supported",
            });
        }
    }
    Ok(m)
}

/// A file name part from a database name: letters, digits, `-` and `_` kept, anything else `_`.
pub(crate) fn name_part(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "db".to_owned()
    } else {
        cleaned
    }
}

/// The highest applied version in the history of `db`, read under the migration lock by the caller.
pub(crate) async fn schema_version(b: &mut dyn crate::backend::Backend) -> Result<Option<u64>, BackupError> {
    let history = b.history(false).await?;
    Ok(history.iter().filter(|r| r.success).map(|r| r.version).max())
}
