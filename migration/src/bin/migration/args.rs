//! The command line's arguments and their help, variables and exit codes included.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use config::vars::{self, Scope};

/// What `--help` adds after the options: the variables that pick the database, and the exit codes.
fn after_help() -> String {
    format!(
        "The database: DATABASE_URL when set; else the DB_* connection variables (setting any of them selects \
         PostgreSQL); else SQLite in ./collex.db.\n\n{}\nExit codes:\n  \
         0  success\n  \
         1  a migration, a snapshot, the database or the wait for the migration lock failed\n  \
         2  usage, configuration or validation error, a snapshot that fails its checksum (nothing was changed)\n  \
         3  status --check found something pending, modified, missing, failed or drifted; lint found what \
         stops distribution by business_id",
        vars::help(
            "Environment variables (name, default, meaning):",
            &[Scope::Database]
        )
    )
}

/// Applies, rolls back and inspects the Collex database migrations: hand-written SQL files and the schema
/// the entities declare, with a checksummed history and a lock so runners take turns.
#[derive(Debug, Parser)]
#[command(name = "migration", version, after_help = after_help())]
pub struct Cli {
    /// Migrations directory [default: DB_MIGRATE_PATH, else `migrations`].
    #[arg(long, global = true, value_name = "DIR")]
    pub path: Option<PathBuf>,

    /// Accepted before the command too (`migration --lock-timeout 30s up`), as earlier versions took it.
    #[arg(long, hide = true, value_parser = humantime::parse_duration)]
    pub lock_timeout: Option<Duration>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The lock wait of the commands that take the migration lock.
#[derive(Debug, Clone, Copy, Args)]
pub struct LockArgs {
    /// How long to wait for another runner's migration lock, e.g. `30s`, `2m` [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub lock_timeout: Option<Duration>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations in version order.
    Up {
        /// Apply at most N migrations.
        #[arg(short = 'n', long = "steps", value_name = "N")]
        n: Option<usize>,
        /// Print the SQL that would run, in order, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Continue although applied migrations have no file any more.
        #[arg(long)]
        ignore_missing: bool,
        /// Re-run a no-transaction migration recorded as failed (after repairing the database by hand).
        #[arg(long)]
        retry_failed: bool,
        /// Take a snapshot first (as `migration backup`) when anything is pending; a failed snapshot stops
        /// with exit 1 before anything is applied. DB_BACKUP_BEFORE_MIGRATE=true does the same.
        #[arg(long)]
        backup: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Roll back applied migrations, newest first (default: the latest one).
    Down {
        /// Roll back the latest N migrations.
        #[arg(short = 'n', long = "steps", value_name = "N", conflicts_with_all = ["to", "through"])]
        n: Option<usize>,
        /// Roll back everything applied above VERSION (VERSION itself stays; 0 rolls back everything).
        #[arg(long, value_name = "VERSION", conflicts_with = "through")]
        to: Option<u64>,
        /// Roll back VERSION and everything applied above it.
        #[arg(long, value_name = "VERSION")]
        through: Option<u64>,
        /// Print the SQL that would run, in order, and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Show every migration: applied or pending, when, how long, and problems, and whether the schema
    /// matches the entities (drift). Never writes.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Exit with code 3 when anything is pending, modified, missing, failed or drifted (for CI).
        #[arg(long)]
        check: bool,
    },
    /// Create the next NNN_<description>.sql and NNN_rollback.sql with the header.
    Create {
        /// What the migration does, e.g. "add user preferences table".
        description: String,
        /// Write the difference between the entities and the replayed migrations instead of an empty
        /// template, as `.postgres.sql` and `.sqlite.sql` variants; writes nothing when nothing differs.
        #[arg(long)]
        from_entities: bool,
    },
    /// Roll back the latest migration and apply it again.
    Redo {
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Drop every object in the schema, then apply every migration (destructive).
    Fresh {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Roll back every applied migration (destructive).
    Reset {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Write a snapshot of the database into DB_BACKUP_DIR (pg_dump -Fc on PostgreSQL, VACUUM INTO on
    /// SQLite) with a manifest (schema version, sha256, size, duration, tool versions); DB_BACKUP_KEEP=N then
    /// keeps the newest N of this database.
    Backup {
        #[command(flatten)]
        lock: LockArgs,
    },
    /// List the snapshots in DB_BACKUP_DIR, oldest first, with their schema versions.
    Backups,
    /// Replace the database with a snapshot, after checking it against its manifest (destructive).
    Restore {
        /// The snapshot file (or its `.manifest.json`).
        file: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Print the Citus script that distributes the entities' tables by business_id (reference tables for
    /// tables without it, colocated distributed tables parents first). Needs no database.
    CitusPlan,
    /// Check the database's tables for distribution by business_id (Citus): every primary, unique and
    /// foreign key of a table with business_id must contain it, unless an entity declares the unique column
    /// #[global_unique]. Exit 3 when something would stop the distribution.
    Lint {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create or drop the configured database: the PostgreSQL database (through the server's `postgres`
    /// database) or the SQLite file.
    Database {
        #[command(subcommand)]
        action: DatabaseAction,
    },
    /// Accept the current checksum of an applied migration whose file was deliberately edited.
    AcceptChecksum {
        /// The migration's version.
        version: u64,
        #[command(flatten)]
        lock: LockArgs,
    },
}

/// `migration database …`.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum DatabaseAction {
    /// Create the configured database; nothing to do when it exists.
    Create,
    /// Drop the configured database with everything in it (destructive).
    Drop {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

impl Cli {
    /// The lock wait: the command's `--lock-timeout`, else the one given before the command, else 60 s.
    pub fn lock_timeout(&self) -> Duration {
        let own = match &self.command {
            Command::Up { lock, .. }
            | Command::Down { lock, .. }
            | Command::Redo { lock }
            | Command::Fresh { lock, .. }
            | Command::Reset { lock, .. }
            | Command::AcceptChecksum { lock, .. }
            | Command::Backup { lock }
            | Command::Restore { lock, .. } => lock.lock_timeout,
            Command::Status { .. }
            | Command::Create { .. }
            | Command::Backups
            | Command::CitusPlan
            | Command::Lint { .. }
            | Command::Database { .. } => None,
        };
        own.or(self.lock_timeout)
            .unwrap_or(migration::DEFAULT_LOCK_TIMEOUT)
    }
}
