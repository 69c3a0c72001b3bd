//! Snapshots on PostgreSQL: `pg_dump -Fc` in, `pg_restore` through `psql` in one transaction out.

use std::collections::BTreeMap;

use collex_tests::{PgTestDb, TempDir};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use super::support::{command, corrupt, finish, manifest, only_snapshot, pair, run, snapshots};
use crate::service::support;

const SCHEMA: &str = "CREATE TYPE mood AS ENUM ('ok', 'sad');
CREATE TABLE accounts (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    note text,
    mood mood,
    balance numeric(12, 2),
    opened timestamptz NOT NULL DEFAULT '2026-01-02T03:04:05Z',
    data jsonb,
    blob bytea
);
CREATE TABLE entries (
    id bigserial PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id),
    amount integer NOT NULL,
    memo text
);
CREATE INDEX entries_memo ON entries (memo) WHERE memo IS NOT NULL;
CREATE TABLE tags (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, label text NOT NULL);
CREATE VIEW rich AS SELECT name FROM accounts WHERE balance > 0;";

const ROWS: &str = "INSERT INTO accounts (name, note, mood, balance, data, blob) VALUES
    ('ann', 'first', 'ok', 12.50, '{\"a\": [1, 2]}', '\\x00ff10'),
    ('bob', NULL, 'sad', -3.00, NULL, NULL),
    ('cy', 'tab\there, quote '' and newline\n', NULL, 0, '[]', '\\x');
INSERT INTO entries (account_id, amount, memo) VALUES (1, 10, 'x'), (1, -4, NULL), (2, 7, 'é ü 日本');
INSERT INTO tags (label) VALUES ('red'), ('blue');";

async fn q(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
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

/// Every row of every table of `public`, as JSON text, sorted: compared row by row.
async fn all_rows(db: &DatabaseConnection) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for t in q(
        db,
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .await
    {
        let rows = q(
            db,
            &format!("SELECT row_to_json(t)::text FROM \"{t}\" t ORDER BY row_to_json(t)::text"),
        )
        .await;
        out.insert(t, rows);
    }
    out
}

async fn history(db: &DatabaseConnection) -> Vec<String> {
    q(db, "SELECT version::text FROM collex_migrations ORDER BY version").await
}

/// A database at migration 001 with rows in every table, its migrations and an empty backup directory.
async fn populated() -> (PgTestDb, DatabaseConnection, TempDir, TempDir) {
    let pg = PgTestDb::new().await;
    let migs = TempDir::new();
    let backups = TempDir::new();
    pair(
        &migs,
        1,
        "accounts",
        SCHEMA,
        "DROP VIEW rich; DROP TABLE tags; DROP TABLE entries; DROP TABLE accounts; DROP TYPE mood;",
    );
    let up = run(pg.url(), migs.path(), backups.path(), &["up"]).await;
    assert_eq!(up.code, 0, "{up:?}");
    let db = pg.connect().await;
    db.execute_unprepared(ROWS).await.expect("rows");
    (pg, db, migs, backups)
}

#[tokio::test]
async fn postgres_restore_brings_back_every_row_and_the_history_after_a_migration_dropped_a_column() {
    let (pg, db, migs, backups) = populated().await;
    let before = all_rows(&db).await;
    assert!(
        before.len() >= 3 && before.values().all(|r| !r.is_empty()),
        "{before:?}"
    );

    let b = run(pg.url(), migs.path(), backups.path(), &["backup"]).await;
    assert_eq!(b.code, 0, "{b:?}");
    let file = only_snapshot(backups.path());
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        name.starts_with(&format!("{}_v001_", pg.name())) && name.ends_with(".dump"),
        "{name}"
    );
    let m = manifest(&file);
    assert_eq!(m["schema_version"], 1, "{m}");
    assert_eq!(m["database"], pg.name(), "{m}");
    assert_eq!(
        m["size_bytes"],
        std::fs::metadata(&file).expect("file").len(),
        "{m}"
    );
    assert_eq!(m["sha256"].as_str().map(str::len), Some(64), "{m}");
    assert!(
        m["tool"].as_str().is_some_and(|t| t.starts_with("pg_dump")),
        "{m}"
    );

    pair(
        &migs,
        2,
        "drop_note",
        "ALTER TABLE accounts DROP COLUMN note;",
        "ALTER TABLE accounts ADD COLUMN note text;",
    );
    let up = run(pg.url(), migs.path(), backups.path(), &["up"]).await;
    assert_eq!(up.code, 0, "{up:?}");
    assert_eq!(history(&db).await, ["1", "2"]);
    assert!(q(&db, "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'note'").await.is_empty());
    db.execute_unprepared("INSERT INTO entries (account_id, amount) VALUES (3, 99)")
        .await
        .expect("later row");

    let r = run(
        pg.url(),
        migs.path(),
        backups.path(),
        &["restore", &file.to_string_lossy(), "--yes"],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        all_rows(&db).await,
        before,
        "the rows after restore differ from the rows at backup time"
    );
    assert_eq!(history(&db).await, ["1"]);
    // The sequences come back too: the next id follows the restored rows.
    assert_eq!(
        q(
            &db,
            "INSERT INTO accounts (name) VALUES ('dee') RETURNING id::text"
        )
        .await,
        ["4"]
    );
    let status = run(pg.url(), migs.path(), backups.path(), &["status"]).await;
    assert!(status.stdout.contains("1 applied, 1 pending"), "{status:?}");
}

#[tokio::test]
async fn postgres_a_damaged_snapshot_is_refused_with_exit_2_and_the_database_is_untouched() {
    let (pg, db, migs, backups) = populated().await;
    let b = run(pg.url(), migs.path(), backups.path(), &["backup"]).await;
    assert_eq!(b.code, 0, "{b:?}");
    let file = only_snapshot(backups.path());
    corrupt(&file);
    db.execute_unprepared("INSERT INTO entries (account_id, amount, memo) VALUES (1, 1, 'after')")
        .await
        .expect("marker row");

    let r = run(
        pg.url(),
        migs.path(),
        backups.path(),
        &["restore", &file.to_string_lossy(), "--yes"],
    )
    .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("does not match its manifest") && r.stderr.contains("sha256"),
        "{r:?}"
    );
    assert_eq!(
        q(&db, "SELECT memo FROM entries WHERE memo = 'after'").await,
        ["after"]
    );

    // Without its manifest a snapshot is refused too.
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::remove_file(file.with_file_name(format!("{stem}.manifest.json"))).expect("remove manifest");
    let r = run(
        pg.url(),
        migs.path(),
        backups.path(),
        &["restore", &file.to_string_lossy(), "--yes"],
    )
    .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no manifest"), "{r:?}");
}

#[tokio::test]
async fn postgres_restore_without_yes_names_the_database_and_host_and_changes_nothing() {
    let (pg, db, migs, backups) = populated().await;
    let b = run(pg.url(), migs.path(), backups.path(), &["backup"]).await;
    assert_eq!(b.code, 0, "{b:?}");
    let file = only_snapshot(backups.path());
    db.execute_unprepared("DELETE FROM entries")
        .await
        .expect("delete");

    let r = run(
        pg.url(),
        migs.path(),
        backups.path(),
        &["restore", &file.to_string_lossy()],
    )
    .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--yes"), "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("database \"{}\" on 127.0.0.1:", pg.name())),
        "{r:?}"
    );
    assert_eq!(q(&db, "SELECT count(*)::text FROM entries").await, ["0"]);
}

#[tokio::test]
async fn postgres_up_backup_snapshots_only_when_something_is_pending() {
    let (pg, db, migs, backups) = populated().await;
    let r = run(pg.url(), migs.path(), backups.path(), &["up", "--backup"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("no snapshot taken"), "{r:?}");
    assert!(
        snapshots(backups.path()).is_empty(),
        "{:?}",
        snapshots(backups.path())
    );

    pair(
        &migs,
        2,
        "drop_note",
        "ALTER TABLE accounts DROP COLUMN note;",
        "ALTER TABLE accounts ADD COLUMN note text;",
    );
    let mut cmd = command(pg.url(), migs.path(), backups.path(), &["up"]);
    cmd.env("DB_BACKUP_BEFORE_MIGRATE", "true");
    let r = finish(cmd).await;
    assert_eq!(r.code, 0, "{r:?}");
    let file = only_snapshot(backups.path());
    // Taken before the migration: at version 1, with the column the migration dropped.
    assert_eq!(manifest(&file)["schema_version"], 1);
    assert_eq!(history(&db).await, ["1", "2"]);
}

#[tokio::test]
async fn postgres_a_failed_snapshot_stops_up_with_exit_1_before_anything_is_applied() {
    let (pg, db, migs, backups) = populated().await;
    pair(
        &migs,
        2,
        "drop_note",
        "ALTER TABLE accounts DROP COLUMN note;",
        "ALTER TABLE accounts ADD COLUMN note text;",
    );
    // No pg_dump anywhere on PATH.
    let empty = TempDir::new();
    let mut cmd = command(pg.url(), migs.path(), backups.path(), &["up", "--backup"]);
    cmd.env("PATH", empty.path());
    let r = finish(cmd).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("pg_dump not found on PATH") && r.stderr.contains("postgresql-client-"),
        "{r:?}"
    );
    assert!(r.stderr.contains("nothing was applied"), "{r:?}");
    assert_eq!(history(&db).await, ["1"]);
    assert!(std::fs::read_dir(backups.path()).map(|d| d.count()).unwrap_or(0) == 0);
}

#[tokio::test]
async fn postgres_a_pg_dump_older_than_the_server_is_refused_by_name() {
    let (pg, _db, migs, backups) = populated().await;
    let bin = TempDir::new();
    let fake = bin.write("pg_dump", "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mut cmd = command(pg.url(), migs.path(), backups.path(), &["backup"]);
    cmd.env(
        "PATH",
        format!(
            "{}:{}",
            bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    let r = finish(cmd).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("version 9.6.24, older than the server"),
        "{r:?}"
    );
    assert!(snapshots(backups.path()).is_empty());
}

#[tokio::test]
async fn postgres_retention_keeps_exactly_the_newest_n() {
    let (pg, _db, migs, backups) = populated().await;
    let mut taken = Vec::new();
    for _ in 0..3 {
        let mut cmd = command(pg.url(), migs.path(), backups.path(), &["backup"]);
        cmd.env("DB_BACKUP_KEEP", "2");
        let r = finish(cmd).await;
        assert_eq!(r.code, 0, "{r:?}");
        let newest = snapshots(backups.path())
            .into_iter()
            .find(|p| !taken.contains(p))
            .expect("a new snapshot");
        taken.push(newest);
    }
    assert_eq!(snapshots(backups.path()), taken[1..].to_vec());
    let manifests = std::fs::read_dir(backups.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".manifest.json"))
        .count();
    assert_eq!(manifests, 2);
    let listed = run(pg.url(), migs.path(), backups.path(), &["backups"]).await;
    assert_eq!(listed.code, 0, "{listed:?}");
    assert!(listed.stdout.contains("2 snapshot(s)"), "{listed:?}");
    assert!(
        !listed
            .stdout
            .contains(&*taken[0].file_name().unwrap_or_default().to_string_lossy())
    );
}

/// The password of `url`, injecting one when it has none (the test server trusts local connections, so
/// the password is sent but never checked).
fn with_password(url: &str) -> (String, String) {
    let secret = "PW-cmdline-7f3a9c";
    let Some(scheme_end) = url.find("://") else {
        panic!("TEST_DATABASE_URL is not a URL")
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return (
            format!("{}postgres:{secret}@{rest}", &url[..scheme_end + 3]),
            secret.to_owned(),
        );
    };
    let userinfo = &rest[..at];
    if let Some((_, pw)) = userinfo.split_once(':') {
        return (url.to_owned(), pw.to_owned());
    }
    (
        format!("{}{userinfo}:{secret}{}", &url[..scheme_end + 3], &rest[at..]),
        secret.to_owned(),
    )
}

fn cmdlines() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(bytes) = std::fs::read(e.path().join("cmdline")) {
            out.push((pid, String::from_utf8_lossy(&bytes).replace('\0', " ")));
        }
    }
    out
}

#[tokio::test]
async fn postgres_the_password_is_on_no_command_line_while_pg_dump_runs() {
    let (pg, db, migs, backups) = populated().await;
    let (url, secret) = with_password(pg.url());
    // Hold pg_dump at its table lock, so its process is certainly there while /proc is read.
    let blocker = pg.connect().await;
    blocker
        .execute_unprepared("BEGIN; LOCK TABLE entries IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let child = command(&url, migs.path(), backups.path(), &["backup"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut seen_pg_dump = false;
    for _ in 0..600 {
        let lines = cmdlines();
        for (pid, l) in &lines {
            assert!(!l.contains(&secret), "process {pid} shows the password: {l}");
        }
        // pg_dump is waiting for the lock once the server shows its session waiting.
        let waiting = q(&db, "SELECT count(*)::text FROM pg_stat_activity WHERE application_name = 'collex-backup' AND wait_event_type = 'Lock'").await;
        if lines
            .iter()
            .any(|(_, l)| l.split(' ').next().is_some_and(|a| a.ends_with("pg_dump")))
            && waiting == ["1"]
        {
            seen_pg_dump = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen_pg_dump, "pg_dump never showed up in /proc");
    for (pid, l) in cmdlines() {
        assert!(!l.contains(&secret), "process {pid} shows the password: {l}");
    }
    blocker.execute_unprepared("COMMIT").await.expect("unlock");
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("backup finished")
        .expect("backup ran");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        !stdout.contains(&secret) && !stderr.contains(&secret),
        "{stdout}{stderr}"
    );
    let file = only_snapshot(backups.path());
    assert!(!manifest(&file).to_string().contains(&secret));
}

/// Every column, index and constraint of `public`, as text, sorted.
async fn catalog(db: &DatabaseConnection) -> Vec<String> {
    q(
        db,
        "SELECT x FROM (
            SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
                   || ' ' || coalesce(column_default, '-') || ' ' || is_identity AS x
              FROM information_schema.columns WHERE table_schema = 'public'
            UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
            UNION ALL SELECT 'constraint ' || conrelid::regclass::text || ' ' || pg_get_constraintdef(oid)
              FROM pg_constraint WHERE connamespace = 'public'::regnamespace
            UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
        ) s ORDER BY x",
    )
    .await
}

#[tokio::test]
async fn postgres_the_repository_schema_survives_a_backup_and_restore() {
    let pg = PgTestDb::migrated().await;
    let db = pg.connect().await;
    let migs = collex_tests::migrations_dir();
    let backups = TempDir::new();
    let before = (catalog(&db).await, all_rows(&db).await);
    let b = run(pg.url(), &migs, backups.path(), &["backup"]).await;
    assert_eq!(b.code, 0, "{b:?}");
    let r = run(
        pg.url(),
        &migs,
        backups.path(),
        &[
            "restore",
            &only_snapshot(backups.path()).to_string_lossy(),
            "--yes",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!((catalog(&db).await, all_rows(&db).await), before);
}

/// DB_BACKUP_BEFORE_MIGRATE is honoured by the service's auto-migrate too: one snapshot, taken before the
/// pending migration ran (at the earlier version), and none at a later start with nothing pending.
#[tokio::test]
async fn postgres_the_services_auto_migrate_snapshots_first_and_only_when_something_is_pending() {
    let (pg, db, migs, backups) = populated().await;
    pair(
        &migs,
        2,
        "drop_note",
        "ALTER TABLE accounts DROP COLUMN note;",
        "ALTER TABLE accounts ADD COLUMN note text;",
    );
    let config = || {
        let mut cfg = config::DbConfig::try_from_url(pg.url()).expect("test URL parses");
        cfg.auto_migrate = true;
        cfg.migrate_path = migs.path().to_path_buf();
        cfg.backup.dir = backups.path().to_path_buf();
        cfg.backup.before_migrate = true;
        cfg
    };
    // The runner built from the configuration, as the service binary builds it.
    let start = || async {
        let svc = service::start(
            support::app(config()),
            std::sync::Arc::new(service::Runner::new(config())),
        )
        .await
        .expect("service starts");
        support::wait_for_status(svc.addr(), "/ready", 200, std::time::Duration::from_secs(60)).await;
        svc.shutdown().await.expect("shutdown");
    };
    start().await;
    let file = only_snapshot(backups.path());
    assert_eq!(manifest(&file)["schema_version"], 1);
    assert_eq!(history(&db).await, ["1", "2"]);

    start().await;
    assert_eq!(
        snapshots(backups.path()).len(),
        1,
        "nothing was pending: {:?}",
        snapshots(backups.path())
    );
}
