#![doc = include_str!("../README.md")]

pub mod auto;
pub mod create;
pub mod error;
pub mod ledger;
pub mod lock;
pub mod migrator;
pub mod schema;
pub mod source;
pub mod statements;

pub use auto::{AutoReport, auto_migrate, auto_migrate_with};
pub use create::create;
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
