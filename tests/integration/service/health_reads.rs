//! Health and metrics reads when the database misbehaves: a lock held by another session cannot pile the
//! service's reads up on the server or exhaust the pool, and an outage is named as what it is (the last
//! connection error), not as an exhausted pool. On real PostgreSQL.

use std::time::Duration;

use collex_tests::{PgTestDb, admin_url};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

use super::support::{Load, Proxy, get, pg_config, start_with_runner, upstream, via, wait_for_status};

/// Backends of the service (everything on `db` but `except`) waiting for a lock right now.
async fn waiting_on_locks(admin: &sea_orm::DatabaseConnection, db: &str, except: i32) -> i64 {
    let row = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2 AND wait_event_type = 'Lock'",
            [db.into(), except.into()],
        ))
        .await
        .expect("read pg_stat_activity")
        .expect("one row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

#[tokio::test]
async fn reads_behind_another_sessions_lock_time_out_on_the_server_and_leave_the_pool_free() {
    let db = PgTestDb::migrated().await;
    let mut cfg = pg_config(db.url());
    cfg.pool.max_open = 2;
    cfg.migrate_path = collex_tests::migrations_dir();
    let svc = start_with_runner(cfg).await;
    let addr = svc.addr();

    // Another session (a long migration of another runner) holds ACCESS EXCLUSIVE locks on a table the drift
    // check reads and on the ledger the status reads.
    let locker = db.connect().await;
    let txn = locker.begin().await.expect("begin");
    txn.execute_unprepared("LOCK TABLE users, collex_migrations IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let pid: i32 = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_backend_pid()",
        ))
        .await
        .expect("pid")
        .expect("row")
        .try_get_by_index(0)
        .expect("pid value");

    // Many reads of the migration state (what start-up and an expired cache do) and scrapes; readiness is
    // asked in between and must stay 200 with two connections in the pool.
    for round in 0..6 {
        let forced = svc.state().refresh_migration_state();
        let scrapes = futures::future::join3(
            get(addr, "/metrics"),
            get(addr, "/health/detailed"),
            get(addr, "/metrics"),
        );
        let (state, (metrics, detailed, _)) = futures::future::join(forced, scrapes).await;
        assert_eq!(
            state.state, "unknown",
            "round {round}: the read cannot finish behind the lock"
        );
        assert_eq!(metrics.status, 200);
        assert!(
            detailed.status == 200 || detailed.status == 503,
            "{}",
            detailed.body
        );
        let ready = get(addr, "/ready").await;
        assert_eq!(ready.status, 200, "round {round}: {}", ready.body);
    }

    // Nothing of the service is left waiting on the server, though the lock is still held.
    let admin = collex_tests::admin_connection().await;
    let name = db.name().to_owned();
    let started = std::time::Instant::now();
    loop {
        let n = waiting_on_locks(&admin, &name, pid).await;
        if n == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{n} service queries still wait on the lock on the server"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = svc.pool().stats();
    assert_eq!(stats.open_connections, stats.in_use + stats.idle, "{stats:?}");

    // An unknown state is cached like a known one: scrapes within the TTL do not read again.
    let reads = svc.state().migration_state_reads();
    for _ in 0..3 {
        let m = get(addr, "/metrics").await;
        assert!(m.body.contains("collex_migration_state_known 0"), "{}", m.body);
    }
    assert_eq!(svc.state().migration_state_reads(), reads);
    assert_eq!(get(addr, "/ready").await.status, 200);

    txn.rollback().await.expect("release the lock");
    let fresh = svc.state().refresh_migration_state().await;
    assert_eq!(fresh.state, "known", "{fresh:?}");
    let _ = admin.close().await;
    svc.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_network_outage_under_load_is_named_not_reported_as_an_exhausted_pool() {
    let db = PgTestDb::new().await;
    let proxy = Proxy::start(upstream(&admin_url())).await;
    let mut cfg = via(pg_config(db.url()), &proxy);
    cfg.pool.max_open = 4;
    cfg.pool.acquire_timeout = Duration::from_secs(2);
    let svc = super::support::start(cfg).await;
    let addr = svc.addr();
    wait_for_status(addr, "/ready", 200, Duration::from_secs(10)).await;

    let load = Load::start(addr, "/health/database", 8);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The network swallows everything: connection attempts neither succeed nor fail.
    proxy.hang();
    wait_for_status(addr, "/ready", 503, Duration::from_secs(10)).await;
    for _ in 0..3 {
        let ready = get(addr, "/ready").await;
        assert_eq!(ready.status, 503);
        let error = ready.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(
            !error.contains("in use"),
            "an outage reported as exhaustion: {error}"
        );
        assert!(error.contains("cannot reach the database"), "{error}");
        let database = get(addr, "/health/database").await;
        let error = database.json()["database"]["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            !error.contains("in use"),
            "an outage reported as exhaustion: {error}"
        );
        assert!(error.contains("cannot reach the database"), "{error}");
        assert!(error.contains("last connection error"), "{error}");
    }

    proxy.restore();
    wait_for_status(addr, "/ready", 200, Duration::from_secs(15)).await;
    load.stop().await;
    svc.shutdown().await.expect("shutdown");
}
