//! The service: start-up to ready (nothing pending, PostgreSQL), idle RSS, RSS under load, and `/live` and
//! `/health/database` throughput, p99 and server CPU per request under wrk on loopback, each against
//! `collex-bench bare` measured the same way in the same run; the bare handler, the service and the service
//! with `DB_MAX_IDLE_CONNS=32` take turns in rotating order over the rounds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::part::Env;
use crate::report::{Figure, Report, Target};
use crate::rounds;
use crate::tools;

/// Timed start-ups per server; the median is reported.
const STARTS: usize = 5;
/// wrk connections (one wrk thread, so the server keeps most of the second core).
const CONNECTIONS: u32 = 32;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Service,
    Bare,
}

struct Launcher {
    service: PathBuf,
    bare: PathBuf,
    url: String,
    log_dir: PathBuf,
}

impl Launcher {
    fn command(&self, which: Server, addr: SocketAddr, env: &[(&str, String)]) -> anyhow::Result<Command> {
        let (bin, log) = match which {
            Server::Service => (&self.service, "service.log"),
            Server::Bare => (&self.bare, "bare.log"),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_dir.join(log))?;
        let mut cmd = Command::new(bin);
        if which == Server::Bare {
            cmd.arg("bare");
        }
        cmd.env("DATABASE_URL", &self.url)
            .env("SERVER_ADDR", addr.to_string())
            .env_remove("RUST_LOG")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        Ok(cmd)
    }

    /// Starts `which` and waits for `/ready` to answer 200; returns the child and the time it took.
    async fn start(
        &self,
        which: Server,
        timeout: Duration,
        env: &[(&str, String)],
    ) -> anyhow::Result<(Child, SocketAddr, Duration)> {
        let addr = free_port()?;
        let mut cmd = self.command(which, addr, env)?;
        let start = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("cannot start {which:?}"))?;
        loop {
            if http_status(addr, "/ready").await == Some(200) {
                return Ok((child, addr, start.elapsed()));
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{which:?} exited with {status} before /ready answered 200 (log in {})",
                    self.log_dir.display()
                );
            }
            if start.elapsed() > timeout {
                stop(child).await;
                bail!(
                    "{which:?} was not ready within {timeout:?} (log in {})",
                    self.log_dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// The status code of `GET path`, or `None` when nothing answers.
async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace().nth(1)?.parse().ok()
}

/// SIGTERM, then SIGKILL after 5 s.
async fn stop(mut child: Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

/// `VmRSS` or `VmHWM` of a process, in MB.
fn memory_mb(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// What wrk measured.
#[derive(Debug, Clone, Copy)]
struct Load {
    rps: f64,
    p99_ms: f64,
    non_2xx: u64,
    /// Requests wrk completed in the measured run.
    requests: f64,
    /// The server's CPU microseconds per request over the measured run (`/proc/PID/stat`).
    server_cpu_us: f64,
}

fn wrk_duration_ms(s: &str) -> Option<f64> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1e3,
        "ms" => v,
        "s" => v * 1e3,
        "m" => v * 60e3,
        _ => return None,
    })
}

/// One warm-up second (connections opened, caches filled), then the measured run, with the server's
/// (`pid`'s) CPU read around it.
async fn wrk(wrk: &Path, addr: SocketAddr, path: &str, seconds: u64, pid: u32) -> anyhow::Result<Load> {
    wrk_once(wrk, addr, path, 1).await?;
    let cpu0 = rounds::pid_cpu_s(pid);
    let mut load = wrk_once(wrk, addr, path, seconds).await?;
    let cpu = rounds::pid_cpu_s(pid) - cpu0;
    load.server_cpu_us = cpu * 1e6 / load.requests.max(1.0);
    Ok(load)
}

async fn wrk_once(wrk: &Path, addr: SocketAddr, path: &str, seconds: u64) -> anyhow::Result<Load> {
    let out = Command::new(wrk)
        .args([
            "-t1",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{seconds}s"),
            "--latency",
        ])
        .arg(format!("http://{addr}{path}"))
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot start wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk exited {:?}: {}",
            out.status.code(),
            tools::tail(&out.stderr, 400)
        );
    }
    let mut load = Load {
        rps: f64::NAN,
        p99_ms: f64::NAN,
        non_2xx: 0,
        requests: f64::NAN,
        server_cpu_us: f64::NAN,
    };
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("Requests/sec:") => load.rps = words.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN),
            Some("99%") => load.p99_ms = words.next().and_then(wrk_duration_ms).unwrap_or(f64::NAN),
            // "123456 requests in 3.00s, 12.34MB read"
            Some(n) if line.contains(" requests in ") => load.requests = n.parse().unwrap_or(f64::NAN),
            Some("Non-2xx") => {
                load.non_2xx = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0)
            }
            _ => {}
        }
    }
    if load.rps.is_nan() {
        bail!("no Requests/sec in wrk output: {}", tools::tail(&out.stdout, 400));
    }
    if load.requests.is_nan() {
        load.requests = load.rps * seconds as f64;
    }
    Ok(load)
}

/// Idle RSS, per-endpoint load and peak RSS of one server.
struct Profile {
    idle_mb: f64,
    loaded_mb: f64,
    live: Option<Load>,
    database: Option<Load>,
}

async fn profile(
    launcher: &Launcher,
    which: Server,
    wrk_bin: Option<&Path>,
    seconds: u64,
    env: &[(&str, String)],
    idle: bool,
) -> anyhow::Result<Profile> {
    let (child, addr, _) = launcher.start(which, Duration::from_secs(30), env).await?;
    let pid = child.id().context("no pid")?;
    let idle_mb = if idle {
        tokio::time::sleep(Duration::from_secs(1)).await;
        memory_mb(pid, "VmRSS:").unwrap_or(f64::NAN)
    } else {
        f64::NAN
    };
    let mut p = Profile {
        idle_mb,
        loaded_mb: f64::NAN,
        live: None,
        database: None,
    };
    if let Some(w) = wrk_bin {
        p.live = Some(wrk(w, addr, "/live", seconds, pid).await?);
        p.database = Some(wrk(w, addr, "/health/database", seconds, pid).await?);
        p.loaded_mb = memory_mb(pid, "VmHWM:").unwrap_or(f64::NAN);
    }
    stop(child).await;
    Ok(p)
}

/// Runs the service benchmark and adds its figures.
///
/// # Errors
/// Database errors; a server that does not start is reported as missing, not as an error.
pub async fn run(env: &Env<'_>, report: &mut Report) -> anyhow::Result<()> {
    let (tools, dbs) = (env.tools, env.dbs);
    let seconds = env.args.whole_seconds();
    let work = crate::work_dir();
    std::fs::create_dir_all(&work)?;
    let launcher = Launcher {
        service: env.bin_dir().join("service"),
        bare: std::env::current_exe()?,
        url: dbs.fresh("service").await?,
        log_dir: work.clone(),
    };
    eprintln!("collex-bench: service (logs in {})", work.display());
    // First start migrates the fresh database (DB_AUTO_MIGRATE defaults to true), so the timed starts find
    // nothing pending.
    let service_ok = if launcher.service.exists() {
        match launcher
            .start(Server::Service, Duration::from_secs(120), &[])
            .await
        {
            Ok((child, _, first)) => {
                stop(child).await;
                report.note(format!(
                    "service: the first start (auto-migrate of a fresh database) took {:.0} ms",
                    first.as_secs_f64() * 1e3
                ));
                true
            }
            Err(e) => {
                report.note(format!("service: not measurable yet: {e:#}"));
                false
            }
        }
    } else {
        report.note(format!("service: {} not built", launcher.service.display()));
        false
    };

    let mut service_starts = Vec::new();
    let mut bare_starts = Vec::new();
    let starts = if env.quick() { 2 } else { STARTS };
    for _ in 0..starts {
        if service_ok {
            let (child, _, t) = launcher
                .start(Server::Service, Duration::from_secs(30), &[])
                .await?;
            stop(child).await;
            service_starts.push(t.as_secs_f64() * 1e3);
        }
        let (child, _, t) = launcher.start(Server::Bare, Duration::from_secs(30), &[]).await?;
        stop(child).await;
        bare_starts.push(t.as_secs_f64() * 1e3);
    }
    let wrk_bin = tools.wrk.as_deref();
    // The spec's DB_MAX_IDLE_CONNS=10 against the load's concurrency: the idle cap's policy (retired after
    // DB_MAX_IDLE_GRACE, or at once with a grace of 0, as Go does) apart from the handler's own cost.
    let idle_env = [("DB_MAX_IDLE_CONNS", CONNECTIONS.to_string())];
    // Per round, the three servers in rotating order: [bare, service, service with DB_MAX_IDLE_CONNS=32].
    let configs: [(Server, &[(&str, String)]); 3] = [
        (Server::Bare, &[]),
        (Server::Service, &[]),
        (Server::Service, &idle_env),
    ];
    let n_configs = if service_ok { 3 } else { 1 };
    let mut profiles: [Vec<Profile>; 3] = Default::default();
    for round in 0..env.rounds() {
        for k in 0..n_configs {
            let i = (k + round) % n_configs;
            let (which, vars) = configs[i];
            let p = profile(&launcher, which, wrk_bin, seconds, vars, round == 0).await?;
            profiles[i].push(p);
        }
    }
    let [bare, service, service_idle] = &profiles;

    let group = "service";
    if !service_ok {
        for name in [
            "start-up to ready",
            "idle RSS",
            "RSS under load",
            "/live",
            "/health/database",
        ] {
            report.add(Figure::missing(
                group,
                name,
                "the service binary does not serve /ready yet",
            ));
        }
        return Ok(());
    }
    report.add(
        Figure::from_rounds(group, "start-up to ready", &service_starts, "ms")
            .against_rounds("bare axum + sqlx pool", &bare_starts)
            .target(Target::ValueAtMost(150.0))
            .note(format!(
                "spawn to first 200 from /ready, polled every 1 ms; {starts} alternating starts each, \
                 nothing pending"
            )),
    );
    let first = |ps: &[Profile], f: fn(&Profile) -> f64| ps.first().map_or(f64::NAN, f);
    report.add(
        Figure::new(group, "idle RSS", first(service, |p| p.idle_mb), "MB")
            .against("bare", Some(first(bare, |p| p.idle_mb)))
            .target(Target::ValueAtMost(30.0))
            .note("VmRSS 1 s after ready (first round)"),
    );
    if wrk_bin.is_none() {
        for name in ["RSS under load", "/live", "/health/database"] {
            report.add(Figure::missing(
                group,
                name,
                "wrk MISSING (Debian package wrk; `make bench` installs it unless BENCH_INSTALL=0)",
            ));
        }
        return Ok(());
    }
    let of = |ps: &[Profile], f: &dyn Fn(&Profile) -> Option<f64>| -> Vec<f64> {
        ps.iter().map(|p| f(p).unwrap_or(f64::NAN)).collect()
    };
    let hwm = |p: &Profile| Some(p.loaded_mb);
    for (suffix, ps) in [("", service), (", DB_MAX_IDLE_CONNS=32", service_idle)] {
        for (path, load) in [
            ("/live", (|p: &Profile| p.live) as fn(&Profile) -> Option<Load>),
            ("/health/database", |p: &Profile| p.database),
        ] {
            let s_rps = of(ps, &|p| load(p).map(|l| l.rps));
            let b_rps = of(bare, &|p| load(p).map(|l| l.rps));
            let non_2xx: u64 = ps
                .iter()
                .chain(bare)
                .filter_map(|p| load(p).map(|l| l.non_2xx))
                .sum();
            let mut rps = Figure::from_rounds(group, format!("{path} throughput{suffix}"), &s_rps, "req/s")
                .against_rounds(format!("bare {path}"), &b_rps);
            if suffix.is_empty() && path == "/health/database" {
                rps = rps.target(Target::RatioAtLeast(0.9));
            }
            if suffix.is_empty() && path == "/live" {
                rps = rps.target(Target::RatioAtLeast(0.9));
            }
            if non_2xx > 0 {
                rps = rps.note(format!(
                    "non-2xx responses over every round, both servers: {non_2xx}"
                ));
            }
            report.add(rps);
            let mut p99 = Figure::from_rounds(
                group,
                format!("{path} p99{suffix}"),
                &of(ps, &|p| load(p).map(|l| l.p99_ms)),
                "ms",
            )
            .against_rounds(format!("bare {path}"), &of(bare, &|p| load(p).map(|l| l.p99_ms)));
            if suffix.is_empty() && path == "/health/database" {
                p99 = p99.target(Target::RatioAtMost(2.0));
            }
            report.add(p99);
            report.add(
                Figure::from_rounds(
                    group,
                    format!("server CPU per request, {path}{suffix}"),
                    &of(ps, &|p| load(p).map(|l| l.server_cpu_us)),
                    "us",
                )
                .against_rounds(
                    format!("bare {path}"),
                    &of(bare, &|p| load(p).map(|l| l.server_cpu_us)),
                ),
            );
        }
        report.add(
            Figure::from_rounds(group, format!("RSS under load{suffix}"), &of(ps, &hwm), "MB")
                .against_rounds("bare", &of(bare, &hwm))
                .target(Target::ValueAtMost(60.0))
                .note(format!("VmHWM after wrk -t1 -c{CONNECTIONS} on both endpoints")),
        );
    }
    report.note(format!(
        "service: per round the bare handler, the service and the service with DB_MAX_IDLE_CONNS=32 start in \
         rotating order, each loaded by wrk -t1 -c{CONNECTIONS} --latency on 127.0.0.1 (1 s warm-up, then \
         {seconds} s measured per endpoint); server CPU per request is the server process's user+system time \
         over the measured run (/proc/PID/stat, 10 ms ticks) divided by wrk's requests; server and wrk share \
         the 2 cores; the bare reference's sqlx pool keeps every connection idle"
    ));
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::wrk_duration_ms;

    #[test]
    fn wrk_durations_are_read_in_milliseconds() {
        assert_eq!(wrk_duration_ms("250.00us"), Some(0.25));
        assert_eq!(wrk_duration_ms("1.50ms"), Some(1.5));
        assert_eq!(wrk_duration_ms("2.00s"), Some(2000.0));
        assert_eq!(wrk_duration_ms("abc"), None);
    }
}
