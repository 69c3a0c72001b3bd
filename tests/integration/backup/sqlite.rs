//! Snapshots on SQLite: `VACUUM INTO` in, the file swapped back out.

use std::collections::BTreeMap;
use std::path::Path;

use collex_tests::TempDir;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

use super::support::{corrupt, manifest, only_snapshot, pair, run, snapshots};

const SCHEMA: &str = "CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    note TEXT,
    balance REAL,
    blob BLOB
);
CREATE TABLE entries (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    amount INTEGER NOT NULL,
    memo TEXT
);";

const ROWS: &str = "INSERT INTO accounts (name, note, balance, blob) VALUES
    ('ann', 'first', 12.5, X'00ff10'), ('bob', NULL, -3, NULL), ('cy', 'quote '' and tab	', 0, X'');
INSERT INTO entries (account_id, amount, memo) VALUES (1, 10, 'x'), (1, -4, NULL), (2, 7, 'é ü 日本');";

async fn open(file: &Path) -> DatabaseConnection {
    let mut o = sea_orm::ConnectOptions::new(format!("sqlite://{}", file.display()));
    o.sqlx_logging(false).max_connections(1);
    Database::connect(o).await.expect("open sqlite")
}

async fn q(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    db.query_all_raw(Statement::from_string(DbBackend::Sqlite, sql.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| {
            r.try_get_by_index::<Option<String>>(0)
                .expect("text")
                .unwrap_or_default()
        })
        .collect()
}

/// Every row of every table, each column as SQLite's own literal (`quote()`), in rowid order.
async fn all_rows(db: &DatabaseConnection) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for t in q(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .await
    {
        let cols = q(
            db,
            &format!("SELECT name FROM pragma_table_info('{t}') ORDER BY cid"),
        )
        .await;
        let expr = cols
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        out.insert(
            t.clone(),
            q(db, &format!("SELECT {expr} FROM \"{t}\" ORDER BY rowid")).await,
        );
    }
    out
}

#[tokio::test]
async fn sqlite_restore_brings_back_every_row_and_the_history_after_a_migration_dropped_a_column() {
    let work = TempDir::new();
    let migs = TempDir::new();
    let backups = TempDir::new();
    let file = work.path().join("app.db");
    let url = format!("sqlite://{}", file.display());
    pair(
        &migs,
        1,
        "accounts",
        SCHEMA,
        "DROP TABLE entries; DROP TABLE accounts;",
    );
    let up = run(&url, migs.path(), backups.path(), &["up"]).await;
    assert_eq!(up.code, 0, "{up:?}");
    let db = open(&file).await;
    db.execute_unprepared(ROWS).await.expect("rows");
    let before = all_rows(&db).await;
    assert!(
        before.len() >= 3 && before.values().all(|r| !r.is_empty()),
        "{before:?}"
    );
    db.close().await.expect("close");

    let b = run(&url, migs.path(), backups.path(), &["backup"]).await;
    assert_eq!(b.code, 0, "{b:?}");
    let snap = only_snapshot(backups.path());
    let name = snap
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        name.starts_with("app_v001_") && name.ends_with(".sqlite"),
        "{name}"
    );
    assert_eq!(manifest(&snap)["schema_version"], 1);
    assert_eq!(manifest(&snap)["backend"], "sqlite");

    pair(
        &migs,
        2,
        "drop_note",
        "ALTER TABLE accounts DROP COLUMN note;",
        "ALTER TABLE accounts ADD COLUMN note TEXT;",
    );
    let up = run(&url, migs.path(), backups.path(), &["up"]).await;
    assert_eq!(up.code, 0, "{up:?}");
    let db = open(&file).await;
    assert_eq!(
        q(
            &db,
            "SELECT CAST(version AS TEXT) FROM collex_migrations ORDER BY version"
        )
        .await,
        ["1", "2"]
    );
    db.execute_unprepared("INSERT INTO entries (account_id, amount) VALUES (3, 99)")
        .await
        .expect("later row");
    db.close().await.expect("close");

    let r = run(
        &url,
        migs.path(),
        backups.path(),
        &["restore", &snap.to_string_lossy(), "--yes"],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let db = open(&file).await;
    assert_eq!(
        all_rows(&db).await,
        before,
        "the rows after restore differ from the rows at backup time"
    );
    assert_eq!(
        q(
            &db,
            "SELECT CAST(version AS TEXT) FROM collex_migrations ORDER BY version"
        )
        .await,
        ["1"]
    );
    db.close().await.expect("close");
}

#[tokio::test]
async fn sqlite_a_damaged_snapshot_is_refused_with_exit_2_and_the_file_is_untouched() {
    let work = TempDir::new();
    let migs = TempDir::new();
    let backups = TempDir::new();
    let file = work.path().join("app.db");
    let url = format!("sqlite://{}", file.display());
    pair(
        &migs,
        1,
        "accounts",
        SCHEMA,
        "DROP TABLE entries; DROP TABLE accounts;",
    );
    assert_eq!(run(&url, migs.path(), backups.path(), &["up"]).await.code, 0);
    let b = run(&url, migs.path(), backups.path(), &["backup"]).await;
    assert_eq!(b.code, 0, "{b:?}");
    let snap = only_snapshot(backups.path());
    corrupt(&snap);
    let db = open(&file).await;
    db.execute_unprepared(ROWS).await.expect("rows");
    db.close().await.expect("close");

    let r = run(
        &url,
        migs.path(),
        backups.path(),
        &["restore", &snap.to_string_lossy(), "--yes"],
    )
    .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("does not match its manifest"), "{r:?}");
    let db = open(&file).await;
    assert_eq!(q(&db, "SELECT CAST(count(*) AS TEXT) FROM entries").await, ["3"]);
    db.close().await.expect("close");
}

#[tokio::test]
async fn sqlite_up_backup_with_nothing_pending_takes_no_snapshot_and_retention_keeps_n() {
    let work = TempDir::new();
    let migs = TempDir::new();
    let backups = TempDir::new();
    let file = work.path().join("app.db");
    let url = format!("sqlite://{}", file.display());
    pair(
        &migs,
        1,
        "accounts",
        SCHEMA,
        "DROP TABLE entries; DROP TABLE accounts;",
    );
    let r = run(&url, migs.path(), backups.path(), &["up", "--backup"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    // One pending: a snapshot of the database before it (version 0).
    assert_eq!(
        manifest(&only_snapshot(backups.path()))["schema_version"],
        serde_json::Value::Null
    );
    let r = run(&url, migs.path(), backups.path(), &["up", "--backup"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("no snapshot taken"), "{r:?}");
    assert_eq!(snapshots(backups.path()).len(), 1);

    for _ in 0..3 {
        let mut cmd = super::support::command(&url, migs.path(), backups.path(), &["backup"]);
        cmd.env("DB_BACKUP_KEEP", "2");
        let r = super::support::finish(cmd).await;
        assert_eq!(r.code, 0, "{r:?}");
    }
    let left = snapshots(backups.path());
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left.iter().all(|p| manifest(p)["schema_version"] == 1),
        "the newest are kept: {left:?}"
    );
}
