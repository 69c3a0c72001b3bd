//! The bench's PostgreSQL: the admin URL (always `sslmode=disable`, so every side pays the same transport),
//! fresh databases dropped at the end, and the `users` data set the read and update benchmarks share.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Schema, sqlx::Row as _};
use uuid::Uuid;

pub use config::redact_url as redact;
use config::with_database;

use crate::report::Report;
use crate::tools;

/// Default admin URL when `TEST_DATABASE_URL` is unset (the same as the tests').
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Rows in `users`; the last [`DELETED`] of them are soft-deleted.
pub const USERS: u32 = 100_000;
/// Soft-deleted rows at the end of the id range; reads sample `1..=USERS-DELETED` only.
pub const DELETED: u32 = 1_000;

/// `url` with `sslmode=disable`, replacing any `sslmode` it had: TLS on this machine's PostgreSQL costs about
/// 30 % of pgbench's throughput, so every side of a comparison runs without it.
///
/// # Errors
/// When `url` is not a URL.
pub fn sslmode_disable(url: &str) -> anyhow::Result<String> {
    let mut u =
        url::Url::parse(url).with_context(|| format!("TEST_DATABASE_URL is not a URL: {}", redact(url)))?;
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != "sslmode")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("sslmode", "disable");
    Ok(u.into())
}

/// A connection with a fixed pool size and no statement logging.
pub async fn connect(url: &str, pool: u32) -> anyhow::Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(pool)
        .min_connections(pool)
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    Database::connect(opts)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))
}

/// The cluster at `TEST_DATABASE_URL` and the databases this run made in it.
pub struct Databases {
    /// Admin URL with `sslmode=disable`.
    pub admin_url: String,
    admin: DatabaseConnection,
    prefix: String,
    created: Mutex<Vec<String>>,
}

impl Databases {
    /// Connects to the admin database.
    ///
    /// # Errors
    /// When PostgreSQL does not answer.
    pub async fn connect() -> anyhow::Result<Self> {
        let raw = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let admin_url = sslmode_disable(&raw)?;
        let admin = connect(&admin_url, 1).await.context(
            "PostgreSQL must answer at TEST_DATABASE_URL (run scripts/ensure-postgres.sh or set the variable)",
        )?;
        Ok(Self {
            admin_url,
            admin,
            prefix: format!("collex_bench_{}", std::process::id()),
            created: Mutex::new(Vec::new()),
        })
    }

    /// Creates an empty database `<prefix>_<suffix>` (dropping a leftover of that name) and returns its URL.
    ///
    /// # Errors
    /// Database errors.
    pub async fn fresh(&self, suffix: &str) -> anyhow::Result<String> {
        let name = format!("{}_{suffix}", self.prefix);
        self.admin
            .execute_unprepared(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
            .await?;
        self.admin
            .execute_unprepared(&format!(r#"CREATE DATABASE "{name}""#))
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        if let Ok(mut created) = self.created.lock()
            && !created.contains(&name)
        {
            created.push(name.clone());
        }
        Ok(with_database(&self.admin_url, &name)?)
    }

    /// One value of a query on the admin database (e.g. `SELECT version()`).
    pub async fn scalar(&self, sql: &'static str) -> Option<String> {
        let pool = self.admin.get_postgres_connection_pool();
        sea_orm::sqlx::query(sql)
            .fetch_one(pool)
            .await
            .ok()
            .and_then(|row| row.try_get::<String, _>(0).ok())
    }

    /// Drops every database this run created.
    pub async fn drop_all(&self) {
        let names = self.created.lock().map(|c| c.clone()).unwrap_or_default();
        for name in names {
            if let Err(e) = self
                .admin
                .execute_unprepared(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                .await
            {
                eprintln!("collex-bench: could not drop database {name}: {e}");
            }
        }
    }
}

/// The read/update data set: `users` with [`USERS`] rows across 3 businesses, and `pgbench_accounts`.
pub struct Data {
    /// URL of the database.
    pub url: String,
    /// A small connection for setup and checks.
    pub db: DatabaseConnection,
    /// How the schema was made.
    pub schema_source: String,
}

/// Deterministic ids, so pgbench's script can compute the same ones server-side: `md5(i)::uuid`.
pub fn user_id(i: u32) -> Uuid {
    Uuid::from_bytes(md5(i.to_string().as_bytes()))
}

/// The phone number of user `i`: `'+1555' || lpad(i, 7, '0')`, as `load` writes it.
pub fn phone(i: u32) -> String {
    format!("+1555{i:07}")
}

/// The business of user `i`: `md5('b' || i % 3)::uuid`.
pub fn business_id(i: u32) -> Uuid {
    Uuid::from_bytes(md5(format!("b{}", i % 3).as_bytes()))
}

/// Creates the read/update database, its schema and data.
///
/// The schema comes from the release `migration` binary (`migration up` with the committed migrations) when
/// it makes the `users` table; otherwise (no release binary, or it failed, which the report notes) from SeaORM's
/// `Schema::create_table_from_entity` for each entry of `entity::registry::all()`.
///
/// # Errors
/// Database errors, or when `pgbench -i` fails.
pub async fn prepare_data(dbs: &Databases, bin_dir: &Path, report: &mut Report) -> anyhow::Result<Data> {
    let url = dbs.fresh("data").await?;
    let mut schema_source = String::new();
    let migration = bin_dir.join("migration");
    if migration.exists() {
        let out = tokio::process::Command::new(&migration)
            .arg("up")
            .env("DATABASE_URL", &url)
            .env_remove("DB_MIGRATE_PATH")
            .output()
            .await;
        let db = connect(&url, 1).await?;
        let has_users = table_exists(&db, "users").await?;
        db.close().await.ok();
        match out {
            Ok(o) if o.status.success() && has_users => {
                schema_source = "release `migration up` (committed migrations)".into();
            }
            Ok(o) => report.note(format!(
                "schema: `migration up` did not make the users table (exit {:?}, stderr: {}); \
                 fell back to Schema::create_table_from_entity",
                o.status.code(),
                tools::tail(&o.stderr, 300)
            )),
            Err(e) => report.note(format!("schema: cannot run {}: {e}", migration.display())),
        }
    }
    let url = if schema_source.is_empty() {
        let url = dbs.fresh("data").await?;
        let db = connect(&url, 1).await?;
        let schema = Schema::new(db.get_database_backend());
        for meta in entity::registry::all() {
            let stmt = (meta.create_table)(&schema);
            db.execute(&stmt)
                .await
                .with_context(|| format!("cannot create table {}", meta.table))?;
        }
        db.close().await.ok();
        schema_source = "Schema::create_table_from_entity per entity::registry::all()".into();
        url
    } else {
        url
    };
    eprintln!("collex-bench: schema from {schema_source}; loading {USERS} users");
    let db = connect(&url, 2).await?;
    load(&db).await?;
    tools::pgbench_init(&url).await?;
    Ok(Data {
        url,
        db,
        schema_source,
    })
}

async fn table_exists(db: &DatabaseConnection, table: &str) -> anyhow::Result<bool> {
    let row = sea_orm::sqlx::query("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("public.{table}"))
        .fetch_one(db.get_postgres_connection_pool())
        .await?;
    Ok(row.try_get::<bool, _>(0)?)
}

async fn load(db: &DatabaseConnection) -> anyhow::Result<()> {
    let sql = format!(
        "INSERT INTO businesses (id, created_at, updated_at, version, name, slug, status)
           SELECT md5('b' || b)::uuid, now(), now(), 1, 'Business ' || b, 'business-' || b, 'active'
           FROM generate_series(0, 2) b;
         INSERT INTO users (id, created_at, updated_at, business_id, version, phone_number, email,
                            display_name, status, deleted_at)
           SELECT md5(i::text)::uuid, now(), now(), md5('b' || (i % 3))::uuid, 1,
                  '+1555' || lpad(i::text, 7, '0'), 'user' || i || '@example.com', '0', 'active',
                  CASE WHEN i > {live} THEN now() END
           FROM generate_series(1, {USERS}) i;
         ANALYZE;",
        live = USERS - DELETED
    );
    db.execute_unprepared(&sql)
        .await
        .context("cannot load the users data set")?;
    let row = sea_orm::sqlx::query("SELECT count(*) FROM users WHERE deleted_at IS NULL")
        .fetch_one(db.get_postgres_connection_pool())
        .await?;
    let live: i64 = row.try_get(0)?;
    if live != i64::from(USERS - DELETED) {
        bail!(
            "expected {} live users after loading, found {live}",
            USERS - DELETED
        );
    }
    // The client computes ids with its own MD5; check it agrees with PostgreSQL's.
    let row = sea_orm::sqlx::query("SELECT md5('42')::uuid, md5('b1')::uuid")
        .fetch_one(db.get_postgres_connection_pool())
        .await?;
    let (a, b): (Uuid, Uuid) = (row.try_get(0)?, row.try_get(1)?);
    if a != user_id(42) || b != business_id(1) {
        bail!("client-side md5 ids disagree with PostgreSQL's");
    }
    Ok(())
}

/// MD5 (RFC 1321), so the client and pgbench's script derive the same UUIDs.
fn md5(input: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(input).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_the_rfc_test_vectors() {
        let hex = |b: [u8; 16]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(md5(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            )),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    #[test]
    fn sslmode_is_forced_to_disable() {
        assert_eq!(
            sslmode_disable("postgres://h/db").expect("a URL"),
            "postgres://h/db?sslmode=disable"
        );
        assert_eq!(
            sslmode_disable("postgres://h/db?sslmode=require&application_name=x").expect("a URL"),
            "postgres://h/db?application_name=x&sslmode=disable"
        );
    }

    #[test]
    fn redact_hides_the_password() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
