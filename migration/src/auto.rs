//! Auto-migrate (`DB_AUTO_MIGRATE`): what the service calls at start-up.
//!
//! 1. Applies the pending migrations of `DB_MIGRATE_PATH`, under the migration lock (the [`Migrator`]'s).
//! 2. Takes the lock again (on PostgreSQL), compares the database with the entities and applies the
//!    additive differences only (new tables, columns, indexes) in one transaction, logging each statement
//!    and warning that the change is not in a versioned migration yet.
//!
//! It never drops or rewrites anything: changed or extra columns and indexes are left as they are and
//! reported as warnings. A `NOT NULL` column without a default is not added to a table that has rows (the
//! statement would fail); that is reported too. The two steps each hold the lock; the differences are
//! computed after the lock is taken, so a concurrent runner's work is seen.

use std::path::Path;

use entity::registry::EntityMeta;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};
use serde::Serialize;

use crate::backend;
use crate::runner::{Migrator, Options, RunReport};
use crate::schema::check::known_objects;
use crate::schema::diff::{self, Change};
use crate::schema::{Dialect, SchemaError, ddl, generate, introspect};
use crate::source::MigrationSet;
use config::DbConfig;

/// One change auto-migrate applied, with the statements it ran.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedChange {
    /// What it did (`create table tags`).
    pub change: String,
    /// The SQL it ran.
    pub statements: Vec<String>,
}

/// What auto-migrate did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AutoReport {
    /// The versioned migrations applied.
    pub migrations: RunReport,
    /// The changes made from the entities, outside any versioned migration.
    pub applied: Vec<AppliedChange>,
    /// The warnings logged (one per entity change applied, and one per difference left alone).
    pub warnings: Vec<String>,
}

/// Auto-migrate with the configuration's migrations directory and the app's entities
/// ([`entity::registry::all`]).
///
/// # Errors
/// As [`auto_migrate_with`].
pub async fn auto_migrate(db: &DatabaseConnection, cfg: &DbConfig) -> Result<AutoReport, SchemaError> {
    auto_migrate_with(
        db,
        &cfg.migrate_path,
        &entity::registry::all(),
        Options::default(),
    )
    .await
}

/// Applies the pending migrations of `dir`, then the additive differences between the database and
/// `entities`. See the module docs.
///
/// # Errors
/// [`SchemaError::Migrate`] when a migration fails or the files are invalid (nothing from the entities is
/// applied then); [`SchemaError::Database`] when an entity change fails (none of them is kept).
pub async fn auto_migrate_with(
    db: &DatabaseConnection,
    dir: &Path,
    entities: &[EntityMeta],
    options: Options,
) -> Result<AutoReport, SchemaError> {
    let dialect = Dialect::of(db.get_database_backend())?;
    let expected = generate::schema(entities, dialect)?;
    let lock_timeout = options.lock_timeout;
    let mut report = AutoReport::default();
    let set = MigrationSet::load_for(dir, crate::source::rust_migrations(), db.get_database_backend())?;
    report.migrations = Migrator::new(set).with_options(options).up(db, None).await?;

    // The lock again (PostgreSQL's; SQLite has none), so the differences are computed after any concurrent
    // runner's work. The changes go through SeaORM, not through the backend's connection.
    let mut lock = backend::choose::for_connection(db)?;
    let on_wait = |w: &crate::lock::Waiting| {
        tracing::info!(holder = ?w.holder, "auto-migrate waits for the migration lock");
    };
    lock.lock(lock_timeout, &on_wait).await?;
    let result = apply_entity_changes(db, dir, &expected, dialect, &mut report).await;
    lock.unlock().await;
    result.map(|()| report)
}

async fn apply_entity_changes(
    db: &DatabaseConnection,
    dir: &Path,
    expected: &crate::schema::Schema,
    dialect: Dialect,
    report: &mut AutoReport,
) -> Result<(), SchemaError> {
    // Changes concern only the entities' tables; any other table counts by its name alone.
    let entity_tables = expected.tables.iter().map(|t| t.name.clone()).collect();
    let actual = introspect::read_scoped(db, introspect::Scope::Tables(&entity_tables)).await?;
    let changes = diff::changes(expected, &actual, &known_objects(dir), dialect);
    let mut todo = Vec::new();
    for c in changes {
        if !c.is_additive() {
            let w = format!(
                "auto-migrate left `{}` alone: it is not additive; write a migration \
                 (`migration create \"...\" --from-entities`)",
                c.describe()
            );
            tracing::warn!("{w}");
            report.warnings.push(w);
            continue;
        }
        if let Change::AddColumn { table, column, .. } = &c
            && diff::needs_default(column)
            && (dialect == Dialect::Sqlite || has_rows(db, table).await?)
        {
            let w = format!(
                "auto-migrate cannot add NOT NULL column {table}.{} without a default (the table has rows, \
                 or the database is SQLite): give the field a default_value, or write a migration that fills it",
                column.name
            );
            tracing::warn!("{w}");
            report.warnings.push(w);
            continue;
        }
        todo.push(c);
    }
    if todo.is_empty() {
        return Ok(());
    }
    let txn = db
        .begin()
        .await
        .map_err(|e| SchemaError::db("starting the auto-migrate transaction", e))?;
    for c in &todo {
        let statements = c.forward(dialect);
        for s in &statements {
            tracing::info!(statement = %s, "auto-migrate");
            txn.execute_unprepared(s)
                .await
                .map_err(|e| SchemaError::db(format!("auto-migrate ({})", c.describe()), e))?;
        }
        report.applied.push(AppliedChange {
            change: c.describe(),
            statements,
        });
    }
    txn.commit()
        .await
        .map_err(|e| SchemaError::db("committing the auto-migrate transaction", e))?;
    for c in &todo {
        let w = format!(
            "auto-migrate applied `{}` from the entities; this change is not in a versioned migration yet: \
             run `migration create \"<description>\" --from-entities` and commit the files",
            c.describe()
        );
        tracing::warn!("{w}");
        report.warnings.push(w);
    }
    Ok(())
}

async fn has_rows(db: &DatabaseConnection, table: &str) -> Result<bool, SchemaError> {
    let sql = format!("SELECT 1 FROM {} LIMIT 1", ddl::ident(table));
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .map(|r| r.is_some())
        .map_err(|e| SchemaError::db(format!("checking whether {table} has rows"), e))
}
