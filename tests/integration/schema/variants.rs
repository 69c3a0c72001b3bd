//! Per-backend migration variants (`NNN_x.postgres.sql` / `NNN_x.sqlite.sql`): the runner picks the one of
//! the connected backend, and records a version without a variant for it with nothing to run.

use migration::{DownTarget, MigrateError, MigrationSet, Migrator};
use sea_orm::DbBackend;

use super::support::{TempDir, text};

fn variants_dir() -> TempDir {
    let dir = TempDir::new();
    dir.write("001_base.sql", "CREATE TABLE base (id integer PRIMARY KEY);");
    dir.write("001_rollback.sql", "DROP TABLE base;");
    dir.write("002_kind.postgres.sql", "CREATE TABLE kind_pg (id integer);");
    dir.write("002_rollback.postgres.sql", "DROP TABLE kind_pg;");
    dir.write("002_kind.sqlite.sql", "CREATE TABLE kind_lite (id integer);");
    dir.write("002_rollback.sqlite.sql", "DROP TABLE kind_lite;");
    dir.write("003_pg_only.postgres.sql", "CREATE TABLE pg_only (id integer);");
    dir.write("003_rollback.postgres.sql", "DROP TABLE pg_only;");
    dir
}

#[tokio::test]
async fn each_backend_runs_its_own_variant_and_skips_versions_without_one() {
    let dir = variants_dir();

    let lite = super::support::sqlite().await;
    let set = MigrationSet::load_for(dir.path(), Vec::new(), DbBackend::Sqlite).expect("valid");
    let m = Migrator::new(set);
    let report = m.up(&lite, None).await.expect("up on SQLite");
    assert_eq!(
        report.steps.len(),
        3,
        "the PostgreSQL-only version is recorded too"
    );
    assert!(
        report.steps[2].label.contains("no sqlite variant"),
        "{:?}",
        report.steps
    );
    let tables = text(
        &lite,
        "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name <> 'collex_migrations' ORDER BY name)",
    )
    .await;
    assert_eq!(tables.as_deref(), Some("base,kind_lite"));
    m.down(&lite, DownTarget::To(0)).await.expect("down on SQLite");

    let test_db = collex_tests::PgTestDb::new().await;
    let pg = test_db.connect().await;
    let set = MigrationSet::load_for(dir.path(), Vec::new(), DbBackend::Postgres).expect("valid");
    Migrator::new(set).up(&pg, None).await.expect("up on PostgreSQL");
    let tables = text(
        &pg,
        "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables \
         WHERE schemaname = current_schema() AND tablename <> 'collex_migrations'",
    )
    .await;
    assert_eq!(tables.as_deref(), Some("base,kind_pg,pg_only"));
}

#[test]
fn variants_are_validated_and_need_a_backend() {
    let dir = variants_dir();
    let err = MigrationSet::load(dir.path(), Vec::new()).expect_err("no backend given");
    assert!(err.to_string().contains("per-backend variants"), "{err}");

    dir.write("002_kind.sql", "SELECT 1;");
    let err = MigrationSet::load_for(dir.path(), Vec::new(), DbBackend::Sqlite).expect_err("mixed");
    assert!(
        err.to_string()
            .contains("version 002 is used twice, by `002_kind.sql` and `002_kind.postgres.sql`"),
        "{err}"
    );
    std::fs::remove_file(dir.path().join("002_kind.sql")).expect("remove");

    dir.write("004_rollback.sqlite.sql", "SELECT 1;");
    let err = MigrationSet::load_for(dir.path(), Vec::new(), DbBackend::Postgres).expect_err("orphan");
    assert!(
        matches!(err, MigrateError::RollbackWithoutForward { version: 4, .. }),
        "{err}"
    );
}
