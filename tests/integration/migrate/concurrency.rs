//! Many runners at once: the advisory lock makes them take turns, and each migration is applied once.

use collex_tests::PgTestDb;

use super::support::{MigDir, Run, command, history, text};

#[tokio::test]
async fn eight_concurrent_runners_on_an_empty_database_apply_each_migration_exactly_once() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    // Every migration logs itself into `applied_log`: a second application would add a second row.
    dir.pair(
        1,
        "log",
        "CREATE TABLE applied_log (version int NOT NULL);\nINSERT INTO applied_log VALUES (1);",
        "DROP TABLE applied_log;",
    );
    for v in 2..=5u32 {
        dir.pair(
            v,
            &format!("create_t{v}"),
            // The sleep keeps a migration running while the other runners arrive.
            &format!(
                "CREATE TABLE t{v} (id bigserial PRIMARY KEY);\nSELECT pg_sleep(0.05);\nINSERT INTO applied_log VALUES ({v});"
            ),
            &format!("DROP TABLE t{v};"),
        );
    }

    let children: Vec<_> = (0..8)
        .map(|_| command(pg.url(), dir.path(), &["up"]).output())
        .collect();
    let outputs = futures::future::join_all(children).await;
    for out in outputs {
        let run: Run = out.expect("runner started").into();
        assert_eq!(run.code, 0, "{run:?}");
    }

    assert_eq!(history(&db).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        text(
            &db,
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM applied_log"
        )
        .await
        .as_deref(),
        Some("1,2,3,4,5")
    );
    for v in 2..=5 {
        assert!(super::support::exists(&db, &format!("t{v}")).await);
    }
}

/// Waits until a backend other than `db`'s own runs a query containing `needle`.
async fn wait_for_query(db: &sea_orm::DatabaseConnection, needle: &str) {
    let sql = format!(
        "SELECT count(*)::text FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE '%{needle}%'"
    );
    for _ in 0..600 {
        if text(db, &sql).await.as_deref() != Some("0") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no backend ran {needle} within 30 s");
}

#[tokio::test]
async fn a_rerun_right_after_kill_9_waits_for_the_orphaned_migration_and_ends_with_exit_0() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.pair(
        1,
        "slow",
        "SELECT pg_sleep(2);\nCREATE TABLE slow (id int);",
        "DROP TABLE slow;",
    );
    dir.pair(2, "t2", "CREATE TABLE t2 (id int);", "DROP TABLE t2;");

    let mut child = command(pg.url(), dir.path(), &["up"])
        .spawn()
        .expect("start the runner");
    wait_for_query(&db, "pg_sleep(2)").await;
    // SIGKILL: the runner's connections close, the server still runs migration 1's query.
    child.start_kill().expect("kill -9");
    child.wait().await.expect("reaped");

    let out: Run = command(pg.url(), dir.path(), &["up"])
        .output()
        .await
        .expect("rerun")
        .into();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(history(&db).await, vec![1, 2]);
}
