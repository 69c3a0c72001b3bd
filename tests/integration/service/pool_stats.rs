//! Each Go `DBStats` counter moved by its cause, on real PostgreSQL: the idle cap, the idle time, the
//! lifetime (on release and while idle) and a wait.

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
async fn releasing_beyond_the_idle_cap_closes_and_counts_the_extra_connections() {
    let db = PgTestDb::new().await;
    let pool = pool(&db, |p| {
        p.max_open = 5;
        p.max_idle = 1;
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
