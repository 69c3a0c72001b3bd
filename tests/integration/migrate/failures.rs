//! A failing migration leaves no trace of itself, those before it stay, and the error names the file, the
//! statement and the database's message with its line.

use collex_tests::PgTestDb;

use super::support::{MigDir, exists, history, run};

const BROKEN_003: &str = "CREATE TABLE t3 (id bigserial PRIMARY KEY);\nCREATE INDEX t3_id ON t3 (id);\nINSERT INTO t3 (id)\n    SELECT missing_column FROM t1;";

#[tokio::test]
async fn migration_3_of_5_fails_then_applies_after_the_fix() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(5);
    dir.pair(3, "create_t3", BROKEN_003, "DROP TABLE t3;");

    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    // The header takes 5 lines, so the failing reference sits on line 9, column 12 of the file.
    assert!(
        out.stderr
            .contains("migration 003 failed in `003_create_t3.sql` at line 9, column 12"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("column \"missing_column\" does not exist"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("statement: INSERT INTO t3 (id)\n    SELECT missing_column FROM t1"),
        "{}",
        out.stderr
    );
    assert_eq!(history(&db).await, vec![1, 2]);
    assert!(!exists(&db, "t3").await, "no object of 003 remains");
    assert!(!exists(&db, "t3_id").await, "no object of 003 remains");
    assert!(!exists(&db, "t4").await);

    dir.pair(
        3,
        "create_t3",
        "CREATE TABLE t3 (id bigserial PRIMARY KEY);\nCREATE INDEX t3_id ON t3 (id);",
        "DROP TABLE t3;",
    );
    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(history(&db).await, vec![1, 2, 3, 4, 5]);
    assert!(exists(&db, "t3_id").await && exists(&db, "t5").await);
}

#[tokio::test]
async fn an_error_without_a_position_still_names_its_statement() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(1);
    // "already exists" carries no position: the runner finds the statement by a rolled-back replay.
    dir.pair(
        2,
        "dup",
        "CREATE TABLE t2 (id int);\nCREATE TABLE t1 (id int);\nCREATE TABLE t3 (id int);",
        "SELECT 1;",
    );

    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("`002_dup.sql` at line 7"), "{}", out.stderr);
    assert!(
        out.stderr.contains("relation \"t1\" already exists"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("statement: CREATE TABLE t1 (id int)"),
        "{}",
        out.stderr
    );
    assert_eq!(history(&db).await, vec![1]);
    assert!(!exists(&db, "t2").await, "the replay was rolled back too");
}

#[tokio::test]
async fn no_transaction_files_run_statement_by_statement_for_concurrent_indexes() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(1);
    dir.write(
        "002_index.sql",
        "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY t1_name ON t1 (name);\n",
    );
    dir.write(
        "002_rollback.sql",
        "-- migrate:no-transaction\nDROP INDEX CONCURRENTLY t1_name;\n",
    );

    assert_eq!(run(pg.url(), dir.path(), &["up"]).await.code, 0);
    assert!(exists(&db, "t1_name").await);
    assert_eq!(history(&db).await, vec![1, 2]);
    assert_eq!(run(pg.url(), dir.path(), &["down"]).await.code, 0);
    assert!(!exists(&db, "t1_name").await);

    // Without the directive PostgreSQL refuses, and the message says what to do.
    dir.write(
        "002_index.sql",
        "CREATE INDEX CONCURRENTLY t1_name ON t1 (name);\n",
    );
    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("-- migrate:no-transaction"), "{}", out.stderr);
}

#[tokio::test]
async fn a_no_transaction_migration_that_stops_part_way_is_marked_failed_until_retried() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(1);
    dir.write(
        "002_indexes.sql",
        "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY t1_name ON t1 (name);\nCREATE INDEX CONCURRENTLY t9_name ON t9 (name);\n",
    );

    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("`002_indexes.sql` at line 3: relation \"t9\" does not exist"),
        "{}",
        out.stderr
    );
    assert!(
        exists(&db, "t1_name").await,
        "without a transaction the first statement stays"
    );

    let out = run(pg.url(), dir.path(), &["status", "--json"]).await;
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(json["migrations"][1]["problems"], serde_json::json!(["failed"]));

    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("migration 002 (`002_indexes.sql`) failed part-way in an earlier run"),
        "{}",
        out.stderr
    );

    // Repaired by hand (the file made idempotent), then retried.
    dir.write(
        "002_indexes.sql",
        "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t1_name ON t1 (name);\n",
    );
    let out = run(pg.url(), dir.path(), &["up", "--retry-failed"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(history(&db).await, vec![1, 2]);
    let out = run(pg.url(), dir.path(), &["status", "--json"]).await;
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(json["problems"], 0);
}

#[tokio::test]
async fn a_failed_migration_keeps_the_database_error_as_its_source() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(2);
    dir.pair(3, "create_t3", BROKEN_003, "DROP TABLE t3;");
    let set = migration::MigrationSet::load_for(dir.path(), Vec::new(), sea_orm::DbBackend::Postgres)
        .expect("valid files");
    let err = migration::Migrator::new(set)
        .up(&db, None)
        .await
        .expect_err("003 fails");
    assert!(
        matches!(err, migration::MigrateError::Failed { version: 3, .. }),
        "{err}"
    );
    // The caller can reach PostgreSQL's own error (its SQLSTATE), not only a message.
    let source = std::error::Error::source(&err).expect("the driver error is the source");
    let driver = source
        .downcast_ref::<migration::DriverError>()
        .expect("a DriverError");
    let migration::DriverError::Sqlx(sqlx_err) = driver else {
        panic!("expected sqlx's error: {driver:?}")
    };
    let sea_orm::sqlx::Error::Database(db_err) = sqlx_err.as_ref() else {
        panic!("expected a database error: {sqlx_err:?}")
    };
    assert_eq!(db_err.code().as_deref(), Some("42703"), "undefined column");
}

#[tokio::test]
async fn a_lock_timeout_is_reported_without_running_the_file_again() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.pair(
        1,
        "t",
        "CREATE TABLE t (id int);\nCREATE SEQUENCE runs;",
        "DROP TABLE t;",
    );
    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 0, "{out:?}");

    // Another session holds the table; the migration's ALTER gives up on lock_timeout (no error position).
    let holder = pg.connect().await;
    let txn = sea_orm::TransactionTrait::begin(&holder).await.expect("begin");
    sea_orm::ConnectionTrait::execute_unprepared(&txn, "LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock t");
    // A sequence ignores rollback: its value counts how often the file ran.
    dir.pair(
        2,
        "alter",
        "SET lock_timeout = '300ms';\nSELECT nextval('runs');\nALTER TABLE t ADD COLUMN x int;",
        "SELECT 1;",
    );
    let out = run(pg.url(), dir.path(), &["up"]).await;
    txn.rollback().await.expect("release t");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("lock timeout"), "{}", out.stderr);
    assert!(
        out.stderr.contains("statement: ALTER TABLE t ADD COLUMN x int"),
        "{}",
        out.stderr
    );
    assert_eq!(
        super::support::text(&db, "SELECT last_value::text FROM runs")
            .await
            .as_deref(),
        Some("1"),
        "the file ran once"
    );
    assert_eq!(history(&db).await, vec![1]);
}
