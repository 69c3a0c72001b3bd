//! The state one pool's hooks, gate, acquire path and maintenance task share: the settings, the counters,
//! who holds which connection, the idle cap's bookkeeping, the guard window of health reads, and the last
//! connection error. One per pool, so a second pool (a replica) gets its own.
//!
//! Owns the rules that read this state: whether a released connection stays idle, whether a timeout means
//! exhaustion or an outage (and the words for it). It does not talk to the database (the hooks and the
//! maintenance task do) and does not know the backend type (the [`Probe`] hides it).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use config::PoolConfig;
use futures::future::BoxFuture;

use super::PoolError;
use super::stats::Counters;

/// How long after the last guarded scope ended releases still reset the session timeouts: the scope's
/// connections go back to the pool from tasks sqlx spawns when they are dropped, which start at once but
/// may run a little later.
const GUARD_SLACK: Duration = Duration::from_secs(5);

/// What the backend-typed pool tells the untyped shared state.
pub(super) trait Probe: Send + Sync {
    /// sqlx's size (connections open or opening) and idle count.
    fn sizes(&self) -> (u32, usize);
    /// Why a new connection cannot be opened, from one short direct attempt.
    fn diagnose(&self) -> BoxFuture<'static, String>;
}

/// When a connection went idle and when it was opened, in sqlx's idle-queue order (oldest first).
#[derive(Clone, Copy)]
pub(super) struct IdleEntry {
    pub(super) released_at: Instant,
    pub(super) created_at: Instant,
}

/// See the module docs.
pub(crate) struct Shared {
    pub(super) cfg: PoolConfig,
    pub(super) counters: Arc<Counters>,
    epoch: Instant,
    /// Connections given to a caller (by `before_acquire` or `after_connect`) and not released yet. With
    /// sqlx's size and idle count it tells connections in use from connection attempts in progress.
    handed_out: AtomicU32,
    /// With `DB_MAX_IDLE_GRACE=0`: idle places taken by released connections (idle, or on their way there).
    idle_slots: AtomicU32,
    /// With a grace period: the fewest idle connections seen since the maintenance window started.
    pub(super) idle_low_water: AtomicU32,
    /// Mirror of sqlx's idle queue, for closures by idle time and lifetime of connections nobody asks for.
    pub(super) idle_mirror: Mutex<VecDeque<IdleEntry>>,
    guard_scopes: AtomicU32,
    /// Nanoseconds since `epoch` until which releases reset the guard's session settings.
    guard_until: AtomicU64,
    last_error: Mutex<Option<(Instant, String)>>,
    /// Nanoseconds since `epoch` of the last connection opened (0: none yet).
    last_connected: AtomicU64,
    probe: RwLock<Option<Box<dyn Probe>>>,
}

impl Shared {
    pub(super) fn new(cfg: PoolConfig) -> Self {
        Self {
            cfg,
            counters: Arc::new(Counters::default()),
            epoch: Instant::now(),
            handed_out: AtomicU32::new(0),
            idle_slots: AtomicU32::new(0),
            idle_low_water: AtomicU32::new(0),
            idle_mirror: Mutex::new(VecDeque::new()),
            guard_scopes: AtomicU32::new(0),
            guard_until: AtomicU64::new(0),
            last_error: Mutex::new(None),
            last_connected: AtomicU64::new(0),
            probe: RwLock::new(None),
        }
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Installs the typed pool's probe (after the pool exists: the hooks are built before it).
    pub(super) fn set_probe(&self, probe: Box<dyn Probe>) {
        if let Ok(mut p) = self.probe.write() {
            *p = Some(probe);
        }
    }

    /// Drops the probe, which holds a handle of the sqlx pool its hooks hold this state in.
    pub(super) fn clear_probe(&self) {
        if let Ok(mut p) = self.probe.write() {
            *p = None;
        }
    }

    /// sqlx's size and idle count, while the pool is open.
    pub(super) fn sizes(&self) -> Option<(u32, u32)> {
        let probe = self.probe.read().ok()?;
        let (size, idle) = probe.as_ref()?.sizes();
        Some((size, u32::try_from(idle).unwrap_or(u32::MAX)))
    }

    pub(super) fn expired_lifetime(&self, age: Duration) -> bool {
        self.cfg.max_lifetime.is_some_and(|max| age > max)
    }

    pub(super) fn expired_idle(&self, idle_for: Duration) -> bool {
        self.cfg.max_idle_time.is_some_and(|max| idle_for > max)
    }

    /// A connection was given to a caller.
    pub(super) fn handed(&self) {
        self.handed_out.fetch_add(1, Ordering::AcqRel);
    }

    /// A caller gave a connection back.
    pub(super) fn returned(&self) {
        let _ = self
            .handed_out
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// A connection left sqlx's idle queue (handed out, or taken by the maintenance task).
    pub(super) fn left_idle(&self) {
        if self.cfg.idle_grace.is_zero() {
            let _ = self
                .idle_slots
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        } else if let Some((_, idle)) = self.sizes() {
            // sqlx popped the connection before this runs: `idle` is the count after it left.
            self.idle_low_water.fetch_min(idle, Ordering::AcqRel);
        }
        if let Ok(mut q) = self.idle_mirror.lock() {
            q.pop_front();
        }
    }

    /// Whether a released connection of `age` goes back to the idle queue; counts the ones closed.
    ///
    /// Without a grace period, as Go does: when `DB_MAX_IDLE_CONNS` places are taken it is closed and counted
    /// in `max_idle_closed`. The places are reconciled with the pool on every release (a connection that died
    /// on its way to the queue, after its release ping failed, gives its place back here), so they cannot
    /// leak. With a grace period it always stays; the maintenance task retires the surplus.
    pub(super) fn keep_on_release(&self, age: Duration) -> bool {
        let c = &self.counters;
        if self.expired_lifetime(age) {
            Counters::add(&c.max_lifetime_closed);
            return false;
        }
        if self.cfg.idle_grace.is_zero() {
            if let Some((size, _)) = self.sizes() {
                // Places can only be held by connections open, not handed out and not this one (it has none
                // yet): idle, on their way back, or (briefly) being opened. More places than that are leaked.
                let bound = size
                    .saturating_sub(self.handed_out.load(Ordering::Acquire))
                    .saturating_sub(1);
                let _ = self
                    .idle_slots
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n > bound).then_some(bound)
                    });
            }
            let max_idle = self.cfg.max_idle;
            let reserved = self
                .idle_slots
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max_idle).then_some(n + 1)
                });
            if reserved.is_err() {
                Counters::add(&c.max_idle_closed);
                return false;
            }
        }
        let now = Instant::now();
        if let Ok(mut q) = self.idle_mirror.lock() {
            q.push_back(IdleEntry {
                released_at: now,
                created_at: now.checked_sub(age).unwrap_or(now),
            });
        }
        true
    }

    /// Starts a guarded scope (see [`super::Pool::guarded`]); it ends when the returned value is dropped.
    pub(super) fn enter_guard(self: &Arc<Self>) -> GuardScope {
        self.guard_scopes.fetch_add(1, Ordering::AcqRel);
        GuardScope(self.clone())
    }

    /// Whether a release must reset the session settings a guarded scope may have made.
    pub(super) fn guard_window_open(&self) -> bool {
        self.guard_scopes.load(Ordering::Acquire) > 0
            || self.now_nanos() < self.guard_until.load(Ordering::Acquire)
    }

    /// A connection was opened: the database is reachable again.
    pub(super) fn connected(&self) {
        self.last_connected
            .store(self.now_nanos().max(1), Ordering::Release);
    }

    /// Remembers why a connection failed (HikariCP attaches the last one to its timeout errors).
    pub(super) fn record_error(&self, error: impl Into<String>) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some((Instant::now(), error.into()));
        }
    }

    /// The last connection error, when no connection was opened after it: how long ago, and what.
    pub(super) fn current_error(&self) -> Option<(Duration, String)> {
        let guard = self.last_error.lock().ok()?;
        let (at, what) = guard.as_ref()?;
        let at_nanos = u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        (at_nanos >= self.last_connected.load(Ordering::Acquire)).then(|| (at.elapsed(), what.clone()))
    }

    /// What a caller that gave up after `timeout` (waiting at the gate, or inside sqlx past it) is told:
    /// exhaustion when callers hold every connection; an outage named by the last connection error when one
    /// is known since the last connection opened; an outage named by one direct attempt when connection
    /// attempts were in progress (or, past the gate, sqlx had room and still opened nothing); else exhaustion.
    pub(super) async fn timed_out(&self, timeout: Duration, at_gate: bool) -> PoolError {
        Counters::add(&self.counters.timeouts);
        let max_open = self.cfg.max_open;
        let handed = self.handed_out.load(Ordering::Acquire);
        let (size, idle) = self.sizes().unwrap_or((0, 0));
        let attempts = size.saturating_sub(idle).saturating_sub(handed);
        let known = self.current_error();
        let could_open = attempts > 0 || (!at_gate && size < max_open);
        if handed >= max_open || (known.is_none() && !could_open) {
            return PoolError::Timeout { timeout, max_open };
        }
        let (ago, error) = match known {
            Some(k) => k,
            None => {
                let diagnosis = match self
                    .probe
                    .read()
                    .ok()
                    .and_then(|p| p.as_ref().map(|p| p.diagnose()))
                {
                    Some(d) => d.await,
                    None => "the pool is closed".to_owned(),
                };
                self.record_error(diagnosis.clone());
                (Duration::ZERO, diagnosis)
            }
        };
        PoolError::Unreachable {
            timeout,
            attempts,
            held: handed,
            max_open,
            last_error: error,
            age: ago,
        }
    }
}

/// A guarded scope in progress; ending it keeps the guard window open for [`GUARD_SLACK`].
pub(super) struct GuardScope(Arc<Shared>);

impl Drop for GuardScope {
    fn drop(&mut self) {
        let s = &self.0;
        let until = s
            .now_nanos()
            .saturating_add(u64::try_from(GUARD_SLACK.as_nanos()).unwrap_or(u64::MAX));
        s.guard_until.fetch_max(until, Ordering::AcqRel);
        s.guard_scopes.fetch_sub(1, Ordering::AcqRel);
    }
}
