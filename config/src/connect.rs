//! From a configuration to a connection: sqlx connect options built from parts, and the plain pooled
//! connection the migration CLI uses.
//!
//! The password goes straight from the [`SecretString`](secrecy::SecretString) into sqlx's
//! `PgConnectOptions`: no URL carrying it is ever formatted, so SeaORM's `ConnectOptions` `Debug`, its spans
//! and sqlx's connect errors cannot show it. The service's pool with statistics lives in the `service` crate;
//! it builds on [`pg_connect_options`] and [`sqlite_connect_options`].

use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgSslMode};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sea_orm::sqlx::{self, Connection as _};
use sea_orm::{DatabaseConnection, SqlxPostgresConnector, SqlxSqliteConnector};

use crate::db::{DbConfig, DbTarget, PgTarget, SqliteTarget, SslMode};
use crate::error::ConnectError;

/// sqlx options for a PostgreSQL target, from parts. `PG*` environment variables and `~/.pgpass` are not
/// consulted: the configuration is the only source.
pub fn pg_connect_options(t: &PgTarget) -> PgConnectOptions {
    let mut o = PgConnectOptions::new_without_pgpass()
        .host(&t.host)
        .port(t.port)
        .username(&t.user)
        .database(&t.database)
        .ssl_mode(match t.ssl_mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Allow => PgSslMode::Allow,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyCa => PgSslMode::VerifyCa,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        })
        .application_name(t.application_name.as_deref().unwrap_or("collex"));
    if let Some(p) = t.password_secret() {
        o = o.password(p);
    }
    if let Some(ca) = &t.ssl_root_cert {
        o = o.ssl_root_cert(ca);
    }
    o
}

/// sqlx options for a SQLite target; the file is created when missing.
///
/// # Errors
/// [`ConnectError::SqliteUrl`] when sqlx cannot understand the SQLite URL.
pub fn sqlite_connect_options(t: &SqliteTarget) -> Result<SqliteConnectOptions, ConnectError> {
    SqliteConnectOptions::from_str(&t.url)
        .map(|o| o.create_if_missing(true))
        .map_err(|source| ConnectError::SqliteUrl {
            url: t.url.clone(),
            source,
        })
}

/// How long the CLI's pool may take to connect before a direct attempt diagnoses why it does not.
const DIAGNOSE_AFTER: Duration = Duration::from_millis(750);

/// Opens a plain pooled connection (no statistics), as the CLI needs, with `DB_CONN_ACQUIRE_TIMEOUT` to get
/// one. PostgreSQL: ONE connection (the migration lock opens its own), never tested before use: a command
/// runs its steps one after another, so a second connection would only be opened because sqlx returns a
/// released connection to the pool in the background, and each one costs a server process and cold catalog
/// caches. SQLite: at most `DB_MAX_OPEN_CONNS` connections.
///
/// # Errors
/// [`ConnectError`] when the database cannot be reached; it never contains the password.
pub async fn connect(cfg: &DbConfig) -> Result<DatabaseConnection, ConnectError> {
    let timeout = cfg.pool.acquire_timeout;
    let err = |source| ConnectError::Connect {
        target: cfg.target.to_string(),
        source,
    };
    match &cfg.target {
        DbTarget::Postgres(t) => {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .test_before_acquire(false)
                .acquire_timeout(timeout)
                .connect_with(pg_connect_options(t));
            tokio::pin!(pool);
            // sqlx retries a refused or unreachable server until the acquire timeout (30 s by default) and
            // then reports only "pool timed out". When the pool is not up quickly, one direct attempt tells
            // the real reason at once; the healthy path pays nothing for it.
            let pooled = tokio::select! {
                r = &mut pool => r,
                () = tokio::time::sleep(DIAGNOSE_AFTER) => {
                    match PgConnection::connect_with(&pg_connect_options(t)).await {
                        Ok(probe) => {
                            let _ = probe.close().await;
                            pool.await
                        }
                        Err(e) => return Err(err(e)),
                    }
                }
            };
            pooled
                .map(SqlxPostgresConnector::from_sqlx_postgres_pool)
                .map_err(err)
        }
        DbTarget::Sqlite(t) => SqlitePoolOptions::new()
            .max_connections(cfg.pool.max_open.max(1))
            .acquire_timeout(timeout)
            .connect_with(sqlite_connect_options(t)?)
            .await
            .map(SqlxSqliteConnector::from_sqlx_sqlite_pool)
            .map_err(|e| sqlite_error(t, e).unwrap_or_else(err)),
    }
}

/// Opens a connection that cannot write: SQLite read-only, never creating the file (a missing file is
/// [`ConnectError::NoSqliteFile`]); PostgreSQL as [`connect()`] (reading there creates nothing).
///
/// # Errors
/// As [`connect()`], and [`ConnectError::NoSqliteFile`].
pub async fn connect_read_only(cfg: &DbConfig) -> Result<DatabaseConnection, ConnectError> {
    let DbTarget::Sqlite(t) = &cfg.target else {
        return connect(cfg).await;
    };
    if let Some(path) = t.file()
        && !path.is_file()
    {
        return Err(ConnectError::NoSqliteFile { path });
    }
    let options = sqlite_connect_options(t)?
        .create_if_missing(false)
        .read_only(true);
    SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(cfg.pool.acquire_timeout)
        .connect_with(options)
        .await
        .map(SqlxSqliteConnector::from_sqlx_sqlite_pool)
        .map_err(|e| {
            sqlite_error(t, e).unwrap_or_else(|source| ConnectError::Connect {
                target: cfg.target.to_string(),
                source,
            })
        })
}

/// SQLite's `unable to open database file` (code 14) with the reason found on the file system: a missing
/// directory, or what creating the file says (permission denied, read-only file system).
fn sqlite_error(t: &SqliteTarget, e: sqlx::Error) -> Result<ConnectError, sqlx::Error> {
    let cantopen = matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("14"));
    let Some(path) = t.file().filter(|_| cantopen) else {
        return Err(e);
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let cause = if !dir.is_dir() {
        format!("its directory {} does not exist", dir.display())
    } else if path.is_dir() {
        "it is a directory".to_owned()
    } else {
        match std::fs::OpenOptions::new().append(true).open(&path) {
            Err(io) if io.kind() == std::io::ErrorKind::NotFound => match std::fs::File::create_new(&path) {
                Ok(_) => {
                    let _ = std::fs::remove_file(&path);
                    "SQLite could not open it".to_owned()
                }
                Err(io) => format!("cannot create it in {}: {io}", dir.display()),
            },
            Err(io) => format!("cannot open it for writing: {io}"),
            Ok(_) => "SQLite could not open it".to_owned(),
        }
    };
    Ok(ConnectError::SqliteOpen {
        path,
        cause,
        source: e,
    })
}
