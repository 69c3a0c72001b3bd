//! `migration database create|drop`: the configured PostgreSQL database (created and dropped from the
//! server's `postgres` database, `template1` when that one is gone) or the SQLite file. Creating what exists
//! and dropping what does not are successes that say so: both commands can run in scripts repeatedly.

use config::{DbConfig, DbTarget, PgTarget, SqliteTarget};
use sea_orm::sqlx::{self, Connection as _, Row};

use crate::args::DatabaseAction;
use crate::run::{EXIT_FAILED, Failure, confirm, describe_target};

/// Runs `database create` or `database drop`.
pub async fn run(cfg: &DbConfig, action: DatabaseAction) -> Result<(), Failure> {
    let what = describe_target(&cfg.target);
    if let DatabaseAction::Drop { yes } = action {
        confirm(
            yes,
            &format!("database drop deletes {what} with everything in it"),
        )?;
    }
    match (&cfg.target, action) {
        (DbTarget::Postgres(t), DatabaseAction::Create) => pg_create(t, &what).await,
        (DbTarget::Postgres(t), DatabaseAction::Drop { .. }) => pg_drop(t, &what).await,
        (DbTarget::Sqlite(t), DatabaseAction::Create) => sqlite_create(cfg, t, &what).await,
        (DbTarget::Sqlite(t), DatabaseAction::Drop { .. }) => sqlite_drop(t, &what),
        _ => Err(Failure::new(EXIT_FAILED, format!("cannot create or drop {what}"))),
    }
}

fn failed(what: &str, doing: &str, e: &sqlx::Error) -> Failure {
    Failure::new(
        EXIT_FAILED,
        format!("cannot {doing} {what}: {}", config::error::reason(e)),
    )
}

/// A connection to the server's maintenance database, as the configured user.
async fn maintenance(t: &PgTarget, what: &str) -> Result<sqlx::PgConnection, Failure> {
    let mut last = None;
    for db in ["postgres", "template1"] {
        let mut m = t.clone();
        m.database = db.to_owned();
        match sqlx::PgConnection::connect_with(&config::pg_connect_options(&m)).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => Failure::new(
            EXIT_FAILED,
            format!(
                "cannot reach the server of {what} through its `postgres` or `template1` database: {}",
                config::error::reason(&e)
            ),
        ),
        None => Failure::new(EXIT_FAILED, format!("cannot reach the server of {what}")),
    })
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn exists(conn: &mut sqlx::PgConnection, name: &str, what: &str) -> Result<bool, Failure> {
    sqlx::query("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .and_then(|r| r.try_get::<i64, _>(0))
        .map(|n| n > 0)
        .map_err(|e| failed(what, "look up", &e))
}

async fn pg_create(t: &PgTarget, what: &str) -> Result<(), Failure> {
    let mut conn = maintenance(t, what).await?;
    let result = async {
        if exists(&mut conn, &t.database, what).await? {
            println!("{what} already exists: nothing to do");
            return Ok(());
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {}",
            ident(&t.database)
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| failed(what, "create", &e))?;
        println!("created {what}");
        Ok(())
    }
    .await;
    let _ = conn.close().await;
    result
}

async fn pg_drop(t: &PgTarget, what: &str) -> Result<(), Failure> {
    let mut conn = maintenance(t, what).await?;
    let result = async {
        if !exists(&mut conn, &t.database, what).await? {
            println!("{what} does not exist: nothing to drop");
            return Ok(());
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {}",
            ident(&t.database)
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| {
            let mut f = failed(what, "drop", &e);
            if matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("55006")) {
                f.message
                    .push_str(": stop the service and other sessions using it first");
            }
            f
        })?;
        println!("dropped {what}");
        Ok(())
    }
    .await;
    let _ = conn.close().await;
    result
}

async fn sqlite_create(cfg: &DbConfig, t: &SqliteTarget, what: &str) -> Result<(), Failure> {
    let Some(file) = t.file() else {
        println!("{what} lives in memory: nothing to create");
        return Ok(());
    };
    if file.is_file() {
        println!("{what} already exists: nothing to do");
        return Ok(());
    }
    // Connecting creates the file (and says why when it cannot: a missing directory, no permission).
    let db = config::connect(cfg)
        .await
        .map_err(|e| Failure::new(EXIT_FAILED, format!("cannot create {what}: {e}")))?;
    let _ = db.close().await;
    println!("created {what}");
    Ok(())
}

fn sqlite_drop(t: &SqliteTarget, what: &str) -> Result<(), Failure> {
    let Some(file) = t.file() else {
        println!("{what} lives in memory: nothing to drop");
        return Ok(());
    };
    if !file.exists() {
        println!("{what} does not exist: nothing to drop");
        return Ok(());
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = file.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Failure::new(
                    EXIT_FAILED,
                    format!("cannot delete {}: {e}", std::path::Path::new(&p).display()),
                ));
            }
        }
    }
    println!("dropped {what}");
    Ok(())
}
