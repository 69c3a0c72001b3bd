//! The CLI's commands: create, dry runs, a status that never writes, down variants, redo, fresh and reset
//! confirmation, the lock timeout, exit codes.

use collex_tests::PgTestDb;
use sea_orm::ConnectionTrait;

use super::support::{MigDir, exists, history, run, tables, text};

#[tokio::test]
async fn create_writes_the_next_pair_with_the_header_and_prints_their_paths() {
    let dir = MigDir::new();
    dir.tables(2);
    let out = run(
        "sqlite::memory:",
        dir.path(),
        &["create", "Add user preferences table"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let forward = dir.path().join("003_add_user_preferences_table.sql");
    let rollback = dir.path().join("003_rollback.sql");
    assert!(
        out.stdout.contains(&forward.display().to_string()),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&rollback.display().to_string()),
        "{}",
        out.stdout
    );
    let text = std::fs::read_to_string(&forward).expect("forward file");
    assert!(
        text.starts_with("-- Migration: Add User Preferences Table\n-- Version: 003\n"),
        "{text}"
    );
    assert!(
        text.contains("-- Description: Add user preferences table\n-- Created: 20"),
        "{text}"
    );
    let back = std::fs::read_to_string(&rollback).expect("rollback file");
    assert!(
        back.starts_with("-- Rollback Migration: Add User Preferences Table\n-- Version: 003\n"),
        "{back}"
    );
}

#[tokio::test]
async fn dry_run_prints_the_sql_in_order_and_changes_nothing() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(2);

    let out = run(pg.url(), dir.path(), &["up", "--dry-run"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let first = out.stdout.find("CREATE TABLE t1").expect("t1's SQL is printed");
    let second = out.stdout.find("CREATE TABLE t2").expect("t2's SQL is printed");
    assert!(first < second, "in version order: {}", out.stdout);
    assert!(
        tables(&db).await.is_empty(),
        "not even the history table was created"
    );

    assert_eq!(run(pg.url(), dir.path(), &["up"]).await.code, 0);
    let out = run(pg.url(), dir.path(), &["down", "--to", "0", "--dry-run"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let t2 = out
        .stdout
        .find("DROP TABLE t2")
        .expect("t2's rollback is printed");
    let t1 = out
        .stdout
        .find("DROP TABLE t1")
        .expect("t1's rollback is printed");
    assert!(t2 < t1, "newest first: {}", out.stdout);
    assert!(exists(&db, "t1").await && exists(&db, "t2").await);
    assert_eq!(history(&db).await, vec![1, 2]);
}

#[tokio::test]
async fn status_never_writes_even_to_a_read_only_database() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(2);

    let out = run(pg.url(), dir.path(), &["status"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("001") && out.stdout.contains("pending"),
        "{}",
        out.stdout
    );
    assert!(tables(&db).await.is_empty(), "status created nothing");

    assert_eq!(run(pg.url(), dir.path(), &["up", "-n", "1"]).await.code, 0);
    // Any write would now fail: status must still work.
    db.execute_unprepared(&format!(
        r#"ALTER DATABASE "{}" SET default_transaction_read_only = on"#,
        pg.name()
    ))
    .await
    .expect("make the database read-only");
    let out = run(pg.url(), dir.path(), &["status", "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("status --json is JSON");
    assert_eq!(json["migrations"][0]["state"], "applied");
    assert_eq!(json["migrations"][1]["state"], "pending");
    assert_eq!(json["applied"], 1);
}

#[tokio::test]
async fn history_records_checksum_duration_who_and_success() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(1);
    assert_eq!(run(pg.url(), dir.path(), &["up"]).await.code, 0);
    let file = std::fs::read_to_string(dir.path().join("001_create_t1.sql")).expect("file");
    // The SHA-256 of the file's bytes, computed independently by PostgreSQL.
    let sha = text(
        &db,
        &format!(
            "SELECT encode(sha256(convert_to('{}', 'UTF8')), 'hex')",
            file.replace('\'', "''")
        ),
    )
    .await
    .expect("sha");
    let user = text(&db, "SELECT current_user::text").await.expect("user");
    let row = text(
        &db,
        "SELECT name || '|' || kind || '|' || checksum || '|' || (execution_ms >= 0) || '|' || applied_by || '|' \
         || success || '|' || (applied_at <= now()) FROM collex_migrations",
    )
    .await
    .expect("one row");
    assert_eq!(
        row,
        format!(
            "create_t1|sql|{sha}|true|{user}@{}|true|true",
            migration::ledger::host_name()
        )
    );
}

#[tokio::test]
async fn down_through_a_version_rolls_it_back_with_everything_above_newest_first() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(4);
    assert_eq!(run(pg.url(), dir.path(), &["up"]).await.code, 0);

    let out = run(pg.url(), dir.path(), &["down", "--through", "002"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let plan = out
        .stdout
        .find("rolling back 3 migration(s), newest first")
        .expect("plan printed first");
    let order: Vec<usize> = ["rolled back 004", "rolled back 003", "rolled back 002"]
        .iter()
        .map(|s| out.stdout.find(s).expect(s))
        .collect();
    assert!(
        plan < order[0] && order[0] < order[1] && order[1] < order[2],
        "{}",
        out.stdout
    );
    assert_eq!(history(&db).await, vec![1]);

    let out = run(pg.url(), dir.path(), &["down"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(history(&db).await, Vec::<i64>::new());

    let out = run(pg.url(), dir.path(), &["down", "--through", "7"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("version 007 is not applied"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn redo_rolls_back_and_reapplies_the_latest() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(2);
    assert_eq!(run(pg.url(), dir.path(), &["up"]).await.code, 0);
    db.execute_unprepared("INSERT INTO t2 (name) VALUES ('gone after redo')")
        .await
        .expect("insert");

    let out = run(pg.url(), dir.path(), &["redo"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(history(&db).await, vec![1, 2]);
    assert_eq!(
        text(&db, "SELECT count(*)::text FROM t2").await.as_deref(),
        Some("0")
    );
}

#[tokio::test]
async fn fresh_and_reset_require_yes_without_a_terminal() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(2);
    assert_eq!(run(pg.url(), dir.path(), &["up"]).await.code, 0);
    db.execute_unprepared("CREATE TABLE stray (x int)")
        .await
        .expect("stray table");

    for cmd in ["fresh", "reset"] {
        let out = run(pg.url(), dir.path(), &[cmd]).await;
        assert_eq!(out.code, 2, "{out:?}");
        assert!(out.stderr.contains("pass --yes"), "{}", out.stderr);
    }
    assert_eq!(tables(&db).await, vec!["collex_migrations", "stray", "t1", "t2"]);

    let out = run(pg.url(), dir.path(), &["fresh", "--yes"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        tables(&db).await,
        vec!["collex_migrations", "t1", "t2"],
        "fresh dropped the stray table"
    );

    let out = run(pg.url(), dir.path(), &["reset", "--yes"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(tables(&db).await, vec!["collex_migrations"]);
}

#[tokio::test]
async fn a_runner_waits_for_the_lock_says_so_and_gives_up_after_the_timeout() {
    let pg = PgTestDb::new().await;
    let holder = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(1);
    // Hold the lock on a single dedicated connection (a pool could release it on another one).
    let holder_conn = {
        let mut opts = sea_orm::ConnectOptions::new(pg.url().to_owned());
        opts.max_connections(1).min_connections(1).sqlx_logging(false);
        sea_orm::Database::connect(opts).await.expect("holder connection")
    };
    holder_conn
        .execute_unprepared(&format!(
            "SELECT pg_advisory_lock({})",
            migration::lock::ADVISORY_KEY
        ))
        .await
        .expect("take the lock");

    let out = run(pg.url(), dir.path(), &["--lock-timeout", "300ms", "up"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("waiting for the migration lock"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("gave up waiting for the migration lock after"),
        "{}",
        out.stderr
    );
    assert!(tables(&holder).await.is_empty(), "nothing ran without the lock");

    holder_conn.close().await.expect("release by closing");
    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(history(&holder).await, vec![1]);
}

#[tokio::test]
async fn usage_errors_exit_with_2() {
    let dir = MigDir::new();
    let out = run(
        "sqlite::memory:",
        dir.path(),
        &["down", "--to", "1", "--through", "2"],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    let out = run("sqlite::memory:", dir.path(), &["sideways"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    let out = run("sqlite::memory:", dir.path(), &["create", "!!!"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("has no letters or digits"), "{}", out.stderr);
}

#[tokio::test]
async fn an_unreachable_server_is_reported_with_its_reason_and_target_not_as_a_pool_timeout() {
    let dir = MigDir::new();
    dir.tables(1);
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("postgres://postgres:s3cret-pw@127.0.0.1:{port}/collex?sslmode=disable");
    let out = run(&url, dir.path(), &["status"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("Connection refused"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{port}/collex")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("pool timed out"), "{}", out.stderr);
    assert!(!out.stderr.contains("s3cret-pw"), "{}", out.stderr);
}
