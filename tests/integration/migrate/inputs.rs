//! Files as real histories and editors make them (issue 12): a column named `begin` beside a `COMMIT`, a
//! byte-order mark, CRLF line endings converted to LF, descriptions with newlines or non-ASCII letters, a
//! migration that changes `search_path`, and a `.SQL` file name.

use collex_tests::PgTestDb;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

use super::support::{MigDir, exists, history, run, tables, text};

/// The file: the `begin` column once made the splitter read the rest as one statement, so the
/// `COMMIT` went unseen and the migration was left half-applied.
const BEGIN_FILE: &str = "CREATE TABLE events (begin timestamptz, id int); COMMIT; CREATE TABLE after_commit (id int); SELECT 1/0;";

#[tokio::test]
async fn a_commit_after_a_begin_column_is_refused_with_exit_2_and_nothing_applied_on_postgresql() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.pair(1, "events", BEGIN_FILE, "SELECT 1;");

    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("001_events.sql"), "{}", out.stderr);
    assert!(out.stderr.contains("COMMIT"), "{}", out.stderr);
    assert!(
        tables(&db).await.is_empty(),
        "nothing applied: {:?}",
        tables(&db).await
    );
}

#[tokio::test]
async fn a_commit_after_a_begin_column_is_refused_with_exit_2_and_nothing_applied_on_sqlite() {
    let dir = MigDir::new();
    dir.pair(1, "events", BEGIN_FILE, "SELECT 1;");
    let file = dir.path().join("app.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());

    let out = run(&url, dir.path(), &["up"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("COMMIT"), "{}", out.stderr);
    if file.exists() {
        let db = Database::connect(&url).await.expect("open the SQLite file");
        let rows = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT name FROM sqlite_master WHERE type = 'table'".to_owned(),
            ))
            .await
            .expect("list tables");
        assert!(rows.is_empty(), "nothing applied on SQLite");
    }
}

#[tokio::test]
async fn a_begin_column_in_a_no_transaction_file_runs_statement_by_statement() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.write(
        "001_events.sql",
        "-- migrate:no-transaction\nCREATE TABLE events (begin timestamptz, id int);\nCREATE INDEX CONCURRENTLY events_begin ON events (begin);\nCREATE TABLE after (id int);\n",
    );
    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(exists(&db, "events_begin").await && exists(&db, "after").await);
}

#[tokio::test]
async fn a_byte_order_mark_is_stripped_before_running_and_checksumming() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    let plain = "CREATE TABLE a (id int);\n";
    dir.write("001_a.sql", format!("\u{feff}{plain}"));
    dir.write(
        "002_b.sql",
        "\u{feff}-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n",
    );
    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(history(&db).await, vec![1, 2]);
    assert!(
        exists(&db, "a_id").await,
        "the no-transaction file ran outside a transaction"
    );
    // The editor drops the mark: the file is not "modified".
    dir.write("001_a.sql", plain);
    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let sum = text(&db, "SELECT checksum FROM collex_migrations WHERE version = 1").await;
    let expected = text(
        &db,
        "SELECT encode(sha256(convert_to(E'CREATE TABLE a (id int);\\n', 'UTF8')), 'hex')",
    )
    .await;
    assert_eq!(sum, expected);
}

#[tokio::test]
async fn crlf_converted_to_lf_is_not_an_edit_and_checksums_recorded_before_still_verify() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    let crlf = "-- Migration: a\r\nCREATE TABLE a (id int);\r\nCREATE TABLE b (id int);\r\n";
    dir.write("001_a.sql", crlf);
    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    dir.write("001_a.sql", crlf.replace("\r\n", "\n"));
    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 0, "converted to LF: {out:?}");

    // A runner before normalisation recorded the SHA-256 of the CRLF bytes themselves.
    db.execute_unprepared(
        "UPDATE collex_migrations SET checksum = encode(sha256(convert_to(\
         E'-- Migration: a\\r\\nCREATE TABLE a (id int);\\r\\nCREATE TABLE b (id int);\\r\\n', 'UTF8')), 'hex')",
    )
    .await
    .expect("record the old checksum");
    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(
        out.code, 0,
        "an old CRLF checksum verifies against the LF file: {out:?}"
    );
    let out = run(pg.url(), dir.path(), &["status"]).await;
    assert!(!out.stdout.contains("modified"), "{}", out.stdout);
}

#[tokio::test]
async fn create_refuses_control_characters_and_accepts_letters_of_any_script() {
    let dir = MigDir::new();
    let out = run(
        "sqlite::memory:",
        dir.path(),
        &["create", "add foo\nDROP TABLE users;"],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("control character"), "{}", out.stderr);
    assert!(dir.files().is_empty(), "nothing written: {:?}", dir.files());

    let out = run("sqlite::memory:", dir.path(), &["create", "Données клиентов"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(dir.files(), vec!["001_données_клиентов.sql", "001_rollback.sql"]);
    assert!(
        dir.read("001_données_клиентов.sql")
            .contains("-- Description: Données клиентов\n")
    );
}

#[tokio::test]
async fn a_migration_that_sets_search_path_does_not_move_the_history() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.pair(
        1,
        "other",
        "CREATE SCHEMA other;\nSET search_path TO other;\nCREATE TABLE inside (id int);",
        "DROP SCHEMA other CASCADE;",
    );
    dir.pair(2, "t2", "CREATE TABLE t2 (id int);", "DROP TABLE t2;");
    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(history(&db).await, vec![1, 2]);
    assert!(exists(&db, "other.inside").await);
}

#[tokio::test]
async fn an_upper_case_sql_extension_is_refused_not_ignored() {
    let dir = MigDir::new();
    dir.tables(1);
    dir.write("002_x.SQL", "CREATE TABLE x (id int);\n");
    let out = run("sqlite::memory:", dir.path(), &["up"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("002_x.SQL"), "{}", out.stderr);
}

#[tokio::test]
async fn a_fresh_template_is_listed_as_empty_by_status_and_refused_by_up_naming_the_file() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(1);
    let out = run(pg.url(), dir.path(), &["create", "add foo"]).await;
    assert_eq!(out.code, 0, "{out:?}");

    let out = run(pg.url(), dir.path(), &["status"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("empty: fill it in"), "{}", out.stdout);

    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("002_add_foo.sql` is empty"), "{}", out.stderr);
    assert!(history(&db).await.is_empty(), "nothing applied");
}

#[tokio::test]
async fn applied_by_names_the_os_user_when_user_is_unset() {
    let dir = MigDir::new();
    dir.tables(1);
    let file = dir.path().join("app.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let out = super::support::command(&url, dir.path(), &["up"])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("USERNAME")
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let db = Database::connect(&url).await.expect("open");
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT applied_by FROM collex_migrations".to_owned(),
        ))
        .await
        .expect("query")
        .expect("a row");
    let by: String = row.try_get_by_index(0).expect("text");
    assert!(!by.starts_with("unknown@"), "{by}");
}
