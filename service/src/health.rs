//! The health endpoints: `/live`, `/ready`, `/health`, `/health/detailed`, `/health/database`.
//!
//! Owns their JSON bodies (the spec's `status`, RFC 3339 `timestamp`, `uptime` as `1h 30m 45s`, `version`,
//! `services`), declared as the types of [`bodies`], which `export_types` also writes to TypeScript, and the
//! rule that anything unhealthy answers 503. `/live` does no I/O at all; `/ready`, `/health` and
//! `/health/detailed` ping with a 1 s timeout; `/health/database` waits up to `DB_CONN_ACQUIRE_TIMEOUT`, so it
//! shows pool exhaustion the way a real caller would meet it.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::{AppState, Boot, READY_TIMEOUT};
use crate::system;

pub mod bodies;

use bodies::{
    DatabaseCheck, DatabaseHealth, DatabaseHealthResponse, DetailedChecks, DetailedHealthResponse,
    HealthResponse, HealthServices, HealthStatus, LiveResponse, LiveStatus, MigrationStep, ReadyChecks,
    ReadyResponse, ReadyStatus, Replication,
};

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

fn db_body(state: &AppState, c: DbCheck) -> DatabaseCheck {
    DatabaseCheck {
        connectivity: c.ok.into(),
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

/// A known path with a method it does not answer (axum adds the `Allow` header).
pub async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(serde_json::json!({"error": "method not allowed"})),
    )
        .into_response()
}

/// `GET /live`: the process answers; no database I/O.
pub async fn live(State(state): State<AppState>) -> Response {
    reply(
        true,
        LiveResponse {
            status: LiveStatus::Alive,
            timestamp: now(),
            uptime: uptime(state.started.elapsed()),
        },
    )
}

/// `GET /ready`: 200 when start-up finished and the database answers a ping within 1 s.
///
/// With auto-migrate off, a database behind the code (pending migrations, drift, changed history) is still
/// ready, with `migrations: "pending"` and a warning: every replica sees the same database, so a 503 would
/// take them all out of the load balancer at once and turn a schema lag into an outage, and a deploy that
/// migrates after the new version is ready could never finish. The warning is also logged at start-up.
pub async fn ready(State(state): State<AppState>) -> Response {
    let boot = state.boot();
    let db = check_db(&state, READY_TIMEOUT).await;
    let mut warning = None;
    let migrations = match (boot, state.config.db.auto_migrate) {
        (Boot::Done, true) => MigrationStep::Applied,
        (Boot::Done, false) => {
            warning = crate::boot::behind(&state.migration_state().await);
            if warning.is_some() {
                MigrationStep::Pending
            } else {
                MigrationStep::Disabled
            }
        }
        (Boot::Migrating, _) => MigrationStep::Running,
        (Boot::Connecting, _) => MigrationStep::NotStarted,
        (Boot::Failed, _) => MigrationStep::Failed,
    };
    let ok = db.ok && boot == Boot::Done;
    reply(
        ok,
        ReadyResponse {
            status: if ok {
                ReadyStatus::Ready
            } else {
                ReadyStatus::NotReady
            },
            timestamp: now(),
            checks: ReadyChecks {
                database: db.ok.into(),
                migrations,
            },
            error: match boot {
                // The reason start-up stopped comes first: it is what must be fixed.
                Boot::Failed => state.boot_error().or(db.error),
                _ => db.error.or_else(|| state.boot_error()),
            },
            warning,
        },
    )
}

/// `GET /health`: the spec's basic response.
pub async fn health(State(state): State<AppState>) -> Response {
    let db = check_db(&state, READY_TIMEOUT).await;
    let limits = state.config.health;
    let memory = system::memory_check(limits.min_free_memory_percent).status;
    let disk = system::disk_check(&state.data_dir(), limits.min_free_disk_percent).status;
    let ok = db.ok && !memory.is_bad() && !disk.is_bad();
    reply(
        ok,
        HealthResponse {
            status: ok.into(),
            timestamp: now(),
            uptime: uptime(state.started.elapsed()),
            version: VERSION.to_owned(),
            services: HealthServices {
                database: db.ok.into(),
                memory,
                disk,
            },
        },
    )
}

/// `GET /health/detailed`: every check with its numbers and threshold, the pool and the migration state.
pub async fn detailed(State(state): State<AppState>) -> Response {
    let db = check_db(&state, READY_TIMEOUT).await;
    let limits = state.config.health;
    let memory = system::memory_check(limits.min_free_memory_percent);
    let disk = system::disk_check(&state.data_dir(), limits.min_free_disk_percent);
    let migrations = state.migration_state().await;
    let ok = db.ok && !memory.status.is_bad() && !disk.status.is_bad();
    let services = HealthServices {
        database: db.ok.into(),
        memory: memory.status,
        disk: disk.status,
    };
    reply(
        ok,
        DetailedHealthResponse {
            status: ok.into(),
            timestamp: now(),
            uptime: uptime(state.started.elapsed()),
            version: VERSION.to_owned(),
            services,
            checks: DetailedChecks {
                database: db_body(&state, db),
                memory,
                disk,
            },
            pool_stats: state.pool.stats(),
            replicas: Replication::of(state.pool.replica_statuses(), state.pool.routing()),
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
        DatabaseHealthResponse {
            status: HealthStatus::from(ok),
            timestamp: now(),
            database: DatabaseHealth {
                replicas: Replication::of(state.pool.replica_statuses(), state.pool.routing()),
                ..DatabaseHealth::new(db_body(&state, db), stats)
            },
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
