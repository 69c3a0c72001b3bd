//! The pool's numbers: the Go `DBStats` snapshot ([`PoolStats`]) and the counters and histograms behind it
//! and behind `/metrics` ([`Counters`]), one set per pool.
//!
//! Owns what is counted and the Go duration format. It does not decide when something is counted (the
//! hooks, the gate and the maintenance task do) nor how it is rendered (`metrics` does).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::histogram::Histogram;

/// Go `DBStats`-equivalent statistics. Serialises to the spec's `pool_stats` object.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
pub struct PoolStats {
    /// `DB_MAX_OPEN_CONNS`.
    pub max_open_connections: u32,
    /// Connections open, in use or idle.
    pub open_connections: u32,
    /// Connections handed out.
    pub in_use: u32,
    /// Connections waiting in the pool.
    pub idle: u32,
    /// Acquisitions that had to wait because every connection was in use.
    pub wait_count: u64,
    /// Total time waited, in Go's duration syntax (`1.5s`).
    #[serde(serialize_with = "ser_go_duration")]
    #[ts(type = "string")]
    pub wait_duration: Duration,
    /// Connections closed because of the idle cap (`DB_MAX_IDLE_CONNS`).
    pub max_idle_closed: u64,
    /// Connections closed because they were idle too long.
    pub max_idle_time_closed: u64,
    /// Connections closed because they lived too long.
    pub max_lifetime_closed: u64,
}

fn ser_go_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&go_duration(*d))
}

/// Formats a duration the way Go's `time.Duration.String` does (`0s`, `150ms`, `1.5s`, `2m3.5s`, `1h0m0s`).
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim(format!("{:.3}", nanos as f64 / 1e3)));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim(format!("{:.6}", nanos as f64 / 1e6)));
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let frac = d.subsec_nanos();
    let sec = if frac == 0 {
        format!("{s}")
    } else {
        trim(format!("{s}.{frac:09}"))
    };
    match (h, m) {
        (0, 0) => format!("{sec}s"),
        (0, m) => format!("{m}m{sec}s"),
        (h, m) => format!("{h}h{m}m{sec}s"),
    }
}

/// Counters and histograms of one pool, shared by its hooks, its gate and its maintenance task.
#[derive(Debug, Default)]
pub struct Counters {
    pub(super) wait_count: AtomicU64,
    pub(super) wait_nanos: AtomicU64,
    pub(super) max_idle_closed: AtomicU64,
    pub(super) max_idle_time_closed: AtomicU64,
    pub(super) max_lifetime_closed: AtomicU64,
    pub(super) broken_closed: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) pending: AtomicU64,
    /// Time to obtain a connection (OpenTelemetry `db.client.connection.wait_time`).
    pub wait_time: Histogram,
    /// Time to open a connection (`db.client.connection.create_time`).
    pub create_time: Histogram,
    /// Time between acquire and release (`db.client.connection.use_time`).
    pub use_time: Histogram,
}

impl Counters {
    /// Acquisitions that timed out.
    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }
    /// Callers waiting for a connection now.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }
    /// Connections closed because they were found broken (a ping failed; not a Go counter, useful during
    /// outages).
    pub fn broken_closed(&self) -> u64 {
        self.broken_closed.load(Ordering::Relaxed)
    }

    pub(super) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the time to obtain a connection; a wait also adds to `wait_duration`.
    pub(super) fn record_wait(&self, waited_for: Duration, waited: bool) {
        if waited {
            let nanos = u64::try_from(waited_for.as_nanos()).unwrap_or(u64::MAX);
            self.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
        }
        self.wait_time.observe(waited_for);
    }

    /// The statistics, with the sizes read from the pool at the same moment.
    pub(super) fn snapshot(&self, max_open: u32, open: u32, idle: u32) -> PoolStats {
        let idle = idle.min(open);
        PoolStats {
            max_open_connections: max_open,
            open_connections: open,
            in_use: open - idle,
            idle,
            wait_count: self.wait_count.load(Ordering::Relaxed),
            wait_duration: Duration::from_nanos(self.wait_nanos.load(Ordering::Relaxed)),
            max_idle_closed: self.max_idle_closed.load(Ordering::Relaxed),
            max_idle_time_closed: self.max_idle_time_closed.load(Ordering::Relaxed),
            max_lifetime_closed: self.max_lifetime_closed.load(Ordering::Relaxed),
        }
    }
}

/// Decrements `pending` when dropped, also when the caller's future is dropped mid-wait.
pub(crate) struct PendingGuard<'a>(&'a Counters);

impl<'a> PendingGuard<'a> {
    pub(crate) fn enter(c: &'a Counters) -> Self {
        c.pending.fetch_add(1, Ordering::Relaxed);
        Self(c)
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_matches_go_formatting() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_millis(150)), "150ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(123_500)), "2m3.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
    }
}
