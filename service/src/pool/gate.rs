//! The gate: a fair semaphore of `DB_MAX_OPEN_CONNS` permits that every use of a connection passes first
//! ([`super::Pool::acquire`], [`super::Pool::ping`], every statement and transaction of [`super::Db`]).
//!
//! Owns Go's definition of a wait (no permit free: every connection is taken) and its timing. It does not
//! decide what a timeout means (exhaustion or an outage): [`super::shared::Shared::timed_out`] does, from the
//! pool's state at that moment.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::PoolError;
use super::shared::Shared;
use super::stats::Counters;

/// The fair semaphore in front of one pool.
#[derive(Clone)]
pub(crate) struct Gate {
    sem: Arc<Semaphore>,
    shared: Arc<Shared>,
}

impl Gate {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        let sem = Arc::new(Semaphore::new(shared.cfg.max_open.max(1) as usize));
        Self { sem, shared }
    }

    pub(super) fn counters(&self) -> &Arc<Counters> {
        &self.shared.counters
    }

    pub(super) fn timeout(&self) -> Duration {
        self.shared.cfg.acquire_timeout
    }

    /// Takes `n` permits (at most `DB_MAX_OPEN_CONNS`), waiting at most `timeout` since `started`.
    ///
    /// Returns the permits and whether the caller waited. A wait is counted in `wait_count` and its length in
    /// `wait_duration` and `wait_time`; a caller that did not wait here records its `wait_time` itself once it
    /// has its connection (see [`Gate::settle`]). The caller counts `pending`.
    pub(super) async fn enter(
        &self,
        n: u32,
        started: Instant,
        timeout: Duration,
    ) -> Result<(OwnedSemaphorePermit, bool), PoolError> {
        let c = &self.shared.counters;
        let n = n.clamp(1, self.shared.cfg.max_open.max(1));
        // The gate is fair (FIFO), like Go's queue of waiters.
        match self.sem.clone().try_acquire_many_owned(n) {
            Ok(p) => Ok((p, false)),
            Err(TryAcquireError::Closed) => Err(PoolError::Closed),
            Err(TryAcquireError::NoPermits) => {
                Counters::add(&c.wait_count);
                let remaining = timeout.saturating_sub(started.elapsed());
                let got = tokio::time::timeout(remaining, self.sem.clone().acquire_many_owned(n)).await;
                c.record_wait(started.elapsed(), true);
                match got {
                    Ok(Ok(p)) => Ok((p, true)),
                    Ok(Err(_)) => Err(PoolError::Closed),
                    Err(_) => Err(self.shared.timed_out(timeout, true).await),
                }
            }
        }
    }

    /// Records the time to obtain a connection of a caller the gate did not make wait.
    pub(super) fn settle(&self, started: Instant, waited: bool) {
        self.shared.counters.record_wait(started.elapsed(), waited);
    }

    pub(super) fn close(&self) {
        self.sem.close();
    }

    /// Permits taken right now.
    pub(super) fn taken(&self) -> u32 {
        let free = u32::try_from(self.sem.available_permits()).unwrap_or(u32::MAX);
        self.shared.cfg.max_open.max(1).saturating_sub(free)
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("taken", &self.taken())
            .field("pending", &self.shared.counters.pending.load(Ordering::Relaxed))
            .finish()
    }
}
