//! The shapes of the health endpoints' JSON bodies, declared for TypeScript only.
//!
//! `service::health` builds these bodies with `json!`, so there is no Rust type to derive from; the pieces
//! it serialises from real types (`PoolStats`, `MemoryCheck`, `DiskCheck`, `Verdict`, `Engine`,
//! `MigrationState`) are used here as they are. The contract test
//! (`tests/integration/typescript.rs`) fetches every endpoint, healthy and unhealthy, from a running service
//! and type-checks the bodies against the generated files, so a change to `health.rs` that these shapes do not
//! follow fails `make test`. When `health.rs` builds these structs instead of `json!`, move them there.
//!
//! Fields use the wire names (snake_case, as the spec's `pool_stats`); literal statuses become string unions.

// Declarations only: nothing in this binary builds these values.
#![allow(dead_code)]

use serde::Serialize;
use service::PoolStats;
use service::migrations::MigrationState;
use service::pool::Engine;
use service::system::{DiskCheck, MemoryCheck, Verdict};
use ts_rs::TS;

/// `healthy` or `unhealthy`.
#[derive(Serialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Every check passed.
    Healthy,
    /// A check failed; the endpoint answered 503.
    Unhealthy,
}

/// `GET /live`: always 200, no database I/O.
#[derive(Serialize, TS)]
pub struct LiveResponse {
    /// Always `alive`.
    pub status: LiveStatus,
    /// RFC 3339, seconds precision.
    pub timestamp: String,
    /// `1h 30m 45s`.
    pub uptime: String,
}

/// The only status `/live` reports.
#[derive(Serialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum LiveStatus {
    /// The process answers.
    Alive,
}

/// `GET /ready`: 200 once start-up finished and the database answers, 503 otherwise.
#[derive(Serialize, TS)]
pub struct ReadyResponse {
    /// `ready` or `not ready`.
    pub status: ReadyStatus,
    /// RFC 3339, seconds precision.
    pub timestamp: String,
    /// What readiness depends on.
    pub checks: ReadyChecks,
    /// Why the service is not ready; absent when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<String>,
}

/// Whether the service takes traffic.
#[derive(Serialize, TS)]
pub enum ReadyStatus {
    /// Start-up finished and the database answers.
    #[serde(rename = "ready")]
    Ready,
    /// Not yet, or not any more.
    #[serde(rename = "not ready")]
    NotReady,
}

/// The checks behind `/ready`.
#[derive(Serialize, TS)]
pub struct ReadyChecks {
    /// Whether the database answered a ping within 1 s.
    pub database: HealthStatus,
    /// How far start-up migration got.
    pub migrations: MigrationStep,
}

/// How far the start-up migration got.
#[derive(Serialize, TS)]
pub enum MigrationStep {
    /// Applied (`DB_AUTO_MIGRATE=true`).
    #[serde(rename = "applied")]
    Applied,
    /// Not run at start-up (`DB_AUTO_MIGRATE=false`).
    #[serde(rename = "disabled")]
    Disabled,
    /// Being applied now.
    #[serde(rename = "running")]
    Running,
    /// Waiting for the database.
    #[serde(rename = "not started")]
    NotStarted,
}

/// The verdict of each service `/health` looks at.
#[derive(Serialize, TS)]
pub struct HealthServices {
    /// Whether the database answered a ping within 1 s.
    pub database: HealthStatus,
    /// Available memory against its threshold.
    pub memory: Verdict,
    /// Available disk against its threshold.
    pub disk: Verdict,
}

/// `GET /health`: the spec's basic health response; 503 when a service is unhealthy.
#[derive(Serialize, TS)]
pub struct HealthResponse {
    /// Overall verdict.
    pub status: HealthStatus,
    /// RFC 3339, seconds precision.
    pub timestamp: String,
    /// `1h 30m 45s`.
    pub uptime: String,
    /// The service's version.
    pub version: String,
    /// Each service's verdict.
    pub services: HealthServices,
}

/// The database part of `/health/detailed` and `/health/database`.
#[derive(Serialize, TS)]
pub struct DatabaseCheck {
    /// Whether the database answered.
    pub connectivity: HealthStatus,
    /// Which engine the pool talks to.
    pub engine: Engine,
    /// Where the database is, without the password.
    pub target: String,
    /// Round trip of the ping in milliseconds (two decimals); absent when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub latency_ms: Option<f64>,
    /// Why the ping failed; absent when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<String>,
}

/// Every check of `/health/detailed`, with its numbers and threshold.
#[derive(Serialize, TS)]
pub struct DetailedChecks {
    /// The database ping.
    pub database: DatabaseCheck,
    /// Memory.
    pub memory: MemoryCheck,
    /// Disk.
    pub disk: DiskCheck,
}

/// `GET /health/detailed`: everything `/health` says, with the numbers, the pool and the migrations.
#[derive(Serialize, TS)]
pub struct DetailedHealthResponse {
    /// Overall verdict.
    pub status: HealthStatus,
    /// RFC 3339, seconds precision.
    pub timestamp: String,
    /// `1h 30m 45s`.
    pub uptime: String,
    /// The service's version.
    pub version: String,
    /// Each service's verdict.
    pub services: HealthServices,
    /// Each check in detail.
    pub checks: DetailedChecks,
    /// Go `DBStats`-equivalent pool statistics.
    pub pool_stats: PoolStats,
    /// The migration state.
    pub migrations: MigrationState,
}

/// The `database` object of `/health/database`.
#[derive(Serialize, TS)]
pub struct DatabaseHealth {
    /// The ping.
    #[serde(flatten)]
    pub check: DatabaseCheck,
    /// Go `DBStats`-equivalent pool statistics.
    pub pool_stats: PoolStats,
}

/// `GET /health/database`: connectivity and the pool statistics (waits up to `DB_CONN_ACQUIRE_TIMEOUT`).
#[derive(Serialize, TS)]
pub struct DatabaseHealthResponse {
    /// The database's verdict.
    pub status: HealthStatus,
    /// RFC 3339, seconds precision.
    pub timestamp: String,
    /// Connectivity and pool.
    pub database: DatabaseHealth,
}
