//! Test harness shared by the integration tests: throwaway PostgreSQL databases (one per test, dropped when
//! the handle drops, also on panic) and in-memory SQLite connections.
//!
//! PostgreSQL is found at `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`). When it
//! cannot be reached the harness panics with what to do: PostgreSQL tests never skip silently.

use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// Default admin URL used when `TEST_DATABASE_URL` is unset.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The admin URL of the test cluster.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned())
}

/// Replaces the database name (the URL path) in a PostgreSQL URL, keeping the query string.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[prefix_end..].find('/') {
        Some(slash) => &base[..prefix_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A PostgreSQL database that exists for one test.
pub struct PgTestDb {
    name: String,
    url: String,
}

impl PgTestDb {
    /// Creates an empty database with a unique name.
    ///
    /// # Panics
    /// When PostgreSQL cannot be reached: the message says what to start or set.
    pub async fn new() -> Self {
        Self::create(None).await
    }

    /// Creates a database as a copy of `template` (which must have no open connections).
    ///
    /// # Panics
    /// When PostgreSQL cannot be reached or the template does not exist.
    pub async fn from_template(template: &str) -> Self {
        Self::create(Some(template)).await
    }

    async fn create(template: Option<&str>) -> Self {
        let admin = admin_connection().await;
        let name = format!(
            "collex_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            uuid::Uuid::new_v4().simple().to_string().get(..8).unwrap_or("x")
        );
        let sql = match template {
            Some(t) => format!(r#"CREATE DATABASE "{name}" TEMPLATE "{t}""#),
            None => format!(r#"CREATE DATABASE "{name}""#),
        };
        if let Err(e) = admin.execute_unprepared(&sql).await {
            panic!("cannot create test database {name}: {e}");
        }
        let _ = admin.close().await;
        let url = with_database(&admin_url(), &name);
        Self { name, url }
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL for this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens a SeaORM connection to this database.
    ///
    /// # Panics
    /// When the database cannot be reached.
    pub async fn connect(&self) -> DatabaseConnection {
        let mut opts = sea_orm::ConnectOptions::new(self.url.clone());
        opts.sqlx_logging(false).max_connections(32);
        match Database::connect(opts).await {
            Ok(db) => db,
            Err(e) => panic!("cannot connect to test database {}: {e}", self.name),
        }
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with its own runtime can.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                if let Ok(admin) = try_admin_connection().await {
                    let _ = admin
                        .execute_unprepared(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

async fn try_admin_connection() -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut opts = sea_orm::ConnectOptions::new(admin_url());
    opts.sqlx_logging(false).max_connections(1);
    Database::connect(opts).await
}

/// Connects to the admin database.
///
/// # Panics
/// With instructions when PostgreSQL is unreachable.
pub async fn admin_connection() -> DatabaseConnection {
    match try_admin_connection().await {
        Ok(db) => db,
        Err(e) => panic!(
            "PostgreSQL is not reachable at TEST_DATABASE_URL={} ({e}). Start PostgreSQL (make test starts a local \
             cluster if one is installed) or set TEST_DATABASE_URL to a server where user may CREATE DATABASE.",
            redact(&admin_url())
        ),
    }
}

/// Hides the password of a URL for messages.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{}://{user}:***@{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// A fresh in-memory SQLite database (one connection, so the memory database is shared by every query).
///
/// # Panics
/// When SQLite cannot be opened.
pub async fn sqlite_memory() -> DatabaseConnection {
    let mut opts = sea_orm::ConnectOptions::new("sqlite::memory:".to_owned());
    opts.sqlx_logging(false).max_connections(1).min_connections(1);
    match Database::connect(opts).await {
        Ok(db) => db,
        Err(e) => panic!("cannot open in-memory SQLite: {e}"),
    }
}

/// Creates the entities' tables straight from the entity definitions (SeaORM's schema builder), in
/// foreign-key order: the fast tier for behaviour tests that do not exercise migrations.
///
/// # Panics
/// When a table cannot be created.
pub async fn create_entity_tables(db: &DatabaseConnection) {
    let schema = sea_orm::Schema::new(db.get_database_backend());
    for meta in entity::registry::all() {
        let stmt = (meta.create_table)(&schema);
        if let Err(e) = db.execute(&stmt).await {
            panic!("cannot create table {}: {e}", meta.table);
        }
    }
}

/// A throwaway PostgreSQL database with the entities' tables, and a connection to it.
pub async fn pg_with_entities() -> (PgTestDb, DatabaseConnection) {
    let test_db = PgTestDb::new().await;
    let conn = test_db.connect().await;
    create_entity_tables(&conn).await;
    (test_db, conn)
}

/// An in-memory SQLite database with the entities' tables.
pub async fn sqlite_with_entities() -> DatabaseConnection {
    let conn = sqlite_memory().await;
    create_entity_tables(&conn).await;
    conn
}
