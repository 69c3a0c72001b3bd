//! Test harness shared by the integration tests: throwaway PostgreSQL databases (one per test, dropped when
//! the handle drops, also on panic) and in-memory SQLite connections.
//!
//! PostgreSQL is found at `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`). When it
//! cannot be reached the harness panics with what to do: PostgreSQL tests never skip silently.
//!
//! It also owns what several test modules need around the built binaries: temporary directories
//! ([`TempDir`]), the workspace's binaries next to the test executable ([`workspace_bin`]), commands that run
//! with a clean environment ([`clean_command`]) and a minimal HTTP client ([`http`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use config::redact_url as redact;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

pub mod http;

/// `url` with its database name replaced by `db`.
///
/// # Panics
/// When `url` is not a URL (`TEST_DATABASE_URL` must be one).
pub fn with_database(url: &str, db: &str) -> String {
    config::with_database(url, db).unwrap_or_else(|e| panic!("TEST_DATABASE_URL: {e}"))
}

/// Default admin URL used when `TEST_DATABASE_URL` is unset.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The admin URL of the test cluster.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned())
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

    /// Creates a database migrated with the repository's `migrations/` (the real runner, PostgreSQL variants),
    /// as a copy of a template migrated once per migrations content (see [`migrated_template`]).
    ///
    /// # Panics
    /// When PostgreSQL cannot be reached or a migration fails.
    pub async fn migrated() -> Self {
        let template = migrated_template().await;
        Self::from_template(&template).await
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

/// The application role the row-level security tests connect as, as the README's "Roles" describes it:
/// `LOGIN NOSUPERUSER NOBYPASSRLS`, owning no table (the tables stay the migrating superuser's).
pub const APP_ROLE: &str = "collex_test_app";

impl PgTestDb {
    /// A pool of `max` connections to this database logged in as [`APP_ROLE`], after creating the role (once
    /// per cluster) and giving it the grants the README lists: data access on the tables, nothing more.
    ///
    /// # Panics
    /// When the role cannot be created or granted, or the database cannot be reached as it.
    pub async fn connect_as_app(&self, max: u32) -> DatabaseConnection {
        use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
        use std::str::FromStr;
        let owner = self.connect().await;
        // Concurrent tests may race to create the role: either error means it exists.
        let setup = format!(
            "DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$; \
             GRANT USAGE ON SCHEMA public TO {APP_ROLE}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}; \
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE};"
        );
        if let Err(e) = owner.execute_unprepared(&setup).await {
            panic!("cannot set up the application role {APP_ROLE}: {e}");
        }
        let _ = owner.close().await;
        let opts = match PgConnectOptions::from_str(&self.url) {
            Ok(o) => o.username(APP_ROLE),
            Err(e) => panic!("TEST_DATABASE_URL: {e}"),
        };
        match PgPoolOptions::new().max_connections(max).connect_with(opts).await {
            Ok(pool) => sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool),
            Err(e) => panic!("cannot connect to {} as {APP_ROLE}: {e}", self.name),
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

/// The repository's `migrations/` directory.
pub fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("migrations")
}

/// How many versions the repository's `migrations/` holds (forward files, every variant counted once).
pub fn repo_migration_versions() -> usize {
    let mut versions: Vec<String> = std::fs::read_dir(migrations_dir())
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sql") && !n.contains("_rollback"))
                .filter_map(|n| n.split('_').next().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.dedup();
    versions.len()
}

/// Applies the repository's `migrations/` (with the Rust migrations, the variants of `db`'s backend and
/// the default options) through the real runner: what `migration up` does.
pub async fn apply_repo_migrations(
    db: &DatabaseConnection,
) -> Result<migration::RunReport, migration::MigrateError> {
    migration::apply_pending(
        db,
        &migrations_dir(),
        migration::rust_migrations(),
        migration::Options::default(),
    )
    .await
}

/// A hash of every file name and content in `dir`, so a template is rebuilt when any migration changes.
fn dir_hash(dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let body = std::fs::read(e.path()).unwrap_or_default();
                    (name, body)
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    // `DefaultHasher::new()` uses fixed keys: the same content gives the same name in every process.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    files.hash(&mut h);
    format!("{:016x}", h.finish())
}

static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// The name of a database migrated with the repository's migrations, created once per migrations content
/// (`collex_tpl_<hash>`) and reused by every later test process. Concurrent test processes serialise the
/// creation with an advisory lock; the template is built under a temporary name and renamed when complete,
/// so a run that dies half-way never leaves a half-migrated template behind.
///
/// # Panics
/// When PostgreSQL cannot be reached or a migration fails.
pub async fn migrated_template() -> String {
    TEMPLATE
        .get_or_init(|| async {
            // A runtime of its own: the OnceCell may be initialised from any test's runtime, and the
            // connections made here must not outlive the runtime that made them.
            std::thread::spawn(build_template)
                .join()
                .unwrap_or_else(|_| panic!("building the migrated template database panicked"))
        })
        .await
        .clone()
}

fn build_template() -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for building the template");
    rt.block_on(async {
        let dir = migrations_dir();
        let name = format!("collex_tpl_{}", dir_hash(&dir));
        let admin = admin_connection().await;
        // "collex_tp" in ASCII: one key for every test process on this cluster.
        const KEY: i64 = 0x636f_6c6c_6578_7470;
        admin
            .execute_unprepared(&format!("SELECT pg_advisory_lock({KEY})"))
            .await
            .expect("template advisory lock");
        let exists = admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
            ))
            .await
            .expect("look for the template")
            .is_some();
        if !exists {
            let building = format!("{name}_building_{}", std::process::id());
            let _ = admin
                .execute_unprepared(&format!(r#"DROP DATABASE IF EXISTS "{building}" WITH (FORCE)"#))
                .await;
            admin
                .execute_unprepared(&format!(r#"CREATE DATABASE "{building}""#))
                .await
                .expect("create the template database");
            let mut opts = sea_orm::ConnectOptions::new(with_database(&admin_url(), &building));
            opts.sqlx_logging(false).max_connections(2);
            let db = Database::connect(opts)
                .await
                .expect("connect to the template database");
            if let Err(e) = apply_repo_migrations(&db).await {
                let _ = db.close().await;
                let _ = admin
                    .execute_unprepared(&format!(r#"DROP DATABASE IF EXISTS "{building}" WITH (FORCE)"#))
                    .await;
                panic!("migrating the template database failed: {e}");
            }
            let _ = db.close().await;
            admin
                .execute_unprepared(&format!(r#"ALTER DATABASE "{building}" RENAME TO "{name}""#))
                .await
                .expect("rename the template database");
            // When it was built, so another checkout's test run (other migrations, other hash) running at the
            // same time keeps its template: only templates unused for a while are dropped as stale.
            drop_stale_templates(&admin, &name).await;
        }
        // When it was last taken into use, so another checkout's test run (other migrations, other hash) at
        // the same time keeps its template: only templates unused for a while are dropped as stale.
        let _ = admin
            .execute_unprepared(&format!(
                r#"COMMENT ON DATABASE "{name}" IS 'collex test template used at {}'"#,
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            ))
            .await;
        let _ = admin
            .execute_unprepared(&format!("SELECT pg_advisory_unlock({KEY})"))
            .await;
        let _ = admin.close().await;
        name
    })
}

/// Drops templates of other migrations contents that no test run took into use for two hours, so they do not pile up
/// across runs while a concurrent run from another checkout keeps its own. Without `FORCE`: a template
/// another process is cloning right now stays, and is dropped by a later run.
async fn drop_stale_templates(admin: &DatabaseConnection, keep: &str) {
    let Ok(rows) = admin
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT datname FROM pg_database d WHERE datname LIKE 'collex\\_tpl\\_%' \
             AND datname NOT LIKE '%\\_building\\_%' \
             AND coalesce(substring(shobj_description(d.oid, 'pg_database') FROM 'used at ([0-9]+)')::bigint, 0) \
                 < extract(epoch FROM now())::bigint - 7200"
                .to_owned(),
        ))
        .await
    else {
        return;
    };
    for row in rows {
        let Ok(name) = row.try_get::<String>("", "datname") else {
            continue;
        };
        if name != keep {
            let _ = admin
                .execute_unprepared(&format!(r#"DROP DATABASE IF EXISTS "{name}""#))
                .await;
        }
    }
}

/// A temporary directory ([`tempfile::TempDir`]), removed with everything in it when dropped (also when the
/// test panics), with the file helpers the tests share.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// An empty directory whose name is unique across the tests and test processes of this machine.
    ///
    /// # Panics
    /// When the directory cannot be created.
    pub fn new() -> Self {
        Self(
            tempfile::Builder::new()
                .prefix("collex_test_")
                .tempdir()
                .expect("create temp dir"),
        )
    }

    /// A copy of the repository's `migrations/`, so a test may add to it or edit it.
    ///
    /// # Panics
    /// When `migrations/` cannot be read or copied.
    pub fn with_repo_migrations() -> Self {
        let d = Self::new();
        for e in std::fs::read_dir(migrations_dir())
            .expect("migrations dir")
            .flatten()
        {
            std::fs::copy(e.path(), d.path().join(e.file_name())).expect("copy migration");
        }
        d
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Writes (or overwrites) a file in it; returns its path.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, content).unwrap_or_else(|e| panic!("write {name}: {e}"));
        p
    }

    /// The file names in it, sorted.
    ///
    /// # Panics
    /// When the directory cannot be read.
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path())
            .expect("read temp dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// The text of a file in it.
    ///
    /// # Panics
    /// When the file cannot be read.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

/// `target/<profile>`, where the test executable's `deps/` directory is.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// A binary of this workspace (`migration`, `service`), found next to the test executable:
/// `target/<profile>/deps/integration-*` -> `target/<profile>/<name>`. `make test` builds every binary first.
///
/// # Panics
/// When the binary has not been built, saying how to build it.
pub fn workspace_bin(name: &str) -> PathBuf {
    let bin = profile_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --workspace --bins` (make test does)",
        bin.display()
    );
    bin
}

/// An example program of this workspace (`tour`): `target/<profile>/examples/<name>`. `cargo test --workspace`
/// (and so `make test`) builds the examples before it runs any test.
///
/// # Panics
/// When the example has not been built, saying how to build it.
pub fn workspace_example(name: &str) -> PathBuf {
    let bin = profile_dir()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --workspace --examples` (`cargo test --workspace` does)",
        bin.display()
    );
    bin
}

/// A command for `program` with an empty environment but `PATH`, so nothing of the developer's shell
/// (`DATABASE_URL`, `DB_*`, `SERVER_ADDR`) leaks into what the test runs.
pub fn clean_command(program: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}
