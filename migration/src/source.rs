//! The migrations to run: hand-written SQL pairs loaded from `DB_MIGRATE_PATH` and Rust migrations, validated
//! as a whole and merged into one plan ordered by version.
//!
//! Loading reads every file before anything runs and reports every problem at once (malformed names, duplicate
//! versions, a rollback without its forward file, unreadable, non-UTF-8 or empty files, a header whose version
//! disagrees with the name, transaction control inside a transactional file). Talking to the database is not
//! this module's business.
//!
//! A version may come as per-backend variants, `NNN_description.postgres.sql` / `NNN_description.sqlite.sql`
//! with `NNN_rollback.postgres.sql` / `NNN_rollback.sqlite.sql`, instead of one pair for every backend: the
//! schema generated from the entities differs per dialect. [`MigrationSet::load_for`] picks the variant of the backend.
//!
//! A loaded set also keeps the text of every `.sql` file it read ([`MigrationSet::files_read`]), so the drift
//! check (`crate::schema`) need not read the directory a second time; what the files mean for drift is not
//! decided here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use sea_orm_migration::MigrationTrait;
use sha2::{Digest, Sha256};

use crate::dialect::Dialect;
use crate::error::MigrateError;
use crate::statements::{self, Statement};

/// First-line directive that runs a file outside a transaction (for `CREATE INDEX CONCURRENTLY`).
pub const NO_TRANSACTION: &str = "-- migrate:no-transaction";

/// The spec's header, as found at the top of a file (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// `-- Migration:` (or `-- Rollback Migration:`) title.
    pub migration: Option<String>,
    /// `-- Version:` text.
    pub version: Option<String>,
    /// `-- Description:` text.
    pub description: Option<String>,
    /// `-- Created:` text.
    pub created: Option<String>,
}

/// One SQL file, read and checked.
#[derive(Debug, Clone)]
pub struct SqlFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The file name (`003_add_tags.sql`).
    pub file_name: String,
    /// The text as on disk, without a UTF-8 byte-order mark (which PostgreSQL would read as part of the
    /// first word).
    pub sql: String,
    /// Lower-case hex SHA-256 of the text without a byte-order mark and with CRLF line endings read as LF, so
    /// a Windows checkout (`core.autocrlf`) or an editor's BOM does not count as an edit.
    pub checksum: String,
    /// Whether the first line opts out of the transaction.
    pub no_transaction: bool,
    /// The header fields.
    pub header: Header,
    /// The statements, for no-transaction runs and error reports.
    pub statements: Vec<Statement>,
}

impl SqlFile {
    /// Reads and checks one file; `version` comes from its name.
    ///
    /// # Errors
    /// [`MigrateError::Unreadable`], [`MigrateError::NotUtf8`],
    /// [`MigrateError::HeaderVersionMismatch`] or [`MigrateError::TransactionControl`].
    pub fn read(path: &Path, version: u64) -> Result<Self, MigrateError> {
        let bytes = std::fs::read(path).map_err(|source| MigrateError::Unreadable {
            file: path.to_owned(),
            source,
        })?;
        Self::from_bytes(path, version, bytes)
    }

    /// Checks the bytes of a file named `path` (not read from disk: for plans built in memory).
    ///
    /// # Errors
    /// As [`SqlFile::read`], but for [`MigrateError::Unreadable`].
    pub fn from_bytes(path: &Path, version: u64, bytes: Vec<u8>) -> Result<Self, MigrateError> {
        let bom = if bytes.starts_with(BOM) { BOM.len() } else { 0 };
        let checksum = normalized_checksum(&bytes[bom..]);
        let mut bytes = bytes;
        bytes.drain(..bom);
        let sql = String::from_utf8(bytes).map_err(|e| MigrateError::NotUtf8 {
            file: path.to_owned(),
            offset: bom + e.utf8_error().valid_up_to(),
        })?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let header = parse_header(&sql);
        if let Some(text) = &header.version
            && text.trim().parse::<u64>().ok() != Some(version)
        {
            return Err(MigrateError::HeaderVersionMismatch {
                file: path.to_owned(),
                version,
                header: text.clone(),
            });
        }
        let no_transaction = sql
            .lines()
            .next()
            .is_some_and(|l| l.trim().eq_ignore_ascii_case(NO_TRANSACTION));
        // An empty file (a fresh `migration create` template) loads: `status` lists it as one to fill in,
        // and `up` (or `down`, for a rollback) refuses it when it would run.
        let stmts = statements::split(&sql);
        if !no_transaction {
            for s in &stmts {
                if let Some(keyword) = statements::transaction_control(&sql, s) {
                    return Err(MigrateError::TransactionControl {
                        file: path.to_owned(),
                        line: statements::line_col(&sql, s.start).0,
                        keyword,
                    });
                }
            }
        }
        Ok(Self {
            path: path.to_owned(),
            file_name,
            sql,
            checksum,
            no_transaction,
            header,
            statements: stmts,
        })
    }
}

/// A UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// SHA-256 of `bytes` with every CRLF read as LF.
fn normalized_checksum(bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    let mut rest = bytes;
    while let Some(at) = rest.windows(2).position(|w| w == b"\r\n") {
        hasher.update(&rest[..at]);
        rest = &rest[at + 1..];
    }
    hasher.update(rest);
    hex::encode(hasher.finalize())
}

impl SqlFile {
    /// Whether the file has no statement (only white space and comments, as `migration create` writes it).
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// [`MigrateError::Empty`] for this file when [it is empty](SqlFile::is_empty).
    ///
    /// # Errors
    /// [`MigrateError::Empty`].
    pub fn require_statements(&self) -> Result<(), MigrateError> {
        if self.is_empty() {
            return Err(MigrateError::Empty {
                file: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Whether `recorded` is this file's checksum: the current one, or one that runners before checksums
    /// were normalised recorded over the raw bytes of this text with or without a byte-order mark, with LF or
    /// CRLF line endings (a file applied from a Windows checkout, then converted). Computed only on a
    /// mismatch, so the common case costs nothing.
    pub fn checksum_matches(&self, recorded: &str) -> bool {
        if self.checksum == recorded {
            return true;
        }
        let lf = self.sql.replace("\r\n", "\n");
        let crlf = lf.replace('\n', "\r\n");
        [self.sql.as_str(), &lf, &crlf].iter().any(|text| {
            [&b""[..], BOM].iter().any(|bom| {
                let mut h = Sha256::new();
                h.update(bom);
                h.update(text.as_bytes());
                hex::encode(h.finalize()) == recorded
            })
        })
    }
}

fn parse_header(sql: &str) -> Header {
    let mut h = Header::default();
    for line in sql.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let Some(body) = t.strip_prefix("--") else { break };
        let Some((key, value)) = body.split_once(':') else {
            continue;
        };
        let value = Some(value.trim().to_owned());
        match key.trim().to_ascii_lowercase().as_str() {
            "migration" | "rollback migration" => h.migration = value,
            "version" => h.version = value,
            "description" => h.description = value,
            "created" => h.created = value,
            _ => {}
        }
    }
    h
}

/// A parsed migration file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    /// The version (`003` → 3).
    pub version: u64,
    /// Digits as written, to keep the width in new files.
    pub digits: usize,
    /// The description part (`add_tags`), `rollback` for rollback files.
    pub description: String,
    /// Whether this is `NNN_rollback.sql`.
    pub rollback: bool,
    /// The backend of a per-backend variant (`NNN_description.postgres.sql`); `None` for every backend.
    pub dialect: Option<Dialect>,
}

/// Parses `NNN_description.sql` / `NNN_rollback.sql`, optionally with a backend infix
/// (`NNN_description.postgres.sql`, `NNN_rollback.sqlite.sql`); `None` when malformed.
pub fn parse_file_name(name: &str) -> Option<FileName> {
    let stem = name.strip_suffix(".sql")?;
    let (stem, dialect) = match stem.rsplit_once('.') {
        Some((s, "postgres")) => (s, Some(Dialect::Postgres)),
        Some((s, "sqlite")) => (s, Some(Dialect::Sqlite)),
        _ => (stem, None),
    };
    let (digits, description) = stem.split_once('_')?;
    if digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if description.is_empty()
        || !description
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return None;
    }
    let version: u64 = digits.parse().ok()?;
    if version == 0 {
        return None;
    }
    Some(FileName {
        version,
        digits: digits.len(),
        description: description.to_owned(),
        rollback: description == "rollback",
        dialect,
    })
}

/// A hand-written migration: the forward file and, when present, its rollback.
#[derive(Debug, Clone)]
pub struct SqlMigration {
    /// The version.
    pub version: u64,
    /// The description part of the file name.
    pub name: String,
    /// `NNN_description.sql`.
    pub forward: SqlFile,
    /// `NNN_rollback.sql`, when there is one.
    pub rollback: Option<SqlFile>,
}

/// One `.sql` file of a migrations directory as it was read: its name, its text and its statements.
#[derive(Debug, Clone)]
pub struct ReadFile {
    /// The file name.
    pub name: String,
    /// The text.
    pub sql: String,
    /// Its statements, as [`statements::split`] finds them.
    pub statements: Vec<Statement>,
}

/// Reads and validates every migration file in `dir` for the backend `dialect`.
///
/// A version is either one file pair for every backend (`NNN_description.sql` + `NNN_rollback.sql`) or
/// per-backend variants (`NNN_description.postgres.sql` + `NNN_rollback.postgres.sql`, `.sqlite.sql`). The
/// variant for `dialect` is the one that runs; when a version has variants but none for `dialect` (a
/// PostgreSQL-only trigger on SQLite), it is applied and recorded with nothing to run. Every variant is read
/// and validated whatever the backend.
///
/// Returns the migrations, plus every `.sql` file read on the way (other backends' variants and `.`-files
/// included).
///
/// # Errors
/// Every problem found, as one error or [`MigrateError::Invalid`]; [`MigrateError::VariantsNeedBackend`]
/// when `dialect` is `None` and the directory has variants.
fn scan_dir(
    dir: &Path,
    dialect: Option<Dialect>,
) -> Result<(Vec<SqlMigration>, Vec<ReadFile>), MigrateError> {
    let mut read = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| MigrateError::Directory {
        path: dir.to_owned(),
        source,
    })?;
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| MigrateError::Directory {
            path: dir.to_owned(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".sql") {
            // `009_x.SQL` looks like a migration to its author: refused, never silently skipped.
            if name.to_ascii_lowercase().ends_with(".sql") && !name.starts_with('.') {
                errors.push(MigrateError::MalformedName {
                    file: dir.join(&name),
                });
            }
            continue;
        }
        if name.starts_with('.') {
            // Not a migration, but the drift check knows what it creates.
            if let Ok(sql) = std::fs::read_to_string(entry.path()) {
                read.push(ReadFile {
                    statements: statements::split(&sql),
                    name,
                    sql,
                });
            }
            continue;
        }
        names.push(name);
    }
    names.sort();

    type Slot = BTreeMap<(u64, Option<Dialect>), (String, Option<SqlFile>)>;
    let mut forwards: Slot = BTreeMap::new();
    let mut rollbacks: Slot = BTreeMap::new();
    for name in names {
        let path = dir.join(&name);
        let Some(parsed) = parse_file_name(&name) else {
            errors.push(MigrateError::MalformedName { file: path });
            continue;
        };
        let slot = if parsed.rollback {
            &mut rollbacks
        } else {
            &mut forwards
        };
        let key = (parsed.version, parsed.dialect);
        if let Some((first, _)) = slot.get(&key) {
            errors.push(MigrateError::DuplicateVersion {
                version: parsed.version,
                first: first.clone(),
                second: name,
            });
            continue;
        }
        let file = match SqlFile::read(&path, parsed.version) {
            Ok(f) => {
                read.push(ReadFile {
                    name: f.file_name.clone(),
                    sql: f.sql.clone(),
                    statements: f.statements.clone(),
                });
                Some(f)
            }
            Err(e) => {
                errors.push(e);
                None
            }
        };
        slot.insert(key, (name, file));
    }
    for ((version, d), (name, _)) in &rollbacks {
        if !forwards.contains_key(&(*version, *d)) {
            errors.push(MigrateError::RollbackWithoutForward {
                version: *version,
                file: dir.join(name),
            });
        }
    }
    // A version is either for every backend or per backend, never both.
    for ((version, d), (name, _)) in &forwards {
        if d.is_some()
            && let Some((plain, _)) = forwards.get(&(*version, None))
        {
            errors.push(MigrateError::DuplicateVersion {
                version: *version,
                first: plain.clone(),
                second: name.clone(),
            });
        }
    }
    MigrateError::from_many(errors)?;

    let versions: BTreeSet<u64> = forwards.keys().map(|(v, _)| *v).collect();
    let mut out = Vec::with_capacity(versions.len());
    for version in versions {
        // Keys sort by version, then `None` before the variants: one look past `(version, None)`.
        let has_variants = forwards
            .range((version, Some(Dialect::Postgres))..)
            .next()
            .is_some_and(|((v, _), _)| *v == version);
        let key = if has_variants {
            let Some(d) = dialect else {
                return Err(MigrateError::VariantsNeedBackend { version });
            };
            (version, Some(d))
        } else {
            (version, None)
        };
        let Some((name, file)) = forwards.remove(&key) else {
            // Variants exist, none for this backend: applied and recorded with nothing to run.
            let (other, _) = forwards
                .iter()
                .find(|((v, _), _)| *v == version)
                .map(|(_, f)| f.clone())
                .unwrap_or_default();
            let description = parse_file_name(&other).map(|p| p.description).unwrap_or_default();
            let d = dialect.map_or("this backend", Dialect::as_str);
            let noop = nothing_to_run(dir, version, &description, d);
            out.push(SqlMigration {
                version,
                name: description,
                forward: noop.clone(),
                rollback: Some(noop),
            });
            continue;
        };
        let Some(forward) = file else { continue };
        let rollback = rollbacks.remove(&key).and_then(|(_, f)| f);
        let description = parse_file_name(&name).map(|p| p.description).unwrap_or_default();
        out.push(SqlMigration {
            version,
            name: description,
            forward,
            rollback,
        });
    }
    Ok((out, read))
}

/// The stand-in for a per-backend migration without a variant for this backend: one harmless statement,
/// so the runner records the version like any other.
fn nothing_to_run(dir: &Path, version: u64, description: &str, dialect: &str) -> SqlFile {
    let sql = format!("-- migration {version:03} has no variant for {dialect}: nothing to run\nSELECT 1\n");
    let file_name = format!("{version:03}_{description} (no {dialect} variant)");
    SqlFile {
        path: dir.join(&file_name),
        checksum: hex::encode(Sha256::digest(sql.as_bytes())),
        statements: statements::split(&sql),
        file_name,
        sql,
        no_transaction: false,
        header: Header::default(),
    }
}

/// The Rust migrations that join the SQL files in the plan, each with its version.
///
/// Empty for now: entity-derived migrations are registered here.
pub fn rust_migrations() -> Vec<RustMigration> {
    Vec::new()
}

/// A Rust migration (sea-orm-migration's [`MigrationTrait`]) with its place in the plan.
pub struct RustMigration {
    /// The version, in the same sequence as the SQL files.
    pub version: u64,
    /// The migration.
    pub migration: Box<dyn MigrationTrait>,
}

impl RustMigration {
    /// Pairs a migration with its version.
    pub fn new(version: u64, migration: impl MigrationTrait + 'static) -> Self {
        Self {
            version,
            migration: Box::new(migration),
        }
    }
}

impl fmt::Debug for RustMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustMigration")
            .field("version", &self.version)
            .field("name", &self.migration.name())
            .finish()
    }
}

/// What a migration is made of.
#[derive(Debug)]
#[non_exhaustive]
#[expect(
    clippy::large_enum_variant,
    reason = "a plan holds hundreds of these at most; boxing buys nothing"
)]
pub enum Body {
    /// A hand-written SQL pair.
    Sql {
        /// The forward file.
        forward: SqlFile,
        /// The rollback file, when there is one.
        rollback: Option<SqlFile>,
    },
    /// A Rust migration.
    Rust(RustMigration),
}

/// One step of the plan.
#[derive(Debug)]
pub struct Migration {
    /// The version.
    pub version: u64,
    /// The name (file description, or the Rust migration's name).
    pub name: String,
    /// The SQL or Rust body.
    pub body: Body,
}

impl Migration {
    /// The checksum recorded in the history: the forward file's SHA-256, or for a Rust migration the SHA-256 of
    /// its name (a Rust migration's code cannot be hashed; renaming it counts as a change).
    pub fn checksum(&self) -> String {
        match &self.body {
            Body::Sql { forward, .. } => forward.checksum.clone(),
            Body::Rust(_) => hex::encode(Sha256::digest(format!("rust:{}", self.name).as_bytes())),
        }
    }

    /// Whether a checksum recorded in the history is this migration's: the current one, or for a SQL file the
    /// one recorded before checksums ignored a byte-order mark and CRLF line endings.
    pub fn checksum_matches(&self, recorded: &str) -> bool {
        match &self.body {
            Body::Sql { forward, .. } => forward.checksum_matches(recorded),
            Body::Rust(_) => self.checksum() == recorded,
        }
    }

    /// How errors and status name it: the forward file name, or `rust:<name>`.
    pub fn label(&self) -> String {
        match &self.body {
            Body::Sql { forward, .. } => forward.file_name.clone(),
            Body::Rust(_) => format!("rust:{}", self.name),
        }
    }

    /// `sql` or `rust`, as recorded in the history.
    pub fn kind(&self) -> &'static str {
        match &self.body {
            Body::Sql { .. } => "sql",
            Body::Rust(_) => "rust",
        }
    }
}

/// The whole plan, ordered by version, versions unique.
#[derive(Debug, Default)]
pub struct MigrationSet {
    migrations: Vec<Migration>,
    digits: usize,
    /// Every `.sql` file read, when loaded from a directory.
    files_read: Option<Vec<ReadFile>>,
}

impl MigrationSet {
    /// Merges SQL and Rust migrations.
    ///
    /// # Errors
    /// [`MigrateError::DuplicateVersion`] when a Rust migration shares a version with another migration.
    pub fn new(sql: Vec<SqlMigration>, rust: Vec<RustMigration>) -> Result<Self, MigrateError> {
        let mut by_version: BTreeMap<u64, Migration> = BTreeMap::new();
        let mut errors = Vec::new();
        let mut digits = 3;
        for m in sql {
            digits = digits.max(
                parse_file_name(&m.forward.file_name)
                    .map(|p| p.digits)
                    .unwrap_or(3),
            );
            by_version.insert(
                m.version,
                Migration {
                    version: m.version,
                    name: m.name,
                    body: Body::Sql {
                        forward: m.forward,
                        rollback: m.rollback,
                    },
                },
            );
        }
        for r in rust {
            let name = r.migration.name().to_owned();
            if r.version == 0 {
                errors.push(MigrateError::VersionZero { name });
                continue;
            }
            if let Some(existing) = by_version.get(&r.version) {
                errors.push(MigrateError::DuplicateVersion {
                    version: r.version,
                    first: existing.label(),
                    second: format!("rust:{name}"),
                });
                continue;
            }
            by_version.insert(
                r.version,
                Migration {
                    version: r.version,
                    name,
                    body: Body::Rust(r),
                },
            );
        }
        MigrateError::from_many(errors)?;
        Ok(Self {
            migrations: by_version.into_values().collect(),
            digits,
            files_read: None,
        })
    }

    /// Loads the SQL files of `dir` and merges `rust` into them.
    ///
    /// # Errors
    /// See [`MigrationSet::load_for`] and [`MigrationSet::new`]; a directory with per-backend variants needs
    /// `load_for`.
    pub fn load(dir: &Path, rust: Vec<RustMigration>) -> Result<Self, MigrateError> {
        let (sql, read) = scan_dir(dir, None)?;
        Ok(Self {
            files_read: Some(read),
            ..Self::new(sql, rust)?
        })
    }

    /// Loads the SQL files of `dir` for `backend` (picking per-backend variants, see [`scan_dir`]) and
    /// merges `rust` into them.
    ///
    /// # Errors
    /// Every problem of the files at once (see [`scan_dir`]), those of [`MigrationSet::new`], and
    /// [`MigrateError::UnsupportedBackend`] for MySQL.
    pub fn load_for(
        dir: &Path,
        rust: Vec<RustMigration>,
        backend: sea_orm::DbBackend,
    ) -> Result<Self, MigrateError> {
        let (sql, read) = scan_dir(dir, Some(Dialect::of(backend)?))?;
        Ok(Self {
            files_read: Some(read),
            ..Self::new(sql, rust)?
        })
    }

    /// The migrations in version order.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// The migration with `version`.
    pub fn get(&self, version: u64) -> Option<&Migration> {
        self.migrations
            .binary_search_by_key(&version, |m| m.version)
            .ok()
            .map(|i| &self.migrations[i])
    }

    /// Every `.sql` file of the directory as it was read (other backends' variants and `.`-files included),
    /// for the drift check; `None` for a set not loaded from a directory ([`MigrationSet::new`]).
    pub fn files_read(&self) -> Option<&[ReadFile]> {
        self.files_read.as_deref()
    }

    /// Width of version numbers in file names (at least 3).
    pub fn digits(&self) -> usize {
        self.digits
    }
}
