//! Everything that can stop the migrator, as one typed error. Which exit code each gets is the binary's call.
//!
//! Validation variants name the file and say what was expected; [`MigrateError::Failed`] names the file, the
//! statement and the database's message with its line. The driver's error is kept as the `source` of the
//! variants that have one ([`DriverError`]); their message already includes the source's text, so print an
//! error with `{}`, not as a chain. Nothing here formats a connection URL, so no password can leak through an
//! error.

use std::path::PathBuf;
use std::time::Duration;

use sea_orm::sqlx;

/// A database driver's error: sqlx's, or SeaORM's for what runs through SeaORM (Rust migrations, catalog
/// queries on a `ConnectionTrait`). Boxed, so the errors that carry one stay small.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// sqlx's error.
    #[error(transparent)]
    Sqlx(Box<sqlx::Error>),
    /// SeaORM's error.
    #[error(transparent)]
    Orm(Box<sea_orm::DbErr>),
}

impl From<sqlx::Error> for DriverError {
    fn from(e: sqlx::Error) -> Self {
        Self::Sqlx(Box::new(e))
    }
}

impl From<sea_orm::DbErr> for DriverError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Orm(Box::new(e))
    }
}

/// An error of the migrator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The migrations directory does not exist or cannot be listed.
    #[error("migrations directory `{}` cannot be read ({source}): set DB_MIGRATE_PATH to a directory of NNN_description.sql files", path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },

    /// A `.sql` file whose name does not follow `NNN_description.sql` / `NNN_rollback.sql`.
    #[error(
        "migration file `{}` has a malformed name: expected NNN_description.sql or NNN_rollback.sql \
         (a version of three or more digits starting at 001, an underscore, then letters, digits, `_` or `-`, \
         and `.sql` in lower case)",
        file.display()
    )]
    MalformedName {
        /// The offending file.
        file: PathBuf,
    },

    /// Two migrations (files or Rust migrations) share a version.
    #[error(
        "migration version {version:03} is used twice, by `{first}` and `{second}`: each version must be unique"
    )]
    DuplicateVersion {
        /// The version.
        version: u64,
        /// The first migration with it.
        first: String,
        /// The second migration with it.
        second: String,
    },

    /// `NNN_rollback.sql` without `NNN_<description>.sql`.
    #[error(
        "rollback file `{}` has no forward migration: expected a file {version:03}_<description>.sql next to it",
        file.display()
    )]
    RollbackWithoutForward {
        /// The version.
        version: u64,
        /// The rollback file.
        file: PathBuf,
    },

    /// A file that cannot be read.
    #[error("migration file `{}` cannot be read: {source}", file.display())]
    Unreadable {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },

    /// A file that is not valid UTF-8.
    #[error("migration file `{}` is not valid UTF-8 (invalid byte at offset {offset}): expected UTF-8 text", file.display())]
    NotUtf8 {
        /// The file.
        file: PathBuf,
        /// Byte offset of the first invalid byte.
        offset: usize,
    },

    /// A file without any SQL statement (only whitespace or comments).
    #[error("migration file `{}` is empty: expected at least one SQL statement after the header", file.display())]
    Empty {
        /// The file.
        file: PathBuf,
    },

    /// The header's `-- Version:` disagrees with the file name.
    #[error("migration file `{}` says `-- Version: {header}` but its name says {version:03}: expected the same version", file.display())]
    HeaderVersionMismatch {
        /// The file.
        file: PathBuf,
        /// The version in the name.
        version: u64,
        /// The text after `-- Version:`.
        header: String,
    },

    /// A transactional file that manages transactions itself.
    #[error(
        "migration file `{}` line {line}: `{keyword}` is not allowed: each migration already runs in its own \
         transaction; remove it, or put `-- migrate:no-transaction` on the first line",
        file.display()
    )]
    TransactionControl {
        /// The file.
        file: PathBuf,
        /// 1-based line of the statement.
        line: usize,
        /// The keyword found (`BEGIN`, `COMMIT`, ...).
        keyword: String,
    },

    /// Several validation problems at once (each is one of the variants above).
    #[error("{} problems with the migration files:\n{}", .0.len(), join_lines(.0))]
    Invalid(Vec<MigrateError>),

    /// An applied migration whose file changed since.
    #[error(
        "migration {version:03} was modified after it was applied: `{file}` no longer matches the recorded checksum; \
         restore the file, or run `migration accept-checksum {version}` if the change is deliberate"
    )]
    ChecksumMismatch {
        /// The version.
        version: u64,
        /// The file (or Rust migration name).
        file: String,
    },

    /// An applied migration whose file is gone.
    #[error(
        "migration {version:03} ({name}) is applied but its file is missing from the migrations directory: \
         restore it, or pass --ignore-missing"
    )]
    MissingFile {
        /// The version.
        version: u64,
        /// The name recorded when it was applied.
        name: String,
    },

    /// A migration recorded as failed (a `no-transaction` migration that stopped part-way).
    #[error(
        "migration {version:03} (`{file}`) failed part-way in an earlier run (it runs without a transaction): \
         repair the database by hand, then run `migration up --retry-failed`"
    )]
    PreviouslyFailed {
        /// The version.
        version: u64,
        /// The file.
        file: String,
    },

    /// A migration that cannot be rolled back.
    #[error("migration {version:03} (`{file}`) cannot be rolled back: {reason}")]
    Irreversible {
        /// The version.
        version: u64,
        /// The file or migration name.
        file: String,
        /// Why (no rollback file, file missing, ...).
        reason: String,
    },

    /// A version given on the command line that names no migration.
    #[error("version {version:03} {what}")]
    UnknownVersion {
        /// The version asked for.
        version: u64,
        /// What is wrong with it.
        what: &'static str,
    },

    /// Another runner held the migration lock for longer than the timeout.
    #[error(
        "gave up waiting for the migration lock after {}: another migration run holds it{}; \
         retry later or raise --lock-timeout",
        human_ms(*waited),
        holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    LockTimeout {
        /// How long this runner waited.
        waited: Duration,
        /// Who holds it, when known.
        holder: Option<String>,
    },

    /// A migration failed; its transaction was rolled back and nothing of it was recorded.
    #[error(
        "migration {version:03} failed in `{file}`{}: {message}\n  statement: {}",
        location(*line, *column),
        shorten(statement)
    )]
    Failed {
        /// The version.
        version: u64,
        /// The file (or Rust migration name).
        file: String,
        /// The failing statement, as written in the file (empty when it could not be determined).
        statement: String,
        /// 1-based line in the file: of the error position when the database gave one, else of the statement.
        line: usize,
        /// 1-based column of the error position, when the database gave one.
        column: Option<usize>,
        /// The database's message, with PostgreSQL's SQLSTATE, detail, hint and context when it gives them.
        message: String,
        /// The driver's error.
        #[source]
        source: DriverError,
    },

    /// A database error outside any migration (connecting, reading the history, ...).
    #[error("database error while {context}: {source}")]
    Database {
        /// What the migrator was doing.
        context: &'static str,
        /// The driver's error (it never contains the URL).
        #[source]
        source: DriverError,
    },

    /// The connection's backend is not PostgreSQL or SQLite.
    #[error("unsupported database backend {0:?}: expected PostgreSQL or SQLite")]
    UnsupportedBackend(sea_orm::DbBackend),

    /// A file could not be written (`create`).
    #[error("cannot write `{}`: {source}", file.display())]
    Write {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },

    /// A description for a new migration that would make an empty file name.
    #[error(
        "description {description:?} has no letters or digits: expected something like \"add user preferences table\""
    )]
    InvalidDescription {
        /// The description given.
        description: String,
    },

    /// A description for a new migration with a control character (a newline would end the header's comment
    /// and leave the rest as live SQL in both files).
    #[error(
        "description {description:?} contains a control character ({found}): expected one line of text, like \"add user preferences table\""
    )]
    DescriptionControlCharacter {
        /// The description given.
        description: String,
        /// The character, escaped (`\n`, `\u{7}`).
        found: String,
    },

    /// A directory with per-backend variants loaded without saying which backend.
    #[error(
        "migration {version:03} has per-backend variants (.postgres.sql / .sqlite.sql): \
         load the directory for a backend (MigrationSet::load_for)"
    )]
    VariantsNeedBackend {
        /// The first version with variants.
        version: u64,
    },

    /// A Rust migration registered with version 0.
    #[error("rust migration `{name}` has version 0: versions start at 1")]
    VersionZero {
        /// The migration's name.
        name: String,
    },
}

fn join_lines(errors: &[MigrateError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A duration as people read it, to the millisecond (`1s 624ms`, not `1s 623us 906ns`).
fn human_ms(d: Duration) -> humantime::FormattedDuration {
    let ms = u64::try_from(d.as_micros().saturating_add(500) / 1000).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(ms))
}

fn location(line: usize, column: Option<usize>) -> String {
    match (line, column) {
        (0, _) => String::new(),
        (l, Some(c)) => format!(" at line {l}, column {c}"),
        (l, None) => format!(" at line {l}"),
    }
}

fn shorten(statement: &str) -> String {
    const MAX: usize = 400;
    if statement.is_empty() {
        return "(could not be located: the database gave no position, and nothing is run again to find it)"
            .to_owned();
    }
    match statement.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{} …", &statement[..cut]),
        None => statement.to_owned(),
    }
}

impl MigrateError {
    /// Builds [`MigrateError::Database`] from a driver error.
    pub(crate) fn db(context: &'static str, err: impl Into<DriverError>) -> Self {
        Self::Database {
            context,
            source: err.into(),
        }
    }

    /// One error when there is one, [`MigrateError::Invalid`] when there are several.
    pub(crate) fn from_many(mut errors: Vec<MigrateError>) -> Result<(), Self> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Self::Invalid(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_lock_timeout_reads_in_milliseconds() {
        let e = super::MigrateError::LockTimeout {
            waited: std::time::Duration::from_nanos(1_623_906_000),
            holder: None,
        };
        assert!(e.to_string().contains("after 1s 624ms:"), "{e}");
    }
}
