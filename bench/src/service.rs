//! The service: start-up to ready (nothing pending, PostgreSQL), idle RSS, RSS under load, and `/live` and
//! `/health/database` throughput and p99 under wrk on loopback, each against `collex-bench bare` measured the
//! same way in the same run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::part::Env;
use crate::report::{Figure, Report, Target};
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

/// One warm-up second (connections opened, caches filled), then the measured run.
async fn wrk(wrk: &Path, addr: SocketAddr, path: &str, seconds: u64) -> anyhow::Result<Load> {
    wrk_once(wrk, addr, path, 1).await?;
    wrk_once(wrk, addr, path, seconds).await
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
    };
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("Requests/sec:") => load.rps = words.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN),
            Some("99%") => load.p99_ms = words.next().and_then(wrk_duration_ms).unwrap_or(f64::NAN),
            Some("Non-2xx") => {
                load.non_2xx = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0)
            }
            _ => {}
        }
    }
    if load.rps.is_nan() {
        bail!("no Requests/sec in wrk output: {}", tools::tail(&out.stdout, 400));
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
) -> anyhow::Result<Profile> {
    let (child, addr, _) = launcher.start(which, Duration::from_secs(30), env).await?;
    let pid = child.id().context("no pid")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_mb = memory_mb(pid, "VmRSS:").unwrap_or(f64::NAN);
    let mut p = Profile {
        idle_mb,
        loaded_mb: f64::NAN,
        live: None,
        database: None,
    };
    if let Some(w) = wrk_bin {
        p.live = Some(wrk(w, addr, "/live", seconds).await?);
        p.database = Some(wrk(w, addr, "/health/database", seconds).await?);
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
    let bare_start = tools::median(bare_starts);
    let wrk_bin = tools.wrk.as_deref();
    let bare = profile(&launcher, Server::Bare, wrk_bin, seconds, &[]).await?;
    let service = if service_ok {
        Some(profile(&launcher, Server::Service, wrk_bin, seconds, &[]).await?)
    } else {
        None
    };
    // The spec's DB_MAX_IDLE_CONNS=10 closes connections released above 10 idle (Go's MaxIdleConns); with
    // more concurrent requests than that, every burst reconnects. Raising the cap to the load's concurrency
    // separates that policy from the handler's own cost.
    let idle_env = [("DB_MAX_IDLE_CONNS", CONNECTIONS.to_string())];
    let service_idle = if service_ok && wrk_bin.is_some() {
        Some(profile(&launcher, Server::Service, wrk_bin, seconds, &idle_env).await?)
    } else {
        None
    };

    let group = "service";
    let Some(service) = service else {
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
    };
    report.add(
        Figure::new(group, "start-up to ready", tools::median(service_starts), "ms")
            .against("bare axum + sqlx pool", Some(bare_start))
            .target(Target::ValueAtMost(150.0))
            .note(format!(
                "spawn to first 200 from /ready, polled every 1 ms; median of {starts}, nothing pending"
            )),
    );
    report.add(
        Figure::new(group, "idle RSS", service.idle_mb, "MB")
            .against("bare", Some(bare.idle_mb))
            .target(Target::ValueAtMost(30.0))
            .note("VmRSS 1 s after ready"),
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
    report.add(
        Figure::new(group, "RSS under load", service.loaded_mb, "MB")
            .against("bare", Some(bare.loaded_mb))
            .target(Target::ValueAtMost(60.0))
            .note(format!("VmHWM after wrk -t1 -c{CONNECTIONS} on both endpoints")),
    );
    for (path, s, b) in [
        ("/live", service.live, bare.live),
        ("/health/database", service.database, bare.database),
    ] {
        let (Some(s), Some(b)) = (s, b) else { continue };
        let mut rps = Figure::new(group, format!("{path} throughput"), s.rps, "req/s")
            .against(format!("bare {path}"), Some(b.rps));
        if s.non_2xx > 0 || b.non_2xx > 0 {
            rps = rps.note(format!(
                "non-2xx responses: service {}, bare {}",
                s.non_2xx, b.non_2xx
            ));
        }
        report.add(rps);
        report.add(
            Figure::new(group, format!("{path} p99"), s.p99_ms, "ms")
                .against(format!("bare {path}"), Some(b.p99_ms)),
        );
    }
    if let Some(p) = service_idle {
        for (path, s, b) in [
            ("/live", p.live, bare.live),
            ("/health/database", p.database, bare.database),
        ] {
            let (Some(s), Some(b)) = (s, b) else { continue };
            report.add(
                Figure::new(
                    group,
                    format!("{path} throughput, DB_MAX_IDLE_CONNS={CONNECTIONS}"),
                    s.rps,
                    "req/s",
                )
                .against(format!("bare {path}"), Some(b.rps)),
            );
            report.add(
                Figure::new(
                    group,
                    format!("{path} p99, DB_MAX_IDLE_CONNS={CONNECTIONS}"),
                    s.p99_ms,
                    "ms",
                )
                .against(format!("bare {path}"), Some(b.p99_ms)),
            );
        }
        report.add(
            Figure::new(
                group,
                format!("RSS under load, DB_MAX_IDLE_CONNS={CONNECTIONS}"),
                p.loaded_mb,
                "MB",
            )
            .against("bare", Some(bare.loaded_mb))
            .target(Target::ValueAtMost(60.0)),
        );
    }
    report.note(format!(
        "service: wrk -t1 -c{CONNECTIONS} --latency on 127.0.0.1, 1 s warm-up then {} s measured per endpoint; \
         server and wrk share the 2 cores; the bare reference's sqlx pool keeps every connection idle",
        seconds
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
