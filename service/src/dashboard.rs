//! `GET /dashboard`: one page a person reads, served by the service itself, with its script and style as
//! routes of their own (`/dashboard/app.js`, `/dashboard/app.css`) and its numbers from `/dashboard/data`.
//!
//! Owns the page's assets (compiled into the binary: no CDN, no build step; the charts are plain SVG drawn by
//! the script), its `Content-Security-Policy` (nothing inline, nothing from elsewhere), the bounded history
//! the charts draw ([`History`], sampled by a task every [`SAMPLE_EVERY`], so a reload shows the last
//! [`HISTORY_LEN`] samples), and the JSON the page reads. The numbers come from the pool, the query timing
//! ([`crate::metrics::queries`]) and the cached migration state; only `/dashboard/data` pings the database,
//! so the page's ping latency costs nothing while nobody looks.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::{AppState, READY_TIMEOUT};
use crate::histogram::{BUCKETS, Histogram};
use crate::metrics::queries::{OPERATIONS, OUTCOMES, SlowStatement};
use crate::migrations::MigrationState;

/// How often the history is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// How many samples are kept: 30 minutes.
pub const HISTORY_LEN: usize = 900;
/// Samples between two windows of the slowest statements (one minute).
const SLOWEST_WINDOW: u32 = 30;
/// The rate column covers this many samples (one minute).
const RATE_SAMPLES: usize = 30;

/// Nothing inline and nothing from elsewhere: the script and the style are the service's own routes.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/app.css");
const FAVICON: &str = include_str!("dashboard/favicon.svg");

/// One point of the history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    /// Seconds since the Unix epoch.
    pub t: f64,
    /// Connections in use.
    pub in_use: u32,
    /// Idle connections.
    pub idle: u32,
    /// Callers waiting for a connection.
    pub pending: u64,
    /// Waits so far (Go's `WaitCount`).
    pub waits: u64,
    /// Seconds waited so far.
    pub wait_seconds: f64,
    /// Acquire timeouts so far.
    pub timeouts: u64,
    /// Statements so far.
    pub statements: u64,
    /// Slow statements so far.
    pub slow: u64,
    /// Database ping latency in milliseconds, when the page asked for one in this interval.
    pub ping_ms: Option<f64>,
}

/// The bounded, sampled history behind the charts; survives a page reload because it lives in the service.
#[derive(Debug, Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
    /// Per-series statement counts of the last [`RATE_SAMPLES`] samples, for the rate column.
    counts: Mutex<VecDeque<(Instant, Vec<u64>)>>,
    /// The last ping the page caused: when, and its latency (or `None`: it failed).
    ping: Mutex<Option<(Instant, Option<f64>)>>,
}

impl History {
    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn push(&self, s: Sample, counts: Vec<u64>) {
        if let Ok(mut q) = self.samples.lock() {
            if q.len() == HISTORY_LEN {
                q.pop_front();
            }
            q.push_back(s);
        }
        if let Ok(mut q) = self.counts.lock() {
            if q.len() > RATE_SAMPLES {
                q.pop_front();
            }
            q.push_back((Instant::now(), counts));
        }
    }

    /// The oldest kept per-series counts and how long ago they were taken.
    fn oldest_counts(&self) -> Option<(Duration, Vec<u64>)> {
        let q = self.counts.lock().ok()?;
        q.front().map(|(at, c)| (at.elapsed(), c.clone()))
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Takes one sample of `state` into its history.
pub fn sample(state: &AppState) {
    let pool = &state.pool;
    let stats = pool.stats();
    let c = pool.counters();
    let q = pool.queries();
    let counts = q.counts();
    let ping_ms = state
        .dashboard
        .ping
        .lock()
        .ok()
        .and_then(|p| *p)
        .filter(|(at, _)| at.elapsed() < SAMPLE_EVERY)
        .and_then(|(_, ms)| ms);
    state.dashboard.push(
        Sample {
            t: unix_now(),
            in_use: stats.in_use,
            idle: stats.idle,
            pending: c.pending(),
            waits: stats.wait_count,
            wait_seconds: stats.wait_duration.as_secs_f64(),
            timeouts: c.timeouts(),
            statements: counts.iter().sum(),
            slow: q.slow_total(),
            ping_ms,
        },
        counts,
    );
}

/// Samples `state` every [`SAMPLE_EVERY`] until aborted, and starts a new window of slowest statements every
/// minute.
pub async fn sampler(state: AppState) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u32 = 0;
    loop {
        tick.tick().await;
        sample(&state);
        n = n.wrapping_add(1);
        if n.is_multiple_of(SLOWEST_WINDOW) {
            state.pool.queries().rotate();
        }
    }
}

fn secured(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /dashboard`.
pub async fn page() -> Response {
    secured("text/html; charset=utf-8", PAGE)
}

/// `GET /dashboard/app.js`.
pub async fn script() -> Response {
    secured("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /dashboard/app.css`.
pub async fn style() -> Response {
    secured("text/css; charset=utf-8", STYLE)
}

/// `GET /dashboard/favicon.svg` (a browser asks for an icon; a 404 would be a console error).
pub async fn favicon() -> Response {
    secured("image/svg+xml", FAVICON)
}

/// One row of the query timing table: a table and operation, all outcomes together.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueryRow {
    /// `db_collection_name`.
    pub entity: &'static str,
    /// `db_operation_name`.
    pub operation: &'static str,
    /// Statements since start.
    pub count: u64,
    /// Of which failed or timed out.
    pub errors: u64,
    /// Of which met a stale version.
    pub stale: u64,
    /// Statements per second over the last minute.
    pub rate: f64,
    /// Quantiles since start, in milliseconds (bucket upper bounds interpolated).
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
}

/// The `q` quantile of a histogram's (non-cumulative) bucket counts, in seconds, interpolated linearly
/// inside its bucket; `None` without observations. Observations above the last bound count as the last bound.
pub fn quantile(buckets: &[u64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    for (i, n) in buckets.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        if (seen + n) as f64 >= rank {
            let lower = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
            let upper = BUCKETS[i];
            let within = ((rank - seen as f64) / *n as f64).clamp(0.0, 1.0);
            return Some(lower + (upper - lower) * within);
        }
        seen += n;
    }
    BUCKETS.last().copied()
}

fn rows(state: &AppState) -> Vec<QueryRow> {
    let q = state.pool.queries();
    let now = q.counts();
    let before = state.dashboard.oldest_counts();
    let per_row = OUTCOMES.len();
    let mut out = Vec::new();
    for (row, chunk) in q.histograms().chunks(per_row).enumerate() {
        let count: u64 = chunk.iter().map(Histogram::count).sum();
        if count == 0 {
            continue;
        }
        let mut buckets = vec![0u64; BUCKETS.len()];
        for h in chunk {
            for (b, n) in buckets.iter_mut().zip(h.buckets()) {
                *b += n;
            }
        }
        let range = row * per_row..(row + 1) * per_row;
        let rate = before
            .as_ref()
            .filter(|(ago, _)| !ago.is_zero())
            .map_or(0.0, |(ago, old)| {
                let then: u64 = old.get(range.clone()).map_or(0, |s| s.iter().sum());
                let now: u64 = now.get(range.clone()).map_or(0, |s| s.iter().sum());
                now.saturating_sub(then) as f64 / ago.as_secs_f64()
            });
        let ms = |p: f64| quantile(&buckets, p).map(|s| s * 1000.0);
        out.push(QueryRow {
            entity: q.collection_label(row / OPERATIONS.len()),
            operation: OPERATIONS[row % OPERATIONS.len()],
            count,
            errors: chunk[1].count() + chunk[3].count(),
            stale: chunk[2].count(),
            rate,
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
        });
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.count));
    out
}

/// The pool's part of `/dashboard/data`.
#[derive(Debug, Serialize)]
struct PoolNow {
    engine: crate::pool::Engine,
    max_open: u32,
    max_idle: u32,
    open: u32,
    in_use: u32,
    idle: u32,
    pending: u64,
    waits: u64,
    wait_seconds: f64,
    timeouts: u64,
    closed: [(&'static str, u64); 4],
    acquire_timeout_seconds: f64,
}

/// `/dashboard/data`.
#[derive(Debug, Serialize)]
struct Data {
    now: f64,
    sample_every_seconds: f64,
    pool: PoolNow,
    ping_ms: Option<f64>,
    ping_error: Option<String>,
    history: Vec<Sample>,
    queries: Vec<QueryRow>,
    slowest: Vec<SlowStatement>,
    slow_threshold_ms: f64,
    slow_total: u64,
    migrations: MigrationState,
    /// Each replica's state and lag (empty without `DB_REPLICA_URLS`).
    replicas: Vec<crate::pool::ReplicaStatus>,
}

/// `GET /dashboard/data`: the numbers of the page, with a fresh ping.
pub async fn data(State(state): State<AppState>) -> Response {
    let (ping_ms, ping_error) = match state.pool.ping(READY_TIMEOUT).await {
        Ok(d) => (Some(d.as_secs_f64() * 1000.0), None),
        Err(e) => (None, Some(e.to_string())),
    };
    if let Ok(mut p) = state.dashboard.ping.lock() {
        *p = Some((Instant::now(), ping_ms));
    }
    let migrations = state.migration_state().await;
    let pool = &state.pool;
    let stats = pool.stats();
    let c = pool.counters();
    let q = pool.queries();
    let body = Data {
        now: unix_now(),
        sample_every_seconds: SAMPLE_EVERY.as_secs_f64(),
        pool: PoolNow {
            engine: pool.engine(),
            max_open: stats.max_open_connections,
            max_idle: pool.settings().max_idle,
            open: stats.open_connections,
            in_use: stats.in_use,
            idle: stats.idle,
            pending: c.pending(),
            waits: stats.wait_count,
            wait_seconds: stats.wait_duration.as_secs_f64(),
            timeouts: c.timeouts(),
            closed: [
                ("max_idle", stats.max_idle_closed),
                ("max_idle_time", stats.max_idle_time_closed),
                ("max_lifetime", stats.max_lifetime_closed),
                ("broken", c.broken_closed()),
            ],
            acquire_timeout_seconds: pool.settings().acquire_timeout.as_secs_f64(),
        },
        ping_ms,
        ping_error,
        history: state.dashboard.samples(),
        queries: rows(&state),
        slowest: q.slowest(),
        slow_threshold_ms: q.slow_threshold().as_secs_f64() * 1000.0,
        slow_total: q.slow_total(),
        migrations,
        replicas: pool.replica_statuses(),
    };
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::Json(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let mut b = vec![0u64; BUCKETS.len()];
        assert_eq!(quantile(&b, 0.5), None);
        b[0] = 50; // up to 0.5 ms
        b[1] = 50; // 0.5 to 1 ms
        let p50 = quantile(&b, 0.5).expect("some");
        assert!((p50 - 0.0005).abs() < 1e-12, "{p50}");
        let p99 = quantile(&b, 0.99).expect("some");
        assert!(p99 > 0.0009 && p99 <= 0.001, "{p99}");
    }

    #[test]
    fn the_policy_allows_nothing_inline_and_nothing_from_elsewhere() {
        assert!(!CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval") && !CSP.contains("http"));
        assert!(CSP.contains("script-src 'self'") && CSP.contains("default-src 'none'"));
        assert!(!PAGE.contains("<script>") && !PAGE.contains("style=") && !PAGE.contains("<style"));
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
    }
}
