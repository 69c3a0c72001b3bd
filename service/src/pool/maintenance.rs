//! The pool's maintenance task, Go's `connectionCleaner` plus HikariCP's retirement of idle connections above
//! `minimumIdle`: it closes idle connections that outlived `DB_CONN_MAX_LIFETIME` or `DB_CONN_MAX_IDLE_TIME`
//! while nobody asked for them, and retires the idle connections above `DB_MAX_IDLE_CONNS` that nobody needed
//! for a whole `DB_MAX_IDLE_GRACE`.
//!
//! Owns the schedule and the choice of connections to close. Closures on the acquire and release paths are
//! the hooks' ([`super::hooks`]).
//!
//! # The surplus rule
//! The fewest idle connections seen during a window of `DB_MAX_IDLE_GRACE` (sampled at every hand-out, the
//! only moment the idle count goes down) is the number of connections no caller needed in that window. Of
//! those, the ones above `DB_MAX_IDLE_CONNS` are retired at the window's end, oldest-idle first, each counted
//! in `max_idle_closed`. A burst keeps its connections while it lasts; after it, the surplus is gone within
//! one to one and a half grace periods. sqlx hands idle connections out oldest first, so under a steady load
//! every connection is used now and then and a per-connection idle time would never retire any: the window's
//! low-water mark sees the surplus anyway.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sea_orm::sqlx;

use super::hooks::BackendSql;
use super::shared::Shared;
use super::stats::Counters;

/// How often the task wakes, or `None` when there is nothing to maintain.
pub(super) fn period(shared: &Shared) -> Option<Duration> {
    let cfg = &shared.cfg;
    let grace = (!cfg.idle_grace.is_zero()).then_some(cfg.idle_grace);
    let shortest = [cfg.max_lifetime, cfg.max_idle_time].into_iter().flatten().min();
    // Go's cleaner runs at the shortest limit; half of it keeps closures closer to it. The window is checked
    // at half the grace too, so the surplus goes between one and one and a half grace periods.
    let p = [shortest, grace].into_iter().flatten().min()? / 2;
    Some(p.clamp(Duration::from_millis(25), Duration::from_secs(60)))
}

/// The state of one pool's task between runs.
pub(super) struct Maintenance<DB: BackendSql> {
    pool: sqlx::Pool<DB>,
    window_started: Instant,
}

impl<DB: BackendSql> Maintenance<DB> {
    pub(super) fn new(pool: sqlx::Pool<DB>) -> Self {
        Self {
            pool,
            window_started: Instant::now(),
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    /// One run: expired connections first, then the surplus, then the mirror reconciled with sqlx's queue.
    pub(super) async fn run(&mut self, shared: &Shared) {
        self.close_expired(shared).await;
        self.retire_surplus(shared).await;
        let idle = self.pool.num_idle();
        if let Ok(mut q) = shared.idle_mirror.lock() {
            // The mirror can be ahead of the queue by connections that died on their way back (see the
            // `pool` module docs); the oldest entries go, as sqlx's queue would have handed them out first.
            while q.len() > idle {
                q.pop_front();
            }
        }
    }

    /// Takes the longest-idle connection out of sqlx's queue, bypassing the hooks.
    fn take(&self, shared: &Shared) -> Option<sqlx::pool::PoolConnection<DB>> {
        let conn = self.pool.try_acquire()?;
        shared.left_idle();
        Some(conn)
    }

    async fn close_expired(&self, shared: &Shared) {
        let now = Instant::now();
        loop {
            let front = shared.idle_mirror.lock().ok().and_then(|q| q.front().copied());
            let Some(entry) = front else { break };
            let lifetime = shared.expired_lifetime(now.saturating_duration_since(entry.created_at));
            let idle = shared.expired_idle(now.saturating_duration_since(entry.released_at));
            if !(lifetime || idle) {
                break;
            }
            let Some(conn) = self.take(shared) else {
                // Nothing idle after all: the mirror was ahead of the queue.
                if let Ok(mut q) = shared.idle_mirror.lock() {
                    q.pop_front();
                }
                break;
            };
            let c = &shared.counters;
            Counters::add(if lifetime {
                &c.max_lifetime_closed
            } else {
                &c.max_idle_time_closed
            });
            let _ = conn.close().await;
        }
    }

    async fn retire_surplus(&mut self, shared: &Shared) {
        let grace = shared.cfg.idle_grace;
        if grace.is_zero() || self.window_started.elapsed() < grace {
            return;
        }
        let idle_now = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        let unneeded = shared.idle_low_water.load(Ordering::Acquire).min(idle_now);
        let surplus = unneeded.saturating_sub(shared.cfg.max_idle);
        for _ in 0..surplus {
            let Some(conn) = self.take(shared) else { break };
            Counters::add(&shared.counters.max_idle_closed);
            let _ = conn.close().await;
        }
        // The next window starts from what is idle now.
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        shared.idle_low_water.store(idle, Ordering::Release);
        self.window_started = Instant::now();
    }
}
