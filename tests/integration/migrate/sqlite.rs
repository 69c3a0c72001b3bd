//! SQLite as the subject: each migration runs in its own transaction there too, and Rust migrations join the
//! plan in version order.

use migration::sea_orm_migration::async_trait::async_trait;
use migration::sea_orm_migration::{MigrationName, MigrationTrait, SchemaManager};
use migration::{MigrateError, MigrationSet, Migrator, RustMigration};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use super::support::MigDir;

async fn sqlite_tables(db: &DatabaseConnection) -> Vec<String> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name".to_owned(),
        ))
        .await
        .expect("list tables");
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("name"))
        .collect()
}

#[tokio::test]
async fn a_failing_sqlite_migration_is_rolled_back_and_not_recorded() {
    let db = collex_tests::sqlite_memory().await;
    let dir = MigDir::new();
    dir.pair(
        1,
        "a",
        "CREATE TABLE a (id integer PRIMARY KEY);",
        "DROP TABLE a;",
    );
    dir.pair(
        2,
        "b",
        "CREATE TABLE b (id integer PRIMARY KEY);\nINSERT INTO b VALUES (1);\nINSERT INTO nope VALUES (1);",
        "DROP TABLE b;",
    );
    let migrator = Migrator::new(MigrationSet::load(dir.path(), Vec::new()).expect("valid files"));

    let err = migrator.up(&db, None).await.expect_err("002 fails");
    let MigrateError::Failed {
        version,
        file,
        statement,
        line,
        message,
        ..
    } = &err
    else {
        panic!("expected Failed, got {err:?}");
    };
    assert_eq!((*version, file.as_str()), (2, "002_b.sql"));
    assert_eq!(statement, "INSERT INTO nope VALUES (1)");
    assert_eq!(*line, 8);
    assert!(message.contains("no such table: nope"), "{message}");

    assert_eq!(
        sqlite_tables(&db).await,
        vec!["a", "collex_migrations"],
        "b was rolled back"
    );
    let status = migrator.status(&db).await.expect("status");
    assert_eq!(status.applied, 1);
    assert_eq!(status.pending, 1);
}

#[derive(Debug)]
struct CreateRustTable;

impl MigrationName for CreateRustTable {
    fn name(&self) -> &str {
        "create_rust_table"
    }
}

#[async_trait]
impl MigrationTrait for CreateRustTable {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        // Depends on 001 (SQL) and is needed by 003 (SQL): proves the order.
        manager
            .get_connection()
            .execute_unprepared("CREATE TABLE from_rust (id integer PRIMARY KEY REFERENCES a (id))")
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE from_rust")
            .await
            .map(|_| ())
    }
}

async fn rust_migration_joins_the_plan(db: &DatabaseConnection) {
    let dir = MigDir::new();
    dir.pair(
        1,
        "a",
        "CREATE TABLE a (id integer PRIMARY KEY);",
        "DROP TABLE a;",
    );
    dir.pair(
        3,
        "c",
        "CREATE INDEX from_rust_id ON from_rust (id);",
        "DROP INDEX from_rust_id;",
    );
    let set =
        MigrationSet::load(dir.path(), vec![RustMigration::new(2, CreateRustTable)]).expect("valid plan");
    let migrator = Migrator::new(set);

    let report = migrator.up(db, None).await.expect("up");
    let order: Vec<u64> = report.steps.iter().map(|s| s.version).collect();
    assert_eq!(order, vec![1, 2, 3]);
    let status = migrator.status(db).await.expect("status");
    assert_eq!(status.migrations[1].kind, "rust");
    assert_eq!(
        status.migrations[1].file.as_deref(),
        Some("rust:create_rust_table")
    );

    let report = migrator
        .down(db, migration::DownTarget::To(0))
        .await
        .expect("down");
    let order: Vec<u64> = report.steps.iter().map(|s| s.version).collect();
    assert_eq!(order, vec![3, 2, 1]);
}

#[tokio::test]
async fn a_rust_migration_runs_between_sql_files_on_sqlite() {
    let db = collex_tests::sqlite_memory().await;
    rust_migration_joins_the_plan(&db).await;
    assert_eq!(sqlite_tables(&db).await, vec!["collex_migrations"]);
}

#[tokio::test]
async fn a_rust_migration_runs_between_sql_files_on_postgres() {
    let pg = collex_tests::PgTestDb::new().await;
    let db = pg.connect().await;
    rust_migration_joins_the_plan(&db).await;
    assert_eq!(super::support::tables(&db).await, vec!["collex_migrations"]);
}

#[test]
fn a_rust_migration_cannot_share_a_version_with_a_file() {
    let dir = MigDir::new();
    dir.pair(2, "b", "SELECT 1;", "SELECT 1;");
    let err =
        MigrationSet::load(dir.path(), vec![RustMigration::new(2, CreateRustTable)]).expect_err("duplicate");
    assert_eq!(
        err.to_string(),
        "migration version 002 is used twice, by `002_b.sql` and `rust:create_rust_table`: each version must be unique"
    );
}
