//! Every endpoint over real HTTP against real PostgreSQL: the spec's JSON shapes, 503 when unhealthy,
//! `/live` without the database, `/metrics` in Prometheus text, and a graceful drain on shutdown.

use std::time::Duration;

use collex_tests::{PgTestDb, admin_url};
use serde_json::Value;

use super::support::{Proxy, app, get, pg_config, start, upstream, via, wait_for_status};

fn assert_rfc3339(v: &Value) {
    let s = v.as_str().expect("timestamp is a string");
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s:?} is not RFC 3339: {e}"));
}

fn assert_uptime(v: &Value) {
    let s = v.as_str().expect("uptime is a string");
    let ok = s.split(' ').all(|part| {
        let (n, unit) = part.split_at(part.len() - 1);
        n.parse::<u64>().is_ok() && ["h", "m", "s"].contains(&unit)
    });
    assert!(ok, "{s:?} is not like 1h 30m 45s");
}

const POOL_STATS_KEYS: [&str; 9] = [
    "max_open_connections",
    "open_connections",
    "in_use",
    "idle",
    "wait_count",
    "wait_duration",
    "max_idle_closed",
    "max_idle_time_closed",
    "max_lifetime_closed",
];

fn assert_pool_stats(v: &Value, max_open: u64) {
    for k in POOL_STATS_KEYS {
        assert!(v.get(k).is_some(), "pool_stats lacks {k}: {v}");
    }
    assert_eq!(v["max_open_connections"], max_open);
    assert!(
        v["wait_duration"].as_str().is_some_and(|d| d.ends_with('s')),
        "{v}"
    );
}

async fn ready_service(db: &PgTestDb) -> service::Running {
    let mut cfg = pg_config(db.url());
    cfg.pool.max_open = 7;
    let svc = start(cfg).await;
    wait_for_status(svc.addr(), "/ready", 200, Duration::from_secs(10)).await;
    svc
}

#[tokio::test]
async fn health_answers_the_spec_shape() {
    let db = PgTestDb::new().await;
    let svc = ready_service(&db).await;
    let r = get(svc.addr(), "/health").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["status"], "healthy");
    assert_rfc3339(&v["timestamp"]);
    assert_uptime(&v["uptime"]);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["services"]["database"], "healthy");
    assert!(
        v["services"]["memory"].is_string() && v["services"]["disk"].is_string(),
        "{v}"
    );
    svc.shutdown().await.expect("shutdown");
}

/// HEALTH_MIN_FREE_MEMORY / HEALTH_MIN_FREE_DISK decide the verdicts: at 100 % no host can meet them, so
/// both resources turn unhealthy and so does the service, while the database stays healthy.
#[tokio::test]
async fn resource_thresholds_decide_the_memory_and_disk_verdicts() {
    let db = PgTestDb::new().await;
    let mut cfg = app(pg_config(db.url()));
    cfg.health.min_free_memory_percent = 100.0;
    cfg.health.min_free_disk_percent = 100.0;
    let svc = service::start(cfg, std::sync::Arc::new(service::NotWired))
        .await
        .expect("service starts");
    wait_for_status(svc.addr(), "/ready", 200, Duration::from_secs(10)).await;
    let r = get(svc.addr(), "/health").await;
    assert_eq!(r.status, 503, "{}", r.body);
    let v = r.json();
    assert_eq!(v["status"], "unhealthy", "{v}");
    assert_eq!(v["services"]["database"], "healthy", "{v}");
    assert_eq!(v["services"]["memory"], "unhealthy", "{v}");
    assert_eq!(v["services"]["disk"], "unhealthy", "{v}");
    let d = get(svc.addr(), "/health/detailed").await.json();
    assert_eq!(
        d["checks"]["disk"]["threshold"], "available space >= 100% of the filesystem",
        "{d}"
    );
    assert_eq!(
        d["checks"]["memory"]["threshold"], "available memory >= 100% of total",
        "{d}"
    );
    svc.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn ready_and_live_answer_200_when_the_database_answers() {
    let db = PgTestDb::new().await;
    let svc = ready_service(&db).await;
    let ready = get(svc.addr(), "/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");
    assert_eq!(ready.json()["checks"]["database"], "healthy");
    assert_eq!(ready.json()["checks"]["migrations"], "disabled");
    // /live does no database I/O: no acquisition happens while it answers.
    let acquisitions = svc.pool().counters().wait_time.count();
    let live = get(svc.addr(), "/live").await;
    assert_eq!(svc.pool().counters().wait_time.count(), acquisitions);
    assert_eq!(live.status, 200);
    assert_eq!(live.json()["status"], "alive");
    assert_rfc3339(&live.json()["timestamp"]);
    svc.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn without_a_database_live_is_200_and_every_database_check_is_503() {
    let db = PgTestDb::new().await;
    let proxy = Proxy::start(upstream(&admin_url())).await;
    proxy.cut();
    let mut cfg = via(pg_config(db.url()), &proxy);
    cfg.pool.acquire_timeout = Duration::from_secs(1);
    let svc = start(cfg).await;
    let addr = svc.addr();
    assert_eq!(get(addr, "/live").await.status, 200);
    for path in ["/ready", "/health", "/health/detailed", "/health/database"] {
        let r = get(addr, path).await;
        assert_eq!(r.status, 503, "{path}: {}", r.body);
        assert_eq!(
            r.json()["status"]
                .as_str()
                .map(|s| s.starts_with("not") || s == "unhealthy"),
            Some(true)
        );
    }
    let health = get(addr, "/health").await.json();
    assert_eq!(health["services"]["database"], "unhealthy");
    let database = get(addr, "/health/database").await.json();
    assert_eq!(database["database"]["connectivity"], "unhealthy");
    assert!(database["database"]["error"].is_string(), "{database}");
    svc.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn health_database_carries_connectivity_and_go_pool_stats() {
    let db = PgTestDb::new().await;
    let svc = ready_service(&db).await;
    let r = get(svc.addr(), "/health/database").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["status"], "healthy");
    assert_rfc3339(&v["timestamp"]);
    assert_eq!(v["database"]["connectivity"], "healthy");
    assert_eq!(v["database"]["engine"], "postgresql");
    assert_pool_stats(&v["database"]["pool_stats"], 7);
    assert!(
        v["database"]["pool_stats"]["open_connections"].as_u64() >= Some(1),
        "{v}"
    );
    svc.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn health_detailed_adds_resources_pool_and_migration_state() {
    let db = PgTestDb::new().await;
    let svc = ready_service(&db).await;
    let r = get(svc.addr(), "/health/detailed").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["status"], "healthy");
    assert_uptime(&v["uptime"]);
    assert_eq!(v["checks"]["database"]["connectivity"], "healthy");
    for check in ["memory", "disk"] {
        assert!(v["checks"][check]["threshold"].is_string(), "{check}: {v}");
        assert!(v["checks"][check]["status"].is_string(), "{check}: {v}");
    }
    assert!(
        v["checks"]["memory"]["process"]["resident_bytes"].as_u64() > Some(0),
        "{v}"
    );
    assert!(v["checks"]["disk"]["available_bytes"].as_u64() > Some(0), "{v}");
    assert_pool_stats(&v["pool_stats"], 7);
    // No runner wired in this test: the state says so instead of guessing.
    assert_eq!(v["migrations"]["state"], "unknown");
    assert_eq!(v["migrations"]["drift"], "unknown");
    svc.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_help_lines() {
    let db = PgTestDb::new().await;
    let svc = ready_service(&db).await;
    let addr = svc.addr();
    assert_eq!(get(addr, "/live").await.status, 200);
    assert_eq!(get(addr, "/no-such-page").await.status, 404);
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200);
    let text = r.body;
    for family in [
        "db_client_connection_count",
        "db_client_connection_max",
        "db_client_connection_pending_requests",
        "db_client_connection_timeouts_total",
        "db_client_connection_wait_time_seconds",
        "db_client_connection_create_time_seconds",
        "db_client_connection_use_time_seconds",
        "http_server_requests_total",
        "http_server_request_duration_seconds",
        "collex_migration_state_known",
        "process_resident_memory_bytes",
    ] {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP for {family}"
        );
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no TYPE for {family}"
        );
    }
    assert!(text.contains("db_client_connection_count{pool_name=\"collex\",state=\"idle\"}"));
    assert!(text.contains("db_client_connection_count{pool_name=\"collex\",state=\"used\"}"));
    assert!(text.contains("db_client_connection_max{pool_name=\"collex\"} 7"));
    assert!(text.contains("http_server_requests_total{method=\"GET\",route=\"/live\",status=\"200\"} 1"));
    assert!(text.contains("http_server_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1"));
    assert!(text.contains("http_server_request_duration_seconds_bucket{method=\"GET\",route=\"/live\",status=\"200\",le=\"+Inf\"} 1"));
    assert!(!text.contains("no-such-page"), "raw paths must not become labels");
    // Every sample line is `name{labels} value` with a numeric value.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap_or_default();
        assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
    }
    svc.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn shutdown_drains_requests_in_flight_then_closes_the_pool() {
    let db = PgTestDb::new().await;
    let mut cfg = pg_config(db.url());
    cfg.pool.max_open = 1;
    let svc = start(cfg).await;
    let addr = svc.addr();
    wait_for_status(addr, "/ready", 200, Duration::from_secs(10)).await;
    let pool = svc.pool().clone();
    let held = pool.acquire().await.expect("hold the only connection");
    // This request now waits for the connection: it is in flight when shutdown starts.
    let in_flight = tokio::spawn(async move { get(addr, "/health/database").await });
    super::support::eventually(Duration::from_secs(10), "request waiting", || {
        pool.counters().pending() == 1
    })
    .await;
    let shutdown = tokio::spawn(svc.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !shutdown.is_finished(),
        "shutdown must wait for the request in flight"
    );
    drop(held);
    let r = in_flight.await.expect("request task");
    assert_eq!(r.status, 200, "{}", r.body);
    shutdown.await.expect("shutdown task").expect("clean shutdown");
    assert!(matches!(pool.acquire().await, Err(service::PoolError::Closed)));
}
