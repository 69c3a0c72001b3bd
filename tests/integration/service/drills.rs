//! Drills on real PostgreSQL: an outage through a proxy the test controls, pool exhaustion, and a database
//! that is down when the service starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use collex_tests::{PgTestDb, TempDir, admin_url};
use sea_orm::ConnectionTrait;
use service::PoolError;

use super::support::{Load, Proxy, app, get, pg_config, start, upstream, via, wait_for_status};

#[tokio::test]
async fn an_outage_turns_ready_to_503_while_live_stays_200_and_recovers() {
    let db = PgTestDb::new().await;
    let proxy = Proxy::start(upstream(&admin_url())).await;
    let mut cfg = via(pg_config(db.url()), &proxy);
    cfg.pool.max_open = 4;
    let svc = start(cfg).await;
    let addr = svc.addr();
    wait_for_status(addr, "/ready", 200, Duration::from_secs(10)).await;

    // Load while the path is cut and restored, and a sampler of open connections.
    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicU32::new(0));
    let sampler = tokio::spawn({
        let (stop, most, pool) = (stop.clone(), most.clone(), svc.pool().clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                most.fetch_max(pool.stats().open_connections, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let load = Load::start(addr, "/health/database", 8);

    proxy.cut();
    wait_for_status(addr, "/ready", 503, Duration::from_secs(2)).await;
    let ready = get(addr, "/ready").await;
    assert_eq!(ready.json()["checks"]["database"], "unhealthy", "{}", ready.body);
    assert!(
        ready.json()["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{}",
        ready.body
    );
    for _ in 0..5 {
        assert_eq!(
            get(addr, "/live").await.status,
            200,
            "/live must not depend on the database"
        );
    }

    proxy.restore();
    wait_for_status(addr, "/ready", 200, Duration::from_secs(2)).await;
    assert_eq!(get(addr, "/health/database").await.status, 200);

    stop.store(true, Ordering::SeqCst);
    load.stop().await;
    sampler.await.expect("sampler did not panic");
    assert!(
        most.load(Ordering::SeqCst) <= 4,
        "pool opened {} > DB_MAX_OPEN_CONNS",
        most.load(Ordering::SeqCst)
    );
    assert!(
        proxy.max_open() <= 4,
        "proxy carried {} connections at once",
        proxy.max_open()
    );
    svc.shutdown().await.expect("clean shutdown");
    // Shutdown closed the pool: no connection is left open on the server side of the proxy.
    super::support::eventually(Duration::from_secs(10), "pool connections closed", || {
        proxy.open() == 0
    })
    .await;
}

#[tokio::test]
async fn exhausting_the_pool_counts_waits_and_times_out_with_a_clear_error() {
    let db = PgTestDb::new().await;
    let mut cfg = pg_config(db.url());
    cfg.pool.max_open = 5;
    cfg.pool.acquire_timeout = Duration::from_millis(500);
    let svc = start(cfg).await;
    let pool = svc.pool().clone();

    // 50 users; those who get a connection hold it until the others have given up.
    let (release, released) = tokio::sync::watch::channel(false);
    let users: Vec<_> = (0..50)
        .map(|_| {
            let (pool, mut released) = (pool.clone(), released.clone());
            tokio::spawn(async move {
                match pool.acquire().await {
                    Ok(conn) => {
                        let _ = released.wait_for(|r| *r).await;
                        drop(conn);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            })
        })
        .collect();

    super::support::eventually(Duration::from_secs(30), "45 users time out", || {
        pool.counters().timeouts() == 45
    })
    .await;
    let during = pool.stats();
    assert_eq!((during.open_connections, during.in_use), (5, 5));
    assert!(during.wait_count >= 45, "{during:?}");
    assert!(
        during.wait_duration >= Duration::from_millis(500) * 45,
        "{during:?}"
    );

    // An HTTP caller meets the same limit and gets the same clear answer.
    let r = get(svc.addr(), "/health/database").await;
    assert_eq!(r.status, 503, "{}", r.body);
    let error = r.json()["database"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("no database connection became free within 500ms"),
        "{error}"
    );
    assert!(error.contains("DB_MAX_OPEN_CONNS"), "{error}");
    assert_eq!(r.json()["database"]["pool_stats"]["in_use"], 5);

    release.send_replace(true);
    let (mut ok, mut timed_out) = (0, 0);
    for u in users {
        let outcome = tokio::time::timeout(Duration::from_secs(30), u)
            .await
            .expect("no user hangs")
            .expect("user task did not panic");
        match outcome {
            Ok(()) => ok += 1,
            Err(PoolError::Timeout { max_open, .. }) => {
                assert_eq!(max_open, 5);
                timed_out += 1;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((ok, timed_out), (5, 45));
    assert_eq!(get(svc.addr(), "/health/database").await.status, 200);
    assert!(pool.stats().wait_count >= during.wait_count);
    svc.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_database_down_at_start_is_connected_and_migrated_when_it_returns() {
    let db = PgTestDb::new().await;
    let proxy = Proxy::start(upstream(&admin_url())).await;
    proxy.cut();
    let dir = TempDir::new();
    let header = |kind: &str| format!("-- {kind}: widgets\n-- Version: 001\n-- Description: widgets\n\n");
    dir.write(
        "001_widgets.sql",
        format!(
            "{}CREATE TABLE widgets (id integer PRIMARY KEY);\n",
            header("Migration")
        ),
    );
    dir.write(
        "001_rollback.sql",
        format!("{}DROP TABLE widgets;\n", header("Rollback Migration")),
    );

    let mut cfg = via(pg_config(db.url()), &proxy);
    cfg.auto_migrate = true;
    cfg.migrate_path = dir.path().to_path_buf();
    let runner = Arc::new(service::Runner::new(cfg.clone()));
    let svc = service::start(app(cfg), runner)
        .await
        .expect("starts without a database");
    let addr = svc.addr();
    assert_eq!(get(addr, "/live").await.status, 200);
    let ready = get(addr, "/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.json()["checks"]["migrations"], "not started");

    proxy.restore();
    wait_for_status(addr, "/ready", 200, Duration::from_secs(15)).await;
    let ready = get(addr, "/ready").await.json();
    assert_eq!(ready["checks"]["migrations"], "applied");
    let detailed = get(addr, "/health/detailed").await.json();
    assert_eq!(detailed["migrations"]["latest_applied_version"], 1, "{detailed}");
    assert_eq!(detailed["migrations"]["pending"], 0, "{detailed}");
    assert_ne!(detailed["migrations"]["drift"], "unknown", "{detailed}");

    let conn = db.connect().await;
    conn.execute_unprepared("SELECT id FROM widgets")
        .await
        .expect("auto-migrate created the table");
    svc.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn an_unreachable_server_is_reported_as_such_not_as_an_exhausted_pool() {
    let db = PgTestDb::new().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let mut cfg = pg_config(db.url());
    if let config::DbTarget::Postgres(t) = &mut cfg.target {
        t.port = closed.port();
    }
    cfg.pool.acquire_timeout = Duration::from_millis(500);
    let pool = service::Pool::new(&cfg).expect("pool");
    let err = pool.acquire().await.expect_err("nothing listens there");
    assert!(matches!(err, PoolError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("cannot reach the database within 500ms"), "{text}");
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(!text.contains("in use"), "{text}");
    assert_eq!(pool.counters().timeouts(), 1);
    pool.close().await;
}
