//! The first hour with a database that does not exist yet (issue 16 points 4, 7, 10), through the real
//! `migration` binary: `database create|drop` on PostgreSQL and SQLite, connection errors that name the
//! database and say what fixes it, and `status` that never creates a SQLite file.

use collex_tests::{TempDir, admin_connection, admin_url, with_database, workspace_bin};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n{}{}", self.code, self.stdout, self.stderr)
    }
}

/// The CLI with `DATABASE_URL=url` and nothing else of the database configuration.
async fn run(url: &str, migs: &std::path::Path, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(workspace_bin("migration"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DB_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.env("DATABASE_URL", url)
        .env("DB_MIGRATE_PATH", migs)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("finished within 60 s")
        .expect("started");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn pg_exists(name: &str) -> bool {
    let admin = admin_connection().await;
    let n = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*)::bigint FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await
        .expect("query")
        .and_then(|r| r.try_get_by_index::<i64>(0).ok())
        .unwrap_or(0);
    let _ = admin.close().await;
    n > 0
}

/// Drops the database when the test ends, whatever happened.
struct DropAtEnd(String);

impl Drop for DropAtEnd {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                let admin = admin_connection().await;
                let _ = admin
                    .execute_unprepared(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                    .await;
                let _ = admin.close().await;
            });
        })
        .join();
    }
}

#[tokio::test]
async fn a_missing_postgres_database_is_named_with_the_command_that_creates_it_which_works() {
    let name = format!(
        "collex_dbcmd_{}_{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let _cleanup = DropAtEnd(name.clone());
    let url = with_database(&admin_url(), &name);
    let migs = TempDir::new();

    let status = run(&url, migs.path(), &["status"]).await;
    assert_eq!(status.code, 1, "{status:?}");
    assert!(
        status.stderr.contains(&format!(
            "database \"{name}\" does not exist: run `make db-create`"
        )),
        "{status:?}"
    );
    assert!(
        status.stderr.contains("@127.0.0.1:") || status.stderr.contains("@localhost:"),
        "{status:?}"
    );
    assert!(
        !status.stderr.contains("at line"),
        "PostgreSQL's source line leaked: {status:?}"
    );

    let created = run(&url, migs.path(), &["database", "create"]).await;
    assert_eq!(created.code, 0, "{created:?}");
    assert!(
        created.stdout.contains(&format!("created database \"{name}\"")),
        "{created:?}"
    );
    assert!(pg_exists(&name).await);
    let again = run(&url, migs.path(), &["database", "create"]).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("already exists"), "{again:?}");
    assert_eq!(run(&url, migs.path(), &["status"]).await.code, 0);

    let refused = run(&url, migs.path(), &["database", "drop"]).await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains(&format!("database \"{name}\" on ")) && refused.stderr.contains("--yes"),
        "{refused:?}"
    );
    assert!(pg_exists(&name).await);
    let dropped = run(&url, migs.path(), &["database", "drop", "--yes"]).await;
    assert_eq!(dropped.code, 0, "{dropped:?}");
    assert!(!pg_exists(&name).await);
}

#[tokio::test]
async fn status_on_a_missing_sqlite_file_says_so_with_exit_2_and_creates_nothing() {
    let work = TempDir::new();
    let migs = TempDir::new();
    let file = work.path().join("typo.db");
    let url = format!("sqlite://{}", file.display());
    let r = run(&url, migs.path(), &["status"]).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&format!("no database at {}", file.display())),
        "{r:?}"
    );
    assert_eq!(work.files(), Vec::<String>::new());

    let created = run(&url, migs.path(), &["database", "create"]).await;
    assert_eq!(created.code, 0, "{created:?}");
    assert!(file.is_file());
    // Read-only: status leaves no journal beside the file.
    let r = run(&url, migs.path(), &["status"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(work.files(), ["typo.db"]);
    let dropped = run(&url, migs.path(), &["database", "drop", "--yes"]).await;
    assert_eq!(dropped.code, 0, "{dropped:?}");
    assert!(!file.exists());
}

#[tokio::test]
async fn an_unopenable_sqlite_path_is_named_with_the_reason() {
    let work = TempDir::new();
    let migs = TempDir::new();
    let file = work.path().join("no-such-dir").join("app.db");
    let r = run(&format!("sqlite://{}", file.display()), migs.path(), &["up"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&file.display().to_string()), "{r:?}");
    assert!(r.stderr.contains("no-such-dir does not exist"), "{r:?}");
}

#[tokio::test]
async fn fresh_and_reset_prompts_name_the_database_and_host() {
    let migs = TempDir::new();
    let url = with_database(&admin_url(), "collex_prompt_never_created");
    for cmd in ["fresh", "reset"] {
        let r = run(&url, migs.path(), &[cmd]).await;
        assert_eq!(r.code, 2, "{r:?}");
        assert!(
            r.stderr.contains("database \"collex_prompt_never_created\" on ") && r.stderr.contains("--yes"),
            "{r:?}"
        );
    }
}
