//! `/metrics` in Prometheus text format, and the layer that counts HTTP requests.
//!
//! Owns metric names and help texts. Pool metrics follow OpenTelemetry's database client connection metrics
//! (`db.client.connection.*`, with `.` as `_` and the unit as suffix); the Go `DBStats` counters are exported
//! next to them under the same prefix. HTTP request metrics and their label rules are [`http`]'s.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::migrations::Drift;

pub mod http;
pub mod queries;

pub use http::{HttpMetrics, TrackLayer};

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

const POOL: &str = "pool_name=\"collex\"";

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let migrations = state.migration_state().await;
    let mut out = String::with_capacity(8192);
    let pool = &state.pool;
    let stats = pool.stats();
    let c = pool.counters();

    family(
        &mut out,
        "db_client_connection_count",
        "gauge",
        "Connections currently in the state given by the state label (OpenTelemetry db.client.connection.count).",
    );
    let _ = writeln!(
        out,
        "db_client_connection_count{{{POOL},state=\"idle\"}} {}",
        stats.idle
    );
    let _ = writeln!(
        out,
        "db_client_connection_count{{{POOL},state=\"used\"}} {}",
        stats.in_use
    );
    family(
        &mut out,
        "db_client_connection_max",
        "gauge",
        "Maximum open connections allowed (DB_MAX_OPEN_CONNS).",
    );
    let _ = writeln!(
        out,
        "db_client_connection_max{{{POOL}}} {}",
        stats.max_open_connections
    );
    family(
        &mut out,
        "db_client_connection_idle_max",
        "gauge",
        "Maximum idle connections kept (DB_MAX_IDLE_CONNS).",
    );
    let _ = writeln!(
        out,
        "db_client_connection_idle_max{{{POOL}}} {}",
        pool.settings().max_idle
    );
    family(
        &mut out,
        "db_client_connection_pending_requests",
        "gauge",
        "Callers currently waiting for a connection.",
    );
    let _ = writeln!(
        out,
        "db_client_connection_pending_requests{{{POOL}}} {}",
        c.pending()
    );
    family(
        &mut out,
        "db_client_connection_timeouts_total",
        "counter",
        "Acquisitions that gave up after DB_CONN_ACQUIRE_TIMEOUT.",
    );
    let _ = writeln!(
        out,
        "db_client_connection_timeouts_total{{{POOL}}} {}",
        c.timeouts()
    );
    family(
        &mut out,
        "db_client_connection_wait_time_seconds",
        "histogram",
        "Time it took to obtain a connection from the pool.",
    );
    c.wait_time
        .render(&mut out, "db_client_connection_wait_time_seconds", POOL);
    family(
        &mut out,
        "db_client_connection_create_time_seconds",
        "histogram",
        "Time it took to open a new connection.",
    );
    c.create_time
        .render(&mut out, "db_client_connection_create_time_seconds", POOL);
    family(
        &mut out,
        "db_client_connection_use_time_seconds",
        "histogram",
        "Time between taking a connection and giving it back.",
    );
    c.use_time
        .render(&mut out, "db_client_connection_use_time_seconds", POOL);
    family(
        &mut out,
        "db_client_connection_waits_total",
        "counter",
        "Acquisitions that waited because every connection was in use (Go DBStats.WaitCount).",
    );
    let _ = writeln!(
        out,
        "db_client_connection_waits_total{{{POOL}}} {}",
        stats.wait_count
    );
    family(
        &mut out,
        "db_client_connection_wait_duration_seconds_total",
        "counter",
        "Total time spent waiting for a connection (Go DBStats.WaitDuration).",
    );
    let _ = writeln!(
        out,
        "db_client_connection_wait_duration_seconds_total{{{POOL}}} {}",
        stats.wait_duration.as_secs_f64()
    );
    family(
        &mut out,
        "db_client_connection_closed_total",
        "counter",
        "Connections the pool closed, by reason (Go DBStats MaxIdleClosed, MaxIdleTimeClosed, MaxLifetimeClosed; broken: a ping failed).",
    );
    for (reason, n) in [
        ("max_idle", stats.max_idle_closed),
        ("max_idle_time", stats.max_idle_time_closed),
        ("max_lifetime", stats.max_lifetime_closed),
        ("broken", c.broken_closed()),
    ] {
        let _ = writeln!(
            out,
            "db_client_connection_closed_total{{{POOL},reason=\"{reason}\"}} {n}"
        );
    }

    family(
        &mut out,
        "collex_database_up",
        "gauge",
        "0 when the pool's last connection attempt (or a ping) failed and no connection has opened since, else 1.",
    );
    let _ = writeln!(
        out,
        "collex_database_up {}",
        u8::from(pool.connection_error().is_none())
    );
    replicas(&mut out, pool);
    state.http.render(&mut out, family);
    pool.queries().render(&mut out, family);

    family(
        &mut out,
        "collex_migration_state_known",
        "gauge",
        "1 when the migration runner answered, 0 when the state is unknown.",
    );
    let _ = writeln!(
        out,
        "collex_migration_state_known {}",
        u8::from(migrations.state == "known")
    );
    if let Some(v) = migrations.latest_applied_version {
        family(
            &mut out,
            "collex_migration_applied_version",
            "gauge",
            "Highest applied migration version.",
        );
        let _ = writeln!(out, "collex_migration_applied_version {v}");
    }
    if let Some(p) = migrations.pending {
        family(
            &mut out,
            "collex_migration_pending",
            "gauge",
            "Migrations not applied yet.",
        );
        let _ = writeln!(out, "collex_migration_pending {p}");
    }
    if migrations.drift != Drift::Unknown {
        family(
            &mut out,
            "collex_migration_drift",
            "gauge",
            "1 when the live schema differs from the code's.",
        );
        let _ = writeln!(
            out,
            "collex_migration_drift {}",
            u8::from(migrations.drift == Drift::Yes)
        );
    }

    let mem = crate::system::process_memory();
    if let Some(rss) = mem.resident_bytes {
        family(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    }
    if let Some(vsz) = mem.virtual_bytes {
        family(
            &mut out,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
        );
        let _ = writeln!(out, "process_virtual_memory_bytes {vsz}");
    }
    family(
        &mut out,
        "process_uptime_seconds",
        "gauge",
        "Seconds since the service started.",
    );
    let _ = writeln!(
        out,
        "process_uptime_seconds {}",
        state.started.elapsed().as_secs_f64()
    );

    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response()
}

/// The read replicas (`DB_REPLICA_URLS`): each one's state, lag and pool (label `pool_name`, `replica1`, …),
/// and how reads were routed. Their own families, so the primary's (`pool_name="collex"`) stay as they are.
/// Nothing without replicas.
fn replicas(out: &mut String, pool: &crate::pool::Pool) {
    let members = pool.replica_statuses();
    if members.is_empty() {
        return;
    }
    let each = |out: &mut String,
                name: &str,
                kind: &str,
                help: &str,
                value: &dyn Fn(&crate::ReplicaStatus) -> String| {
        family(out, name, kind, help);
        for m in &members {
            let _ = writeln!(out, "{name}{{pool_name=\"{}\"}} {}", m.pool_name, value(m));
        }
    };
    each(
        out,
        "collex_replica_up",
        "gauge",
        "1 when the replica answered its last check and is in recovery, else 0.",
        &|m| u8::from(m.status != "down").to_string(),
    );
    each(
        out,
        "collex_replica_lag_bytes",
        "gauge",
        "WAL bytes the primary has written that the replica has not replayed.",
        &|m| m.lag_bytes.to_string(),
    );
    each(
        out,
        "collex_replica_lag_seconds",
        "gauge",
        "How far the replica's replay is behind, in seconds.",
        &|m| m.lag_seconds.to_string(),
    );
    each(
        out,
        "collex_replica_connections_in_use",
        "gauge",
        "Connections of the replica's pool handed out.",
        &|m| m.pool_stats.in_use.to_string(),
    );
    each(
        out,
        "collex_replica_connections_idle",
        "gauge",
        "Idle connections of the replica's pool.",
        &|m| m.pool_stats.idle.to_string(),
    );
    each(
        out,
        "collex_replica_connections_max",
        "gauge",
        "Maximum open connections of the replica's pool (DB_MAX_OPEN_CONNS).",
        &|m| m.pool_stats.max_open_connections.to_string(),
    );
    each(
        out,
        "collex_replica_wait_count_total",
        "counter",
        "Acquisitions from the replica's pool that waited because every connection was in use.",
        &|m| m.pool_stats.wait_count.to_string(),
    );
    let r = pool.routing();
    family(
        out,
        "collex_replica_reads_total",
        "counter",
        "Repository reads served by a replica.",
    );
    let _ = writeln!(out, "collex_replica_reads_total {}", r.replica_reads);
    family(
        out,
        "collex_replica_fallbacks_total",
        "counter",
        "Repository reads that asked for a replica and went to the primary, by reason (sticky: inside a session's sticky window after a write; token_timeout: DB_REPLICA_MAX_WAIT passed; unavailable: no replica up; lagging: beyond DB_REPLICA_MAX_LAG).",
    );
    for (reason, n) in [
        ("sticky", r.sticky_reads),
        ("token_timeout", r.fallback_token_timeout),
        ("unavailable", r.fallback_unavailable),
        ("lagging", r.fallback_lagging),
    ] {
        let _ = writeln!(out, "collex_replica_fallbacks_total{{reason=\"{reason}\"}} {n}");
    }
}
