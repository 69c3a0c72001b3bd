//! Every bad-input case of the migration files: `up` exits 2 with a message naming the file and what is
//! expected, and the database stays exactly as it was (not even the history table is created).

use collex_tests::PgTestDb;

use super::support::{MigDir, Run, run, tables};

/// Runs `up` on a fresh database over a valid 001 plus whatever `bad` adds; checks that nothing changed.
async fn up_with(bad: impl FnOnce(&MigDir)) -> (MigDir, Run) {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    dir.tables(1);
    bad(&dir);
    let out = run(pg.url(), dir.path(), &["up"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(tables(&db).await.is_empty(), "the database was left as it was");
    (dir, out)
}

fn file(dir: &MigDir, name: &str) -> String {
    dir.path().join(name).display().to_string()
}

#[tokio::test]
async fn duplicate_versions_are_refused() {
    let (_dir, out) = up_with(|d| {
        d.write("001_other.sql", "CREATE TABLE other (id int);");
    })
    .await;
    assert!(
        out.stderr.contains(
            "migration version 001 is used twice, by `001_create_t1.sql` and `001_other.sql`: each version must be unique"
        ),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn malformed_names_are_refused() {
    let (dir, out) = up_with(|d| {
        d.write("2_add things.sql", "CREATE TABLE other (id int);");
    })
    .await;
    assert!(
        out.stderr.contains(&format!(
            "migration file `{}` has a malformed name: expected NNN_description.sql or NNN_rollback.sql",
            file(&dir, "2_add things.sql")
        )),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_rollback_without_its_forward_file_is_refused() {
    let (dir, out) = up_with(|d| {
        d.write("002_rollback.sql", "DROP TABLE other;");
    })
    .await;
    assert!(
        out.stderr.contains(&format!(
            "rollback file `{}` has no forward migration: expected a file 002_<description>.sql next to it",
            file(&dir, "002_rollback.sql")
        )),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn unreadable_files_are_refused() {
    // A directory with a migration's name cannot be read as a file, whoever runs the test (root included).
    let (dir, out) = up_with(|d| {
        std::fs::create_dir(d.path().join("002_unreadable.sql")).expect("mkdir");
    })
    .await;
    assert!(
        out.stderr.contains(&format!(
            "migration file `{}` cannot be read: ",
            file(&dir, "002_unreadable.sql")
        )),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn non_utf8_files_are_refused() {
    let (dir, out) = up_with(|d| {
        d.write("002_latin1.sql", b"CREATE TABLE caf\xe9 (id int);".as_slice());
    })
    .await;
    assert!(
        out.stderr.contains(&format!(
            "migration file `{}` is not valid UTF-8 (invalid byte at offset 16): expected UTF-8 text",
            file(&dir, "002_latin1.sql")
        )),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn empty_files_and_header_only_files_are_refused() {
    let (dir, out) = up_with(|d| {
        d.write("002_empty.sql", "");
        d.write(
            "003_header_only.sql",
            "-- Migration: Nothing\n-- Version: 003\n\n-- Add your migration SQL here\n",
        );
    })
    .await;
    for name in ["002_empty.sql", "003_header_only.sql"] {
        assert!(
            out.stderr.contains(&format!(
                "migration file `{}` is empty: expected at least one SQL statement after the header",
                file(&dir, name)
            )),
            "{}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains("2 problems with the migration files"),
        "all problems at once: {}",
        out.stderr
    );
}

#[tokio::test]
async fn a_header_version_that_disagrees_with_the_name_is_refused() {
    let (dir, out) = up_with(|d| {
        d.write(
            "002_wrong.sql",
            "-- Migration: Wrong\n-- Version: 003\nCREATE TABLE other (id int);",
        );
    })
    .await;
    assert!(
        out.stderr.contains(&format!(
            "migration file `{}` says `-- Version: 003` but its name says 002: expected the same version",
            file(&dir, "002_wrong.sql")
        )),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn transaction_control_in_a_transactional_file_is_refused() {
    let (dir, out) = up_with(|d| {
        d.write("002_tx.sql", "CREATE TABLE other (id int);\nCOMMIT;");
    })
    .await;
    assert!(
        out.stderr.contains(&format!(
            "migration file `{}` line 2: `COMMIT` is not allowed",
            file(&dir, "002_tx.sql")
        )),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_missing_migrations_directory_is_refused() {
    let pg = PgTestDb::new().await;
    let dir = MigDir::new();
    let missing = dir.path().join("nope");
    let out = run(pg.url(), &missing, &["up"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "migrations directory `{}` cannot be read",
            missing.display()
        )),
        "{}",
        out.stderr
    );
}
