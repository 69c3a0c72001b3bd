//! `migration create "<description>" --from-entities`: replays the existing migrations into a throwaway
//! shadow database, compares its schema with the entities, and writes the difference as the next migration,
//! one variant per dialect (`NNN_slug.postgres.sql` + `NNN_rollback.postgres.sql`, `.sqlite.sql` likewise).
//!
//! The SQLite variant always comes from a replay into an in-memory SQLite database. The PostgreSQL variant
//! comes from a replay into a database created next to the configured one (`CREATE DATABASE`, dropped
//! afterwards) when PostgreSQL is configured; otherwise the changes found on SQLite are written in
//! PostgreSQL's terms (a column type change, which SQLite cannot show, is then not detected for PostgreSQL).
//! When nothing differs, nothing is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use entity::registry::EntityMeta;
use sea_orm::sqlx::postgres::PgPoolOptions;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, SqlxPostgresConnector, SqlxSqliteConnector};

use super::check::{GENERATED_BANNER, known_objects};
use super::diff::{self, Change};
use super::{Dialect, Schema, SchemaError, generate, introspect};
use crate::create::{next_version, slug, title, write_new};
use crate::error::MigrateError;
use crate::runner::{Migrator, Options};
use crate::source::MigrationSet;

/// What `create --from-entities` wrote.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The new version.
    pub version: u64,
    /// The files written, forward before rollback, PostgreSQL before SQLite.
    pub files: Vec<PathBuf>,
    /// The changes per dialect (a dialect without changes has no files).
    pub changes: BTreeMap<Dialect, Vec<Change>>,
}

/// Replays the migrations of `dir` into a shadow database of `dialect` and returns its schema.
/// For PostgreSQL, `pg` is the connection used to create and drop the shadow database.
///
/// # Errors
/// [`SchemaError::Shadow`] when the shadow database cannot be created; [`SchemaError::Migrate`] when a
/// migration fails to replay.
pub async fn shadow_schema(
    dir: &Path,
    dialect: Dialect,
    pg: Option<&DatabaseConnection>,
) -> Result<Schema, SchemaError> {
    match (dialect, pg) {
        (Dialect::Postgres, Some(db)) if db.get_database_backend() == DbBackend::Postgres => {
            pg_shadow(db, dir).await
        }
        (Dialect::Postgres, _) => Err(SchemaError::ShadowNeedsPostgres),
        (Dialect::Sqlite, _) => {
            let db = sqlite_memory().await?;
            let result = async {
                replay(&db, dir).await?;
                introspect::read(&db).await
            }
            .await;
            let _ = db.close().await;
            result
        }
    }
}

/// A private in-memory SQLite database (one connection, kept open, so the data lives as long as the pool).
///
/// # Errors
/// [`SchemaError::Database`] when SQLite cannot be opened.
pub async fn sqlite_memory() -> Result<DatabaseConnection, SchemaError> {
    let opts = SqliteConnectOptions::from_str("sqlite::memory:")
        .map_err(|e| SchemaError::db("opening an in-memory SQLite database", e))?
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(opts)
        .await
        .map_err(|e| SchemaError::db("opening an in-memory SQLite database", e))?;
    Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}

async fn replay(db: &DatabaseConnection, dir: &Path) -> Result<(), SchemaError> {
    let set = MigrationSet::load_for(dir, crate::source::rust_migrations(), db.get_database_backend())?;
    Migrator::new(set)
        .with_options(Options::default())
        .up(db, None)
        .await?;
    Ok(())
}

async fn pg_shadow(db: &DatabaseConnection, dir: &Path) -> Result<Schema, SchemaError> {
    let opts = db
        .get_postgres_connection_pool()
        .connect_options()
        .as_ref()
        .clone();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let name = format!(
        "collex_shadow_{}_{}",
        std::process::id(),
        suffix.get(..12).unwrap_or("0")
    );
    db.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .map_err(|e| SchemaError::Shadow {
            name: name.clone(),
            source: e.into(),
        })?;
    let result = async {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(opts.database(&name))
            .await
            .map_err(|e| SchemaError::Shadow {
                name: name.clone(),
                source: e.into(),
            })?;
        let shadow = SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
        let result = async {
            replay(&shadow, dir).await?;
            introspect::read(&shadow).await
        }
        .await;
        let _ = shadow.close().await;
        result
    }
    .await;
    // Dropped whatever happened: the shadow is never left behind.
    let _ = db
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
    result
}

/// The changes that bring the replayed migrations of `dir` to `entities`, per dialect.
///
/// # Errors
/// As [`shadow_schema`] and [`generate::schema`].
pub async fn pending_changes(
    dir: &Path,
    entities: &[EntityMeta],
    pg: Option<&DatabaseConnection>,
) -> Result<BTreeMap<Dialect, Vec<Change>>, SchemaError> {
    let known = known_objects(dir);
    let mut out = BTreeMap::new();
    let lite_expected = generate::schema(entities, Dialect::Sqlite)?;
    let lite_actual = shadow_schema(dir, Dialect::Sqlite, None).await?;
    let lite = diff::changes(&lite_expected, &lite_actual, &known, Dialect::Sqlite);
    let pg_expected = generate::schema(entities, Dialect::Postgres)?;
    let pg_changes = match pg.filter(|db| db.get_database_backend() == DbBackend::Postgres) {
        Some(db) => {
            let actual = shadow_schema(dir, Dialect::Postgres, Some(db)).await?;
            diff::changes(&pg_expected, &actual, &known, Dialect::Postgres)
        }
        None => translate(&lite, &pg_expected),
    };
    out.insert(Dialect::Postgres, pg_changes);
    out.insert(Dialect::Sqlite, lite);
    Ok(out)
}

/// SQLite-derived changes restated with the PostgreSQL definitions of the same objects.
fn translate(changes: &[Change], pg: &Schema) -> Vec<Change> {
    changes
        .iter()
        .flat_map(|c| match c {
            Change::CreateTable { table } => pg
                .table(&table.name)
                .map(|t| Change::CreateTable { table: t.clone() })
                .into_iter()
                .collect(),
            Change::AddColumn {
                table,
                column,
                foreign_key,
            } => pg
                .table(table)
                .and_then(|t| t.column(&column.name))
                .map(|col| Change::AddColumn {
                    table: table.clone(),
                    column: col.clone(),
                    foreign_key: foreign_key.clone(),
                })
                .into_iter()
                .collect(),
            // The previous PostgreSQL type is unknown without a PostgreSQL replay.
            Change::AlterColumn { .. } => Vec::new(),
            Change::RebuildTables { tables } => rekey_pg(tables, pg),
            other => vec![other.clone()],
        })
        .collect()
}

/// A SQLite rebuild restated as PostgreSQL's in-place key changes, in the order they apply: foreign keys
/// dropped, primary keys replaced, foreign keys added, then indexes.
fn rekey_pg(tables: &[diff::Rebuild], pg: &Schema) -> Vec<Change> {
    let mut drops = Vec::new();
    let mut keys = Vec::new();
    let mut adds = Vec::new();
    let mut indexes = Vec::new();
    for r in tables {
        let Some(to) = pg.table(&r.to.name) else { continue };
        for f in r
            .from
            .foreign_keys
            .iter()
            .filter(|f| !to.foreign_keys.iter().any(|t| t.same_as(f)))
        {
            let mut fk = f.clone();
            if fk.name.is_empty() {
                // SQLite keeps no name: the one the generator gives a single-column key.
                fk.name = format!("fk_{}_{}", to.name, fk.columns.join("_"));
            }
            drops.push(Change::DropForeignKey {
                table: to.name.clone(),
                foreign_key: fk,
            });
        }
        if r.from.primary_key != to.primary_key {
            keys.push(Change::SetPrimaryKey {
                table: to.name.clone(),
                from: r.from.primary_key.clone(),
                to: to.primary_key.clone(),
            });
        }
        for f in to
            .foreign_keys
            .iter()
            .filter(|t| !r.from.foreign_keys.iter().any(|f| f.same_as(t)))
        {
            adds.push(Change::AddForeignKey {
                table: to.name.clone(),
                foreign_key: f.clone(),
            });
        }
        for i in &r.from.indexes {
            match to.index(&i.name) {
                None => indexes.push(Change::DropIndex { index: i.clone() }),
                Some(t) if !t.same_definition(i) => indexes.push(Change::ReplaceIndex {
                    from: i.clone(),
                    to: t.clone(),
                }),
                Some(_) => {}
            }
        }
        for t in to.indexes.iter().filter(|t| r.from.index(&t.name).is_none()) {
            indexes.push(Change::CreateIndex { index: t.clone() });
        }
    }
    drops.into_iter().chain(keys).chain(adds).chain(indexes).collect()
}

/// Writes the next migration holding the difference between the replayed migrations of `dir` and
/// `entities`; `Ok(None)` (and nothing written) when nothing differs.
///
/// # Errors
/// [`MigrateError::InvalidDescription`] for a description without letters or digits, file errors, and those of
/// [`pending_changes`].
pub async fn create_from_entities(
    dir: &Path,
    description: &str,
    entities: &[EntityMeta],
    pg: Option<&DatabaseConnection>,
) -> Result<Option<Generated>, SchemaError> {
    crate::create::check_description(description)?;
    let slug = slug(description);
    if slug.is_empty() {
        return Err(MigrateError::InvalidDescription {
            description: description.to_owned(),
        }
        .into());
    }
    std::fs::create_dir_all(dir).map_err(|source| MigrateError::Write {
        file: dir.to_owned(),
        source,
    })?;
    let changes = pending_changes(dir, entities, pg).await?;
    if changes.values().all(Vec::is_empty) {
        return Ok(None);
    }

    let (version, digits) = next_version(dir);
    let nnn = format!("{version:0digits$}");
    let created = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let head = Head {
        title: title(description),
        nnn: nnn.clone(),
        description: description.trim().to_owned(),
        created,
    };
    let mut files = Vec::new();
    for (dialect, list) in &changes {
        let forward: Vec<(String, Vec<String>)> =
            list.iter().map(|c| (c.describe(), c.forward(*dialect))).collect();
        if !forward
            .iter()
            .any(|(_, s)| s.iter().any(|x| !x.starts_with("--")))
        {
            continue;
        }
        let rollback: Vec<(String, Vec<String>)> = list
            .iter()
            .rev()
            .map(|c| (format!("undo: {}", c.describe()), c.rollback(*dialect)))
            .collect();
        let d = dialect.as_str();
        let fwd_path = dir.join(format!("{nnn}_{slug}.{d}.sql"));
        let rb_path = dir.join(format!("{nnn}_rollback.{d}.sql"));
        let fwd_text = render(&head, false, *dialect, &forward);
        let rb_text = render(&head, true, *dialect, &rollback);
        for (path, text) in [(fwd_path, fwd_text), (rb_path, rb_text)] {
            if let Err(e) = write_new(&path, &text) {
                for f in &files {
                    let _ = std::fs::remove_file(f);
                }
                return Err(e.into());
            }
            files.push(path);
        }
    }
    Ok(Some(Generated {
        version,
        files,
        changes,
    }))
}

struct Head {
    title: String,
    nnn: String,
    description: String,
    created: String,
}

fn render(head: &Head, rollback: bool, dialect: Dialect, parts: &[(String, Vec<String>)]) -> String {
    let mut out = String::new();
    if rollback {
        out.push_str(&format!(
            "-- Rollback Migration: {}\n-- Version: {}\n-- Description: Rollback {}\n-- Created: {}\n",
            head.title, head.nnn, head.description, head.created
        ));
    } else {
        out.push_str(&format!(
            "-- Migration: {}\n-- Version: {}\n-- Description: {}\n-- Created: {}\n",
            head.title, head.nnn, head.description, head.created
        ));
    }
    out.push_str(&format!(
        "--\n{GENERATED_BANNER} ({} variant), from the entities\n\
         -- compared with the migrations before it. Review it; to regenerate, delete the {} files of version {}\n\
         -- and run: make migrate-create FROM_ENTITIES=1 DESC=\"{}\"\n",
        dialect.as_str(),
        dialect.as_str(),
        head.nnn,
        head.description.replace('"', "'")
    ));
    let mut any = false;
    for (what, stmts) in parts {
        if stmts.is_empty() {
            continue;
        }
        out.push_str(&format!("\n-- {what}\n"));
        for s in stmts {
            any |= !s.starts_with("--");
            out.push_str(s);
            out.push('\n');
        }
    }
    if !any {
        // A file needs one statement; SQLite cannot undo some changes in place.
        out.push_str("\n-- nothing to undo in this dialect\nSELECT 1;\n");
    }
    out
}
