//! The primary/replica pair of `make test` (scripts/with-test-servers.sh): its URLs, a throwaway database on
//! it with the entities' tables, and the script that delays, stops and starts the replica.
//!
//! These tests never skip: without the pair's variables they fail, saying how to bring it up.

use std::time::{Duration, Instant};

use collex_tests::with_database;
use config::{DbConfig, DbTarget};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

/// Tests that delay, stop or start the replica (or count its reads) run one at a time.
pub static PAIR: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A variable the pair's script exports, or a panic saying how to get it.
pub fn pair_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the replica tests need the primary/replica pair and PgBouncer of `make test`; run \
             them under `bash scripts/with-test-servers.sh cargo test …` (make test does)"
        )
    })
}

/// Runs `scripts/pg-pair.sh ARGS` (delay, replica-stop, replica-start) on the pair of this run.
pub fn pair_script(args: &[&str]) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-pair.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .args(args)
        .env("COLLEX_PAIR_DIR", pair_var("COLLEX_PAIR_DIR"))
        .output()
        .expect("run scripts/pg-pair.sh");
    assert!(
        out.status.success(),
        "scripts/pg-pair.sh {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A database on the pair's primary with the entities' tables, visible on the replica; dropped on drop.
pub struct PairDb {
    name: String,
    primary: String,
    replica: String,
}

async fn connect(url: &str) -> DatabaseConnection {
    let mut opts = sea_orm::ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false).max_connections(2);
    Database::connect(opts)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the pair at {}: {e}", collex_tests::redact(url)))
}

impl PairDb {
    pub async fn new() -> Self {
        let primary_admin = pair_var("COLLEX_TEST_PRIMARY_URL");
        let replica_admin = pair_var("COLLEX_TEST_REPLICA_URL");
        let name = format!("collex_rr_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(&primary_admin).await;
        admin
            .execute_unprepared(&format!(r#"CREATE DATABASE "{name}""#))
            .await
            .expect("create database on the primary");
        let _ = admin.close().await;
        let db = Self {
            primary: with_database(&primary_admin, &name),
            replica: with_database(&replica_admin, &name),
            name,
        };
        let conn = connect(&db.primary).await;
        collex_tests::create_entity_tables(&conn).await;
        let _ = conn.close().await;
        db.wait_for_replica_tables().await;
        db
    }

    /// Waits until the replica has replayed the tables (the replica must not be delayed).
    async fn wait_for_replica_tables(&self) {
        let started = Instant::now();
        loop {
            let mut opts = sea_orm::ConnectOptions::new(self.replica.clone());
            opts.sqlx_logging(false).max_connections(1);
            if let Ok(c) = Database::connect(opts).await {
                let found = c
                    .query_one_raw(Statement::from_string(
                        c.get_database_backend(),
                        "SELECT to_regclass('businesses') IS NOT NULL AS there",
                    ))
                    .await
                    .ok()
                    .flatten()
                    .and_then(|r| r.try_get::<bool>("", "there").ok())
                    .unwrap_or(false);
                let _ = c.close().await;
                if found {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the replica did not show the test database's tables within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A configuration with the primary and the replica of this database.
    pub fn config(&self) -> DbConfig {
        let mut cfg = DbConfig::try_from_url(&self.primary).expect("primary url");
        let DbTarget::Postgres(replica) = DbConfig::try_from_url(&self.replica).expect("replica url").target
        else {
            panic!("the replica URL is PostgreSQL's")
        };
        cfg.replicas.targets = vec![replica];
        cfg.pool.max_open = 16;
        cfg
    }
}

impl Drop for PairDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let Ok(admin) = std::env::var("COLLEX_TEST_PRIMARY_URL") else {
            return;
        };
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                let mut opts = sea_orm::ConnectOptions::new(admin);
                opts.sqlx_logging(false).max_connections(1);
                if let Ok(c) = Database::connect(opts).await {
                    let _ = c
                        .execute_unprepared(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                        .await;
                    let _ = c.close().await;
                }
            });
        })
        .join();
    }
}

/// Waits until `check` holds, polling every 50 ms; panics with `what` after 30 s (a server that never gets
/// there, not a timing threshold).
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} did not happen within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
