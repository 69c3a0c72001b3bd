#![doc = include_str!("../README.md")]

pub mod auto;
mod backend;
pub mod backup;
pub mod create;
mod diagnosis;
pub mod dialect;
pub mod error;
pub mod ledger;
pub mod lock;
pub mod plan;
pub mod runner;
pub mod schema;
pub mod source;
pub mod statements;

pub use auto::{AutoReport, auto_migrate, auto_migrate_with};
pub use backup::{BackupError, BackupOptions, Snapshot};
pub use create::create;
pub use dialect::Dialect;
pub use error::{DriverError, MigrateError};
pub use plan::{Direction, DownTarget, HistoryProblem, State, StatusEntry, StatusReport};
pub use runner::{DEFAULT_LOCK_TIMEOUT, Event, Migrator, Options, Reporter, RunReport, Step, apply_pending};
pub use schema::SchemaError;
pub use schema::check::{drift_of, drift_with, known_from};
pub use schema::diff::Drift;
/// sea-orm-migration, for writing Rust migrations ([`sea_orm_migration::MigrationTrait`]) without another dependency.
pub use sea_orm_migration;
pub use source::{MigrationSet, RustMigration, rust_migrations};
