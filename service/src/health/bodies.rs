//! The JSON bodies of the health endpoints, as the types the handlers serialise and `export_types` exports
//! to TypeScript (`bindings/`), so the wire format and the frontend's types come from one definition.
//!
//! Owns the envelopes and their literal statuses (string unions in TypeScript). Fields use the wire names
//! (snake_case, as the spec's `pool_stats`) and the spec's order; optional fields are left out when empty.
//! The parts serialised from other modules' types (`PoolStats`, `MemoryCheck`, `DiskCheck`, `Verdict`,
//! `Engine`, `MigrationState`) stay there.

use serde::Serialize;
use ts_rs::TS;

use crate::migrations::MigrationState;
use crate::pool::{Engine, PoolStats, ReplicaStatus, RouteStats};
use crate::system::{DiskCheck, MemoryCheck, Verdict};

/// `healthy` or `unhealthy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Every check passed.
    Healthy,
    /// A check failed; the endpoint answered 503.
    Unhealthy,
}

impl From<bool> for HealthStatus {
    fn from(ok: bool) -> Self {
        if ok { Self::Healthy } else { Self::Unhealthy }
    }
}

/// `GET /live`: always 200, no database I/O.
#[derive(Debug, Clone, Serialize, TS)]
pub struct LiveResponse {
    /// Always `alive`.
    pub status: LiveStatus,
    /// RFC 3339, seconds precision.
    pub timestamp: String,
    /// `1h 30m 45s`.
    pub uptime: String,
}

/// The only status `/live` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum LiveStatus {
    /// The process answers.
    Alive,
}

/// `GET /ready`: 200 once start-up finished and the database answers, 503 otherwise.
#[derive(Debug, Clone, Serialize, TS)]
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
    /// What the operator should know though the service is ready (with auto-migrate off: pending migrations
    /// or drift, and the command that fixes them); absent when there is nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub warning: Option<String>,
}

/// Whether the service takes traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
pub enum ReadyStatus {
    /// Start-up finished and the database answers.
    #[serde(rename = "ready")]
    Ready,
    /// Not yet, or not any more.
    #[serde(rename = "not ready")]
    NotReady,
}

/// The checks behind `/ready`.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ReadyChecks {
    /// Whether the database answered a ping within 1 s.
    pub database: HealthStatus,
    /// How far start-up migration got.
    pub migrations: MigrationStep,
}

/// How far the start-up migration got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
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
    /// Auto-migrate is off and the database is behind the code (pending migrations, drift or changed
    /// history): ready, with a warning.
    #[serde(rename = "pending")]
    Pending,
    /// Auto-migrate failed in a way retrying cannot heal; start-up stopped.
    #[serde(rename = "failed")]
    Failed,
}

/// The verdict of each service `/health` looks at.
#[derive(Debug, Clone, Serialize, TS)]
pub struct HealthServices {
    /// Whether the database answered a ping within 1 s.
    pub database: HealthStatus,
    /// Available memory against its threshold.
    pub memory: Verdict,
    /// Available disk against its threshold.
    pub disk: Verdict,
}

/// `GET /health`: the spec's basic health response; 503 when a service is unhealthy.
#[derive(Debug, Clone, Serialize, TS)]
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

/// The database part of `/health/detailed`.
#[derive(Debug, Clone, Serialize, TS)]
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
#[derive(Debug, Clone, Serialize, TS)]
pub struct DetailedChecks {
    /// The database ping.
    pub database: DatabaseCheck,
    /// Memory.
    pub memory: MemoryCheck,
    /// Disk.
    pub disk: DiskCheck,
}

/// `GET /health/detailed`: everything `/health` says, with the numbers, the pool and the migrations.
#[derive(Debug, Clone, Serialize, TS)]
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
    /// The read replicas (`DB_REPLICA_URLS`), each with its pool's statistics; absent without replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub replicas: Option<Replication>,
    /// The migration state.
    pub migrations: MigrationState,
}

/// The read replicas as health reports them: `degraded` when one is down or lagging (the primary still
/// serves every read, so the service's own verdict does not change), each replica, and how reads were routed.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Replication {
    /// `healthy` when every replica is, else `degraded`.
    pub status: &'static str,
    /// Each replica: state, lag in bytes and seconds, its pool's statistics (`pool_name`).
    pub members: Vec<ReplicaStatus>,
    /// Replica reads, sticky reads and fallbacks to the primary by reason.
    pub routing: RouteStats,
}

impl Replication {
    /// The report, or `None` without replicas.
    pub fn of(members: Vec<ReplicaStatus>, routing: RouteStats) -> Option<Self> {
        if members.is_empty() {
            return None;
        }
        let status = if members.iter().all(|m| m.status == "healthy") {
            "healthy"
        } else {
            "degraded"
        };
        Some(Self {
            status,
            members,
            routing,
        })
    }
}

/// The `database` object of `/health/database`: the spec's `connectivity` and `pool_stats`, then the ping.
#[derive(Debug, Clone, Serialize, TS)]
pub struct DatabaseHealth {
    /// Whether the database answered.
    pub connectivity: HealthStatus,
    /// Go `DBStats`-equivalent pool statistics.
    pub pool_stats: PoolStats,
    /// The read replicas; absent without replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub replicas: Option<Replication>,
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

impl DatabaseHealth {
    /// The check with the pool statistics taken at the same time.
    pub fn new(check: DatabaseCheck, pool_stats: PoolStats) -> Self {
        Self {
            connectivity: check.connectivity,
            pool_stats,
            replicas: None,
            engine: check.engine,
            target: check.target,
            latency_ms: check.latency_ms,
            error: check.error,
        }
    }
}

/// `GET /health/database`: connectivity and the pool statistics (waits up to `DB_CONN_ACQUIRE_TIMEOUT`).
#[derive(Debug, Clone, Serialize, TS)]
pub struct DatabaseHealthResponse {
    /// The database's verdict.
    pub status: HealthStatus,
    /// RFC 3339, seconds precision.
    pub timestamp: String,
    /// Connectivity and pool.
    pub database: DatabaseHealth,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn stats() -> PoolStats {
        PoolStats {
            max_open_connections: 100,
            open_connections: 5,
            in_use: 2,
            idle: 3,
            wait_count: 0,
            wait_duration: Duration::ZERO,
            max_idle_closed: 0,
            max_idle_time_closed: 0,
            max_lifetime_closed: 0,
        }
    }

    #[test]
    fn database_health_serialises_in_the_specs_order_without_empty_fields() {
        let check = DatabaseCheck {
            connectivity: HealthStatus::from(true),
            engine: Engine::Postgresql,
            target: "postgres://app@db:5432/collex".into(),
            latency_ms: Some(0.42),
            error: None,
        };
        let body = DatabaseHealthResponse {
            status: HealthStatus::Healthy,
            timestamp: "2024-01-01T12:00:00Z".into(),
            database: DatabaseHealth::new(check, stats()),
        };
        let json = serde_json::to_string(&body).expect("serialises");
        let at = |key: &str| json.find(&format!("\"{key}\"")).unwrap_or(usize::MAX);
        assert!(
            at("status") < at("timestamp") && at("timestamp") < at("database"),
            "{json}"
        );
        assert!(
            at("connectivity") < at("pool_stats") && at("pool_stats") < at("engine"),
            "{json}"
        );
        assert!(json.contains("\"connectivity\":\"healthy\""), "{json}");
        assert!(json.contains("\"wait_duration\":\"0s\""), "{json}");
        assert!(!json.contains("\"error\""), "{json}");
    }

    fn word(v: impl Serialize) -> String {
        serde_json::to_string(&v).expect("serialises")
    }

    #[test]
    fn literal_statuses_serialise_as_the_spec_words() {
        assert_eq!(word(HealthStatus::Unhealthy), "\"unhealthy\"");
        assert_eq!(word(LiveStatus::Alive), "\"alive\"");
        assert_eq!(word(ReadyStatus::NotReady), "\"not ready\"");
        assert_eq!(word(MigrationStep::NotStarted), "\"not started\"");
        assert_eq!(word(MigrationStep::Pending), "\"pending\"");
        assert_eq!(word(MigrationStep::Failed), "\"failed\"");
    }
}
