//! How a part measures: paths alternating over rounds (the order rotating each round, so drift on a shared
//! machine spreads over every path), one [`Window`] per path and round (operations, wall time, the bench
//! process's CPU), and the closed loop most parts time (`tasks` concurrent tasks repeating one operation).
//!
//! The report turns the per-round samples into a median and a min–max spread
//! ([`crate::report::Figure::from_rounds`]), and the per-round ratios into the ratio's spread.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

/// CPU seconds (user + system) of this process so far, at microsecond resolution (`getrusage`).
pub fn self_cpu_s() -> f64 {
    rusage_s(nix::sys::resource::UsageWho::RUSAGE_SELF)
}

/// CPU seconds (user + system) of this process's children that have exited and been waited for
/// (`getrusage(RUSAGE_CHILDREN)`): the cost of a tool run to completion, e.g. `migration up` or pgbench.
pub fn children_cpu_s() -> f64 {
    rusage_s(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
}

fn rusage_s(who: nix::sys::resource::UsageWho) -> f64 {
    match nix::sys::resource::getrusage(who) {
        Ok(u) => {
            let s = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            s(u.user_time()) + s(u.system_time())
        }
        Err(_) => f64::NAN,
    }
}

/// CPU seconds (user + system) of a running process, from `/proc/PID/stat` (10 ms resolution): the cost of
/// a server under load, read before and after the load.
pub fn pid_cpu_s(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // The command name (field 2) may hold spaces and parentheses; the fields after its last `)` do not.
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // After the `)`, field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12; Linux's
    // USER_HZ is 100 on every common build.
    (ticks(11) + ticks(12)) / 100.0
}

/// One measured window of one path.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    /// Operations completed in the window.
    pub ops: f64,
    /// Wall-clock seconds of the window.
    pub secs: f64,
    /// CPU seconds spent in the window by whoever the part charges (the bench process, a server, a tool).
    pub cpu_s: f64,
}

impl Window {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops / self.secs
    }

    /// CPU microseconds per operation.
    pub fn cpu_us_per_op(&self) -> f64 {
        self.cpu_s * 1e6 / self.ops.max(1.0)
    }

    /// Milliseconds of wall time per operation (for runs timed as one operation, e.g. a CLI start).
    pub fn ms_per_op(&self) -> f64 {
        self.secs * 1e3 / self.ops.max(1.0)
    }
}

/// Samples of several paths over the rounds: `samples[path][round]`.
#[derive(Debug, Clone)]
pub struct Rounds<T> {
    /// One vector per path, one entry per round.
    pub samples: Vec<Vec<T>>,
}

impl<T> Rounds<T> {
    /// `f` of every round's sample of `path` (e.g. `rounds.of(0, Window::rate)`).
    pub fn of(&self, path: usize, f: impl Fn(&T) -> f64) -> Vec<f64> {
        self.samples
            .get(path)
            .map(|v| v.iter().map(f).collect())
            .unwrap_or_default()
    }
}

/// Runs `paths` paths for `rounds` rounds, path `(k + round) % paths` `k`-th in each round, so that no path
/// is always first (warmest cache) or last (most drift).
///
/// # Errors
/// The first error of `measure`.
pub async fn alternate<T, F, Fut>(rounds: usize, paths: usize, mut measure: F) -> anyhow::Result<Rounds<T>>
where
    F: FnMut(usize, usize) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut samples: Vec<Vec<T>> = (0..paths).map(|_| Vec::with_capacity(rounds)).collect();
    for round in 0..rounds.max(1) {
        for k in 0..paths {
            let path = (k + round) % paths;
            let s = measure(path, round).await?;
            samples[path].push(s);
        }
    }
    Ok(Rounds { samples })
}

/// `tasks` concurrent tasks each repeating `op(task, random)` until stopped: `warmup` unmeasured, then
/// `window` measured. The CPU charged is the bench process's own over the window (client CPU); `op` returns
/// how many operations it did (usually 1).
///
/// # Errors
/// The first error of any task (the window is then discarded), or a task that panicked.
pub async fn closed_loop<F, Fut>(
    tasks: usize,
    warmup: Duration,
    window: Duration,
    op: F,
) -> anyhow::Result<Window>
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<u64>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let (stop, done, op) = (stop.clone(), done.clone(), op.clone());
        handles.push(tokio::spawn(async move {
            // xorshift: the same cheap pseudo-random choice for every path, different per task.
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let n = op(t, x).await?;
                done.fetch_add(n, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(warmup).await;
    let (ops0, start, cpu0) = (done.load(Ordering::Relaxed), Instant::now(), self_cpu_s());
    tokio::time::sleep(window).await;
    let (ops1, secs, cpu1) = (
        done.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
        self_cpu_s(),
    );
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.context("a bench task panicked")??;
    }
    Ok(Window {
        ops: (ops1 - ops0) as f64,
        secs,
        cpu_s: cpu1 - cpu0,
    })
}

/// Median of a sample (mean of the middle two for even sizes); NaN when empty.
pub fn median(xs: &[f64]) -> f64 {
    let mut xs: Vec<f64> = xs.to_vec();
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// `[min, max]` of the finite values, if any.
pub fn spread(xs: &[f64]) -> Option<[f64; 2]> {
    let finite = xs.iter().copied().filter(|x| x.is_finite());
    finite.fold(None, |acc, x| match acc {
        None => Some([x, x]),
        Some([lo, hi]) => Some([lo.min(x), hi.max(x)]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(spread(&[3.0, f64::NAN, 1.0, 2.0]), Some([1.0, 3.0]));
        assert_eq!(spread(&[f64::NAN]), None);
    }

    #[tokio::test]
    async fn alternate_rotates_the_order_every_round() {
        let mut order = Vec::new();
        let rounds = alternate(3, 3, |path, round| {
            order.push(path);
            async move { anyhow::Ok((path * 10 + round) as f64) }
        })
        .await
        .expect("no error");
        assert_eq!(order, [0, 1, 2, 1, 2, 0, 2, 0, 1]);
        assert_eq!(rounds.of(1, |x| *x), [10.0, 11.0, 12.0]);
    }

    #[test]
    fn own_cpu_time_grows_with_work() {
        let before = self_cpu_s();
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(self_cpu_s() > before, "50 ms of spinning shows in getrusage");
        assert!(pid_cpu_s(std::process::id()).is_finite());
    }
}
