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
