//! The `migration` crate: configuration, connection and the Collex migrator.
//!
//! The migrator runs hand-written SQL pairs (`NNN_description.sql` + `NNN_rollback.sql` in `DB_MIGRATE_PATH`)
//! and Rust migrations ([`rust_migrations`]) as one plan ordered by version, keeps its own history table
//! (`collex_migrations`: checksum, duration, who, success), serialises runners with a PostgreSQL advisory lock,
//! and runs each migration in its own transaction on PostgreSQL and SQLite.
//!
//! ```no_run
//! # async fn example(db: &sea_orm::DatabaseConnection) -> Result<(), migration::MigrateError> {
//! use migration::{MigrationSet, Migrator, Options};
//! let set = MigrationSet::load("migrations".as_ref(), migration::rust_migrations())?;
//! let report = Migrator::new(set).with_options(Options::default()).up(db, None).await?;
//! println!("{} applied", report.steps.len());
//! # Ok(()) }
//! ```

pub mod auto;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod ledger;
pub mod lock;
pub mod migrator;
pub mod schema;
pub mod source;
pub mod statements;

pub use auto::{AutoReport, auto_migrate, auto_migrate_with};
pub use error::MigrateError;
pub use migrator::{
    DEFAULT_LOCK_TIMEOUT, Direction, DownTarget, Event, Migrator, Options, Problem, Reporter, RunReport,
    State, StatusEntry, StatusReport, Step, apply_pending,
};
pub use schema::check::{drift_of, drift_with};
pub use schema::diff::Drift;
pub use schema::{Dialect, SchemaError};
/// sea-orm-migration, for writing Rust migrations ([`sea_orm_migration::MigrationTrait`]) without another dependency.
pub use sea_orm_migration;
pub use source::{MigrationSet, RustMigration};

/// The Rust migrations that join the SQL files in the plan, each with its version.
///
/// Empty for now: entity-derived migrations are registered here.
pub fn rust_migrations() -> Vec<RustMigration> {
    Vec::new()
}
