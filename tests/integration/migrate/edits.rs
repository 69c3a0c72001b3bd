//! Applied migrations whose files changed or disappeared: reported by `status`, refused by `up`.

use collex_tests::PgTestDb;

use super::support::{MigDir, history, run};

#[tokio::test]
async fn editing_applied_002_is_reported_as_modified_and_up_refuses_with_exit_2() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(3);
    assert_eq!(run(pg.url(), dir.path(), &["up"]).await.code, 0);

    dir.pair(
        2,
        "create_t2",
        "CREATE TABLE t2 (id bigserial PRIMARY KEY, name text NOT NULL DEFAULT 'y');",
        "DROP TABLE t2;",
    );
    dir.pair(4, "create_t4", "CREATE TABLE t4 (id int);", "DROP TABLE t4;");

    let out = run(pg.url(), dir.path(), &["status"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("002"))
        .expect("a line for 002");
    assert!(line.contains("applied") && line.ends_with("modified"), "{line}");
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("001"))
        .expect("a line for 001");
    assert!(!line.contains("modified"), "{line}");

    let out = run(pg.url(), dir.path(), &["status", "--json"]).await;
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(json["migrations"][1]["version"], 2);
    assert_eq!(json["migrations"][1]["problems"], serde_json::json!(["modified"]));
    assert_eq!(json["migrations"][0]["problems"], serde_json::json!([]));
    assert_eq!(json["problems"], 1);

    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("migration 002 was modified after it was applied: `002_create_t2.sql`"),
        "{}",
        out.stderr
    );
    assert_eq!(history(&db).await, vec![1, 2, 3], "004 was not applied");

    let out = run(pg.url(), dir.path(), &["accept-checksum", "2"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(history(&db).await, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn an_applied_migration_without_its_file_is_missing_and_blocks_up_unless_ignored() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(2);
    assert_eq!(run(pg.url(), dir.path(), &["up"]).await.code, 0);
    std::fs::remove_file(dir.path().join("002_create_t2.sql")).expect("remove");
    std::fs::remove_file(dir.path().join("002_rollback.sql")).expect("remove");
    dir.pair(3, "create_t3", "CREATE TABLE t3 (id int);", "DROP TABLE t3;");

    let out = run(pg.url(), dir.path(), &["status", "--json"]).await;
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(json["migrations"][1]["problems"], serde_json::json!(["missing"]));
    assert_eq!(json["migrations"][1]["file"], serde_json::Value::Null);

    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("migration 002 (create_t2) is applied but its file is missing"),
        "{}",
        out.stderr
    );
    assert_eq!(history(&db).await, vec![1, 2]);

    let out = run(pg.url(), dir.path(), &["up", "--ignore-missing"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(history(&db).await, vec![1, 2, 3]);
}
