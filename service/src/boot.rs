//! Start-up in the background: reach the database, then (with `DB_AUTO_MIGRATE`) apply pending migrations.
//!
//! Owns what is retried and how it is reported. Failures that waiting can heal (the database refuses or
//! does not answer, another runner holds the migration lock, the connection drops mid-way) are retried with
//! capped exponential backoff, logged when they change and otherwise once a minute. Failures that waiting
//! cannot heal (an invalid migration file, an edited applied migration, a migration whose SQL fails) stop the
//! retries: `/ready` stays 503 with the reason, which is logged once. With auto-migrate off, pending
//! migrations, drift or history problems are logged as a warning and shown by `/ready` (see `health`).

use std::time::{Duration, Instant};

use crate::app::{AppState, Boot};
use crate::migrations::{FailureKind, MigrateFailure, MigrationState};
use crate::pool::PoolError;

/// First pause between two attempts to reach the database at start-up.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often an unchanged transient failure is logged again while retrying.
const REPEAT_LOG: Duration = Duration::from_secs(60);

/// Why an attempt failed.
enum Attempt {
    /// Retry after the backoff. `same_as` is what stays the same while the cause does (the message also
    /// says how long ago the last connection error was, which changes at every attempt).
    Retry { reason: String, same_as: String },
    /// Stop: retrying cannot help.
    Stop(String),
}

impl Attempt {
    fn retry(reason: String) -> Self {
        Self::Retry {
            same_as: reason.clone(),
            reason,
        }
    }
}

/// Connects and migrates, retrying what can heal (see the module docs).
pub async fn run(state: AppState) {
    let mut backoff = FIRST_BACKOFF;
    let mut attempt: u32 = 0;
    let mut last_logged: Option<(String, Instant)> = None;
    loop {
        attempt += 1;
        match step(&state).await {
            Ok(applied) => {
                match applied {
                    Some(n) => tracing::info!(
                        applied = n,
                        "database ready; auto-migrate applied {n} migration(s)"
                    ),
                    None => tracing::info!("database ready; auto-migrate is off (DB_AUTO_MIGRATE=false)"),
                }
                state.set_boot_error(None);
                state.set_boot(Boot::Done);
                crate::tenancy::warn_if_rls_bypassed_as(&state.config.db).await;
                // After readiness, so start-up-to-ready does not wait for the catalog queries; the first
                // scrape then finds the state start-up left (or shares this read).
                let now = state.refresh_migration_state().await;
                if applied.is_none() {
                    warn_if_behind(&now);
                }
                return;
            }
            Err(Attempt::Stop(reason)) => {
                let reason = format!(
                    "{reason}; not retried: fix the cause and restart the service (/live stays 200, /ready 503)"
                );
                tracing::error!("start-up stopped: {reason}");
                state.set_boot_error(Some(reason));
                state.set_boot(Boot::Failed);
                return;
            }
            Err(Attempt::Retry { reason, same_as }) => {
                state.set_boot(Boot::Connecting);
                let repeat = last_logged
                    .as_ref()
                    .is_some_and(|(said, at)| *said == same_as && at.elapsed() < REPEAT_LOG);
                if repeat {
                    tracing::debug!(attempt, retry_in = ?backoff, "database not ready: {reason}");
                } else {
                    tracing::warn!(attempt, retry_in = ?backoff, "database not ready (retrying): {reason}");
                    last_logged = Some((same_as, Instant::now()));
                }
                state.set_boot_error(Some(reason));
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One attempt: ping, then auto-migrate. `Ok(None)` when auto-migrate is off.
async fn step(state: &AppState) -> Result<Option<usize>, Attempt> {
    let ping_within = state.config.db.pool.acquire_timeout.min(Duration::from_secs(5));
    state.pool.ping(ping_within).await.map_err(|e| {
        let same_as = match &e {
            PoolError::Unreachable { last_error, .. } => last_error.clone(),
            other => other.to_string(),
        };
        Attempt::Retry {
            reason: e.to_string(),
            same_as,
        }
    })?;
    if !state.config.db.auto_migrate {
        return Ok(None);
    }
    state.set_boot(Boot::Migrating);
    match state.migrations.apply_pending(state.pool.db()).await {
        Ok(n) => Ok(Some(n)),
        Err(failure) => Err(judge(state, failure, ping_within).await),
    }
}

/// Decides whether a failed auto-migrate is retried: an unclear database error is transient when the
/// database no longer answers a ping, permanent when it still does.
async fn judge(state: &AppState, failure: MigrateFailure, ping_within: Duration) -> Attempt {
    let reason = format!("auto-migrate failed: {failure}");
    match failure.kind {
        FailureKind::Transient => Attempt::retry(reason),
        FailureKind::Unclear if state.pool.ping(ping_within).await.is_err() => Attempt::retry(reason),
        _ => Attempt::Stop(reason),
    }
}

/// With auto-migrate off, says at start-up what the operator has to do.
fn warn_if_behind(now: &MigrationState) {
    if let Some(behind) = behind(now) {
        tracing::warn!(
            pending = now.pending.unwrap_or(0),
            drift = ?now.drift,
            "{behind}"
        );
    }
}

/// What `/ready` and the start-up warning say when auto-migrate is off and the database is behind the code:
/// pending migrations, drift between the entities and the schema, or applied migrations whose file changed.
/// `None` when it is up to date (or the state is unknown).
pub fn behind(state: &MigrationState) -> Option<String> {
    let mut parts = Vec::new();
    match state.pending {
        Some(1) => parts.push("1 migration is pending".to_owned()),
        Some(n) if n > 1 => parts.push(format!("{n} migrations are pending")),
        _ => {}
    }
    if state.drift == crate::migrations::Drift::Yes {
        parts.push("the schema differs from the entities (drift)".to_owned());
    }
    match state.history_problems {
        Some(n) if n > 0 => parts.push(format!("{n} applied migration(s) changed or vanished")),
        _ => {}
    }
    (!parts.is_empty()).then(|| {
        format!(
            "auto-migrate is off (DB_AUTO_MIGRATE=false) and {}: run `make migrate` (migration up) or `make \
             migrate-status` for details",
            parts.join(", ")
        )
    })
}
