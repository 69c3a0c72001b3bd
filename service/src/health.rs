//! The health endpoints: `/live`, `/ready`, `/health`, `/health/detailed`, `/health/database`.
//!
//! Owns their JSON shapes (the spec's: `status`, RFC 3339 `timestamp`, `uptime` as `1h 30m 45s`, `version`,
//! `services`) and the rule that anything unhealthy answers 503. `/live` does no I/O at all; `/ready`,
//! `/health` and `/health/detailed` ping with a 1 s timeout; `/health/database` waits up to
//! `DB_CONN_ACQUIRE_TIMEOUT`, so it shows pool exhaustion the way a real caller would meet it.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::{AppState, Boot, READY_TIMEOUT};
use crate::migrations::MigrationState;
use crate::pool::{Engine, PoolStats};
use crate::system::{self, DiskCheck, MemoryCheck, Verdict};

/// The version reported by the health endpoints.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Formats an uptime as the spec does: `1h 30m 45s` (leading zero units left out, hours not folded into days).
pub fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m {s}s"),
        (h, m) => format!("{h}h {m}m {s}s"),
    }
}

fn reply(healthy: bool, body: impl Serialize) -> Response {
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

fn word(ok: bool) -> &'static str {
    if ok { "healthy" } else { "unhealthy" }
}

// Bodies are structs rather than `json!` maps so the fields keep the spec's order (serde_json's map sorts).

/// `/live`.
#[derive(Debug, Serialize)]
struct LiveBody {
    status: &'static str,
    timestamp: String,
    uptime: String,
}

/// `/ready`.
#[derive(Debug, Serialize)]
struct ReadyBody {
    status: &'static str,
    timestamp: String,
    checks: ReadyChecks,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct ReadyChecks {
    database: &'static str,
    migrations: &'static str,
}

#[derive(Debug, Serialize)]
struct Services {
    database: &'static str,
    memory: Verdict,
    disk: Verdict,
}

/// `/health`.
#[derive(Debug, Serialize)]
struct HealthBody {
    status: &'static str,
    timestamp: String,
    uptime: String,
    version: &'static str,
    services: Services,
}

/// The database part of `/health/database` and `/health/detailed`.
#[derive(Debug, Serialize)]
struct DbBody {
    connectivity: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pool_stats: Option<PoolStats>,
    engine: Engine,
    target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `/health/database`.
#[derive(Debug, Serialize)]
struct DatabaseBody {
    status: &'static str,
    timestamp: String,
    database: DbBody,
}

#[derive(Debug, Serialize)]
struct DetailedChecks {
    database: DbBody,
    memory: MemoryCheck,
    disk: DiskCheck,
}

/// `/health/detailed`.
#[derive(Debug, Serialize)]
struct DetailedBody {
    status: &'static str,
    timestamp: String,
    uptime: String,
    version: &'static str,
    services: Services,
    checks: DetailedChecks,
    pool_stats: PoolStats,
    migrations: MigrationState,
}

struct DbCheck {
    ok: bool,
    latency: Option<Duration>,
    error: Option<String>,
}

async fn check_db(state: &AppState, timeout: Duration) -> DbCheck {
    match state.pool.ping(timeout).await {
        Ok(latency) => DbCheck {
            ok: true,
            latency: Some(latency),
            error: None,
        },
        Err(e) => DbCheck {
            ok: false,
            latency: None,
            error: Some(e.to_string()),
        },
    }
}

fn db_body(state: &AppState, c: DbCheck, pool_stats: Option<PoolStats>) -> DbBody {
    DbBody {
        connectivity: word(c.ok),
        pool_stats,
        engine: state.pool.engine(),
        target: state.config.db.target.to_string(),
        latency_ms: c.latency.map(|l| (l.as_secs_f64() * 1e5).round() / 100.0),
        error: c.error,
    }
}

/// Any other path.
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"error": "not found"})),
    )
        .into_response()
}

/// `GET /live`: the process answers; no database I/O.
pub async fn live(State(state): State<AppState>) -> Response {
    reply(
        true,
        LiveBody {
            status: "alive",
            timestamp: now(),
            uptime: uptime(state.started.elapsed()),
        },
    )
}

/// `GET /ready`: 200 when start-up finished and the database answers a ping within 1 s.
pub async fn ready(State(state): State<AppState>) -> Response {
    let boot = state.boot();
    let db = check_db(&state, READY_TIMEOUT).await;
    let migrations = match (boot, state.config.db.auto_migrate) {
        (Boot::Done, true) => "applied",
        (Boot::Done, false) => "disabled",
        (Boot::Migrating, _) => "running",
        (Boot::Connecting, _) => "not started",
    };
    let ok = db.ok && boot == Boot::Done;
    reply(
        ok,
        ReadyBody {
            status: if ok { "ready" } else { "not ready" },
            timestamp: now(),
            checks: ReadyChecks {
                database: word(db.ok),
                migrations,
            },
            error: db.error.or_else(|| state.boot_error()),
        },
    )
}

/// `GET /health`: the spec's basic response.
pub async fn health(State(state): State<AppState>) -> Response {
    let db = check_db(&state, READY_TIMEOUT).await;
    let memory = system::memory_check().status;
    let disk = system::disk_check(&state.data_dir()).status;
    let ok = db.ok && !memory.is_bad() && !disk.is_bad();
    reply(
        ok,
        HealthBody {
            status: word(ok),
            timestamp: now(),
            uptime: uptime(state.started.elapsed()),
            version: VERSION,
            services: Services {
                database: word(db.ok),
                memory,
                disk,
            },
        },
    )
}

/// `GET /health/detailed`: every check with its numbers and threshold, the pool and the migration state.
pub async fn detailed(State(state): State<AppState>) -> Response {
    let db = check_db(&state, READY_TIMEOUT).await;
    let memory = system::memory_check();
    let disk = system::disk_check(&state.data_dir());
    let migrations = state.migration_state().await;
    let ok = db.ok && !memory.status.is_bad() && !disk.status.is_bad();
    let services = Services {
        database: word(db.ok),
        memory: memory.status,
        disk: disk.status,
    };
    reply(
        ok,
        DetailedBody {
            status: word(ok),
            timestamp: now(),
            uptime: uptime(state.started.elapsed()),
            version: VERSION,
            services,
            checks: DetailedChecks {
                database: db_body(&state, db, None),
                memory,
                disk,
            },
            pool_stats: state.pool.stats(),
            migrations,
        },
    )
}

/// `GET /health/database`: connectivity and the Go-style pool statistics.
pub async fn database(State(state): State<AppState>) -> Response {
    let db = check_db(&state, state.config.db.pool.acquire_timeout).await;
    let ok = db.ok;
    let stats = state.pool.stats();
    reply(
        ok,
        DatabaseBody {
            status: word(ok),
            timestamp: now(),
            database: db_body(&state, db, Some(stats)),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_like_the_spec() {
        assert_eq!(uptime(Duration::from_secs(5445)), "1h 30m 45s");
        assert_eq!(uptime(Duration::from_secs(65)), "1m 5s");
        assert_eq!(uptime(Duration::from_secs(7)), "7s");
    }
}
