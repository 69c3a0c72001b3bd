//! Each Go `DBStats` counter moved by its cause, on real PostgreSQL: the idle cap (Go's rule with
//! `DB_MAX_IDLE_GRACE=0`, HikariCP's with a grace period), the idle time, the lifetime (on release and while
//! idle), a wait, and the accounting after the server kills connections under load.

use std::time::Duration;

use collex_tests::PgTestDb;
use service::Pool;

use super::support::{eventually, pg_config};

const BOUND: Duration = Duration::from_secs(15);

fn pool(db: &PgTestDb, tune: impl FnOnce(&mut config::PoolConfig)) -> Pool {
    let mut cfg = pg_config(db.url());
    tune(&mut cfg.pool);
    Pool::new(&cfg).expect("pool builds")
}

#[tokio::test]
async fn without_a_grace_period_releasing_beyond_the_idle_cap_closes_and_counts_at_once() {
    let db = PgTestDb::new().await;
    let pool = pool(&db, |p| {
        p.max_open = 5;
        p.max_idle = 1;
        p.idle_grace = Duration::ZERO;
    });
    let held: Vec<_> = futures::future::join_all((0..3).map(|_| pool.acquire())).await;
    assert_eq!(pool.stats().open_connections, 3);
    drop(held);

    eventually(BOUND, "two releases closed by the idle cap", || {
        pool.stats().max_idle_closed == 2
    })
    .await;
    eventually(BOUND, "one connection left idle", || {
        let s = pool.stats();
        s.idle == 1 && s.open_connections == 1
    })
    .await;
    let s = pool.stats();
    assert_eq!((s.max_idle_time_closed, s.max_lifetime_closed), (0, 0));
    pool.close().await;
}

#[tokio::test]
async fn a_connection_idle_longer_than_the_idle_time_is_closed_and_counted() {
    let db = PgTestDb::new().await;
    let pool = pool(&db, |p| {
        p.max_idle_time = Some(Duration::from_millis(200));
        p.max_lifetime = None;
    });
    drop(pool.acquire().await.expect("acquire"));
    eventually(BOUND, "idle connection closed for idle time", || {
        let s = pool.stats();
        s.max_idle_time_closed == 1 && s.open_connections == 0
    })
    .await;
    let s = pool.stats();
    assert_eq!((s.max_idle_closed, s.max_lifetime_closed), (0, 0));
    pool.close().await;
}

#[tokio::test]
async fn a_connection_released_after_its_lifetime_is_closed_and_counted() {
    let db = PgTestDb::new().await;
    let pool = pool(&db, |p| {
        p.max_lifetime = Some(Duration::from_millis(200));
        p.max_idle_time = None;
    });
    let conn = pool.acquire().await.expect("acquire");
    // Held past its lifetime: the release must close it rather than keep it idle.
    tokio::time::sleep(Duration::from_millis(400)).await;
    drop(conn);
    eventually(BOUND, "released connection closed for lifetime", || {
        let s = pool.stats();
        s.max_lifetime_closed == 1 && s.open_connections == 0
    })
    .await;
    assert_eq!(pool.stats().max_idle_time_closed, 0);
    pool.close().await;
}

#[tokio::test]
async fn an_idle_connection_that_outlives_its_lifetime_is_closed_and_counted() {
    let db = PgTestDb::new().await;
    let pool = pool(&db, |p| {
        p.max_lifetime = Some(Duration::from_millis(300));
        p.max_idle_time = None;
    });
    drop(pool.acquire().await.expect("acquire"));
    eventually(BOUND, "idle connection closed for lifetime", || {
        let s = pool.stats();
        s.max_lifetime_closed == 1 && s.open_connections == 0
    })
    .await;
    pool.close().await;
}

#[tokio::test]
async fn waiting_for_a_busy_pool_counts_the_wait_and_its_duration() {
    let db = PgTestDb::new().await;
    let pool = pool(&db, |p| p.max_open = 1);
    let held = pool.acquire().await.expect("acquire");
    assert_eq!(pool.stats().wait_count, 0);

    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.acquire().await.map(drop) }
    });
    eventually(BOUND, "the second caller is counted as waiting", || {
        pool.stats().wait_count == 1
    })
    .await;
    assert_eq!(pool.counters().pending(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(held);
    waiter
        .await
        .expect("waiter task")
        .expect("waiter gets the connection");

    let s = pool.stats();
    assert_eq!(s.wait_count, 1);
    assert!(
        s.wait_duration >= Duration::from_millis(100),
        "{:?}",
        s.wait_duration
    );
    assert_eq!(pool.counters().pending(), 0);
    pool.close().await;
}

#[tokio::test]
async fn an_acquire_with_a_free_connection_is_not_a_wait() {
    let db = PgTestDb::new().await;
    let pool = pool(&db, |p| p.max_open = 2);
    for _ in 0..5 {
        drop(pool.acquire().await.expect("acquire"));
    }
    let s = pool.stats();
    assert_eq!((s.wait_count, s.wait_duration), (0, Duration::ZERO));
    pool.close().await;
}

/// Terminates every backend of the test database but the caller's (what an operator or a failover does).
async fn terminate_backends(admin: &sea_orm::DatabaseConnection, db: &str) -> i64 {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            [db.into()],
        ))
        .await
        .expect("terminate backends")
        .and_then(|r| r.try_get_by_index::<i64>(0).ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn connections_killed_by_the_server_under_load_leave_the_idle_accounting_exact() {
    // Go's rule, decided at each release: the path whose bookkeeping a dying connection could leak.
    killed_under_load(Duration::ZERO).await;
}

#[tokio::test]
async fn connections_killed_by_the_server_under_load_leave_the_idle_accounting_exact_with_a_grace() {
    killed_under_load(Duration::from_millis(200)).await;
}

async fn killed_under_load(grace: Duration) {
    let db = PgTestDb::new().await;
    let pool = pool(&db, |p| {
        p.max_open = 8;
        p.max_idle = 2;
        p.idle_grace = grace;
        // No lifetime or idle time: no cleaner that could tidy the accounting up behind the test.
        p.max_lifetime = None;
        p.max_idle_time = None;
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let Ok(mut conn) = pool.acquire().await else {
                        continue;
                    };
                    if let Some(pg) = conn.postgres() {
                        let _ = sea_orm::sqlx::query("SELECT pg_sleep(0.01)")
                            .execute(&mut **pg)
                            .await;
                    }
                }
            })
        })
        .collect();
    let admin = collex_tests::admin_connection().await;
    let mut killed = 0;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        killed += terminate_backends(&admin, db.name()).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in load {
        t.await.expect("load task");
    }
    assert!(killed >= 10, "only {killed} backends were terminated");

    eventually(BOUND, "every connection back after the load", || {
        let s = pool.stats();
        s.in_use == 0 && s.open_connections == s.idle && s.idle <= 2
    })
    .await;

    // The cap still keeps two idle connections: a burst of six leaves two idle, not zero.
    let closed_before = pool.stats().max_idle_closed;
    let burst: Vec<_> = futures::future::join_all((0..6).map(|_| pool.acquire()))
        .await
        .into_iter()
        .map(|c| c.expect("acquire after the terminations"))
        .collect();
    assert_eq!(pool.stats().in_use, 6);
    drop(burst);
    eventually(
        BOUND,
        "two connections kept idle, the rest closed and counted",
        || {
            let s = pool.stats();
            s.idle == 2 && s.open_connections == 2 && s.in_use == 0
        },
    )
    .await;
    // Six released, two kept: four closed by the cap, each counted once.
    assert_eq!(pool.stats().max_idle_closed, closed_before + 4);
    let _ = admin.close().await;
    pool.close().await;
}

/// Takes `n` connections at once, then gives them all back.
async fn burst(pool: &Pool, n: usize) {
    let held: Vec<_> = futures::future::join_all((0..n).map(|_| pool.acquire()))
        .await
        .into_iter()
        .map(|c| c.expect("acquire"))
        .collect();
    assert_eq!(pool.stats().in_use as usize, n);
    drop(held);
    // sqlx takes released connections back in tasks of its own: wait until none is on its way.
    eventually(BOUND, "every connection of the burst back or closed", || {
        pool.stats().in_use == 0
    })
    .await;
}

#[tokio::test]
async fn a_grace_of_zero_reproduces_gos_counts_burst_after_burst() {
    let db = PgTestDb::new().await;
    let pool = pool(&db, |p| {
        p.max_open = 10;
        p.max_idle = 3;
        p.idle_grace = Duration::ZERO;
        p.max_lifetime = None;
        p.max_idle_time = None;
    });
    // Go: each burst of 8 reuses the 3 idle connections, opens 5, and closes 5 at release.
    for round in 1..=4u64 {
        burst(&pool, 8).await;
        eventually(BOUND, "three idle after the burst", || {
            let s = pool.stats();
            s.idle == 3 && s.open_connections == 3
        })
        .await;
        assert_eq!(pool.stats().max_idle_closed, 5 * round);
    }
    assert_eq!(
        pool.counters().create_time.count(),
        8 + 5 * 3,
        "connections opened"
    );
    pool.close().await;
}

#[tokio::test]
async fn a_grace_period_keeps_a_burst_then_retires_and_counts_every_surplus_connection() {
    let db = PgTestDb::new().await;
    let pool = pool(&db, |p| {
        p.max_open = 10;
        p.max_idle = 3;
        p.idle_grace = Duration::from_secs(1);
        p.max_lifetime = None;
        p.max_idle_time = None;
    });
    // Bursts back to back: the connections of the first are reused, nothing reconnects.
    for _ in 0..4 {
        burst(&pool, 8).await;
    }
    assert_eq!(pool.counters().create_time.count(), 8, "connections opened");
    // Once no caller needs them for a grace period, the five above the cap go, each counted.
    eventually(BOUND, "the surplus retired down to DB_MAX_IDLE_CONNS", || {
        let s = pool.stats();
        s.idle == 3 && s.open_connections == 3 && s.max_idle_closed == 5
    })
    .await;
    let s = pool.stats();
    assert_eq!((s.max_idle_time_closed, s.max_lifetime_closed), (0, 0));
    pool.close().await;
}

#[tokio::test]
async fn a_wait_behind_a_connection_a_caller_gave_up_on_is_counted() {
    let db = PgTestDb::new().await;
    let pool = pool(&db, |p| p.max_open = 1);
    let mut conn = pool.acquire().await.expect("acquire");
    // The caller stops waiting for a slow query: its connection goes back to sqlx while the server still runs
    // the query, so the gate is free but no connection is.
    let slow = async {
        let pg = conn.postgres().expect("PostgreSQL");
        sea_orm::sqlx::query("SELECT pg_sleep(1)")
            .execute(&mut **pg)
            .await
    };
    assert!(
        tokio::time::timeout(Duration::from_millis(100), slow)
            .await
            .is_err(),
        "the query is still running"
    );
    drop(conn);
    assert_eq!(pool.stats().wait_count, 0);
    let again = pool
        .acquire()
        .await
        .expect("the connection comes back once the query ends");
    assert_eq!(pool.stats().wait_count, 1, "a wait past the gate is a wait too");
    drop(again);
    pool.close().await;
}
