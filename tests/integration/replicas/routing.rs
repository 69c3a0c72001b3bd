//! Routing by intent on the real pair: replica reads, read-your-writes tokens with a delayed replica, the
//! sticky window, and a replica that stops and starts again.

use std::time::Duration;

use collex_tests::http;
use entity::businesses;
use entity::prelude::*;
use entity::{ReadFrom, WriteToken};
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, Database, Statement};
use service::Pool;

use super::support::{PAIR, PairDb, eventually, pair_script, pair_var};

fn business(slug: &str) -> businesses::ActiveModel {
    businesses::ActiveModel {
        name: Set(format!("Business {slug}")),
        slug: Set(slug.to_owned()),
        status: Set("active".into()),
        ..Default::default()
    }
}

fn slug() -> String {
    format!("b-{}", uuid::Uuid::new_v4().simple())
}

/// The replica is not delayed when a test starts or ends, also when it fails half-way.
struct Undelay;

impl Drop for Undelay {
    fn drop(&mut self) {
        pair_script(&["delay", "0"]);
    }
}

/// The replica runs again when a test that stopped it ends, also when it fails half-way.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        pair_script(&["replica-start"]);
    }
}

#[tokio::test]
async fn repo_reads_that_ask_for_a_replica_land_on_it_and_writes_never_meet_25006() {
    let _pair = PAIR.lock().await;
    let db = PairDb::new().await;
    let mut cfg = db.config();
    cfg.replicas.sticky = Duration::ZERO;
    // Generous, so a loaded machine cannot turn a slow replica answer into a fallback.
    cfg.replicas.max_wait = Duration::from_secs(5);
    let pool = Pool::new(&cfg).expect("pool");
    let on_replica = Ctx::new().read_from(ReadFrom::Replica);

    // Writes with a context that asks for replica reads still go to the primary: a replica would refuse
    // them with SQLSTATE 25006.
    let repo = Businesses::repo(pool.db(), on_replica).expect("repo");
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            repo.insert(business(&slug()))
                .await
                .expect("insert on the primary")
                .id,
        );
    }
    let token = pool.write_token().await.expect("token");
    for id in &ids {
        let read = Businesses::repo(pool.db(), Ctx::new().read_from(ReadFrom::After(token)))
            .expect("repo")
            .get(*id)
            .await
            .expect("read");
        assert_eq!(read.id, *id);
    }
    for _ in 0..20 {
        repo.list().await.expect("list on the replica");
    }
    let routed = pool.routing();
    assert_eq!(routed.replica_reads, 25, "{routed:?}");
    assert_eq!(routed.fallbacks(), 0, "{routed:?}");
    // The replica pool served them, and the server behind it is in recovery: a replica.
    let [replica] = pool.replica_statuses().try_into().expect("one replica");
    assert!(replica.pool_stats.open_connections > 0, "{replica:?}");
    let direct = Database::connect(pair_var("COLLEX_TEST_REPLICA_URL"))
        .await
        .expect("replica");
    let row = direct
        .query_one_raw(Statement::from_string(
            direct.get_database_backend(),
            "SELECT pg_is_in_recovery() AS r",
        ))
        .await
        .expect("query")
        .expect("row");
    assert!(row.try_get::<bool>("", "r").expect("bool"));
    let _ = direct.close().await;

    // Primary reads (the default) never reach the replica.
    Businesses::repo(pool.db(), Ctx::new())
        .expect("repo")
        .list()
        .await
        .expect("list");
    assert_eq!(pool.routing().replica_reads, 25);
    pool.close().await;
}

#[tokio::test]
async fn a_token_read_waits_for_a_delayed_replica_then_falls_back_to_the_primary() {
    let _pair = PAIR.lock().await;
    let db = PairDb::new().await;
    let mut cfg = db.config();
    cfg.replicas.sticky = Duration::ZERO;
    // Also the budget for a replica connection: long enough that a loaded machine still reaches the replica.
    cfg.replicas.max_wait = Duration::from_millis(500);
    // The delayed replica must stay eligible: this test is about the token, not the lag limit.
    cfg.replicas.max_lag = Duration::from_secs(3600);
    let pool = Pool::new(&cfg).expect("pool");
    let _undelay = Undelay;
    pair_script(&["delay", "30s"]);

    let written = Businesses::repo(pool.db(), Ctx::new())
        .expect("repo")
        .insert(business(&slug()))
        .await
        .expect("insert");
    let token: WriteToken = pool.write_token().await.expect("token");
    // Without the token the delayed replica answers, and does not have the row yet: the read was there.
    let stale = Businesses::repo(pool.db(), Ctx::new().read_from(ReadFrom::Replica))
        .expect("repo")
        .find_by_id(written.id)
        .await
        .expect("replica read");
    assert!(stale.is_none(), "the delayed replica cannot have the row yet");
    let before = pool.routing();
    // With it, the read waits for the replica, gives up after DB_REPLICA_MAX_WAIT and asks the primary.
    let fresh = Businesses::repo(pool.db(), Ctx::new().read_from(ReadFrom::After(token)))
        .expect("repo")
        .find_by_id(written.id)
        .await
        .expect("token read");
    assert_eq!(fresh.map(|b| b.id), Some(written.id));
    let after = pool.routing();
    assert_eq!(
        after.fallback_token_timeout,
        before.fallback_token_timeout + 1,
        "{after:?}"
    );
    assert_eq!(after.replica_reads, before.replica_reads, "{after:?}");

    // Without the delay the same kind of read is served by the replica (a pool that waits long enough for
    // a loaded machine's replica to replay).
    pair_script(&["delay", "0"]);
    pool.close().await;
    let mut cfg = db.config();
    cfg.replicas.sticky = Duration::ZERO;
    cfg.replicas.max_wait = Duration::from_secs(5);
    let pool = Pool::new(&cfg).expect("pool");
    let written = Businesses::repo(pool.db(), Ctx::new())
        .expect("repo")
        .insert(business(&slug()))
        .await
        .expect("insert");
    let token = pool.write_token().await.expect("token");
    let before = pool.routing();
    let read = Businesses::repo(pool.db(), Ctx::new().read_from(ReadFrom::After(token)))
        .expect("repo")
        .find_by_id(written.id)
        .await
        .expect("token read");
    assert_eq!(read.map(|b| b.id), Some(written.id));
    let after = pool.routing();
    assert_eq!(after.replica_reads, before.replica_reads + 1, "{after:?}");
    assert_eq!(after.fallbacks(), before.fallbacks(), "{after:?}");
    pool.close().await;
}

#[tokio::test]
async fn within_the_sticky_window_a_read_after_a_write_returns_it_500_times_out_of_500() {
    let _pair = PAIR.lock().await;
    let db = PairDb::new().await;
    let mut cfg = db.config();
    cfg.replicas.max_wait = Duration::from_secs(5);
    let pool = Pool::new(&cfg).expect("pool");
    let session = pool.session();
    let ctx = Ctx::new().read_from(ReadFrom::Replica);
    let mut seen = 0;
    for _ in 0..500 {
        let written = Businesses::repo(&session, ctx)
            .expect("repo")
            .insert(business(&slug()))
            .await
            .expect("insert");
        let read = Businesses::repo(&session, ctx)
            .expect("repo")
            .find_by_id(written.id)
            .await
            .expect("read");
        seen += usize::from(read.is_some_and(|b| b.id == written.id));
    }
    assert_eq!(seen, 500);
    let routed = pool.routing();
    assert_eq!(routed.sticky_reads, 500, "{routed:?}");
    assert_eq!(routed.replica_reads, 0, "{routed:?}");
    // Another session has not written: its replica reads go to the replica.
    let other = pool.session();
    Businesses::repo(&other, ctx)
        .expect("repo")
        .list()
        .await
        .expect("list");
    assert_eq!(pool.routing().replica_reads, 1);
    assert!(session.token().await.expect("token").is_some());
    assert!(other.token().await.expect("token").is_none());
    pool.close().await;
}

#[tokio::test]
async fn a_stopped_replica_sends_reads_to_the_primary_at_once_and_a_started_one_gets_them_back() {
    let _pair = PAIR.lock().await;
    let db = PairDb::new().await;
    let mut cfg = db.config();
    cfg.replicas.sticky = Duration::ZERO;
    // The wait budget is also how long a read waits for a replica connection: generous, so the restarted
    // replica's first connection is not a fallback on a loaded machine.
    cfg.replicas.max_wait = Duration::from_secs(2);
    let app = config::AppConfig::new(cfg, "127.0.0.1:0".parse().expect("address"));
    let running = service::start(app, std::sync::Arc::new(service::NotWired))
        .await
        .expect("start");
    let addr = running.addr();
    eventually("the service ready", || {
        running.state().boot() == service::app::Boot::Done
    })
    .await;
    let pool = running.pool().clone();
    let ctx = Ctx::new().read_from(ReadFrom::Replica);
    let written = Businesses::repo(pool.db(), Ctx::new())
        .expect("repo")
        .insert(business(&slug()))
        .await
        .expect("insert");
    Businesses::repo(pool.db(), ctx)
        .expect("repo")
        .list()
        .await
        .expect("warm the replica pool");
    assert_eq!(pool.routing().replica_reads, 1);

    let restart = Restart;
    pair_script(&["replica-stop"]);
    // The very next read is answered, by the primary, and says so.
    let read = Businesses::repo(pool.db(), ctx)
        .expect("repo")
        .find_by_id(written.id)
        .await
        .expect("a read while the replica is down");
    assert_eq!(read.map(|b| b.id), Some(written.id));
    let routed = pool.routing();
    assert_eq!(routed.replica_reads, 1, "{routed:?}");
    assert!(routed.fallback_unavailable >= 1, "{routed:?}");
    let [replica] = pool.replica_statuses().try_into().expect("one replica");
    assert_eq!(replica.status, "down", "{replica:?}");
    assert!(replica.error.is_some(), "{replica:?}");
    // The primary serves: ready; health says the replication is degraded, and metrics say which replica.
    assert_eq!(http::get(addr, "/ready").await.status, 200);
    let health = http::get(addr, "/health/database").await;
    assert_eq!(health.status, 200, "{}", health.body);
    let replicas = &health.json()["database"]["replicas"];
    assert_eq!(replicas["status"], "degraded", "{replicas}");
    assert_eq!(replicas["members"][0]["status"], "down", "{replicas}");
    assert_eq!(replicas["members"][0]["pool_name"], "replica1", "{replicas}");
    let detailed = http::get(addr, "/health/detailed").await.json();
    assert_eq!(detailed["replicas"]["status"], "degraded", "{detailed}");
    let metrics = http::get(addr, "/metrics").await.body;
    assert!(
        metrics.contains("collex_replica_up{pool_name=\"replica1\"} 0"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("collex_replica_fallbacks_total{reason=\"unavailable\"} 0"),
        "{metrics}"
    );

    drop(restart);
    eventually("the replica coming back", || {
        pool.replica_statuses()
            .first()
            .is_some_and(|r| r.status == "healthy")
    })
    .await;
    Businesses::repo(pool.db(), ctx)
        .expect("repo")
        .list()
        .await
        .expect("list");
    assert_eq!(pool.routing().replica_reads, 2);
    let health = http::get(addr, "/health/database").await.json();
    assert_eq!(health["database"]["replicas"]["status"], "healthy", "{health}");
    let metrics = http::get(addr, "/metrics").await.body;
    assert!(
        metrics.contains("collex_replica_up{pool_name=\"replica1\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("collex_replica_lag_bytes{pool_name=\"replica1\"}"),
        "{metrics}"
    );
    drop(pool);
    running.shutdown().await.expect("shutdown");
}
