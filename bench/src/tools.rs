//! The external reference tools (pgbench, psql, wrk, hyperfine): where they are, or that they are missing.
//! A missing tool is reported as missing; nothing is installed from here.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

/// Paths of the reference tools found on `PATH`.
#[derive(Debug, Clone, Serialize)]
pub struct Tools {
    /// `pgbench`.
    pub pgbench: Option<PathBuf>,
    /// `psql`.
    pub psql: Option<PathBuf>,
    /// `wrk`.
    pub wrk: Option<PathBuf>,
    /// `hyperfine`.
    pub hyperfine: Option<PathBuf>,
}

/// `name` on `PATH`, if there.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl Tools {
    /// Looks every tool up.
    pub fn find() -> Self {
        Self {
            pgbench: which("pgbench"),
            psql: which("psql"),
            wrk: which("wrk"),
            hyperfine: which("hyperfine"),
        }
    }

    /// One line: each tool's path or `missing`.
    pub fn summary(&self) -> String {
        let show = |name: &str, p: &Option<PathBuf>| match p {
            Some(p) => format!("{name} {}", p.display()),
            None => format!("{name} MISSING"),
        };
        [
            show("pgbench", &self.pgbench),
            show("psql", &self.psql),
            show("wrk", &self.wrk),
            show("hyperfine", &self.hyperfine),
        ]
        .join(", ")
    }
}

/// The last `n` bytes of a process's output, as text.
pub fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let start = text.len().saturating_sub(n);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].trim().to_owned()
}

/// Runs `cmd` to completion and returns how long it took; fails when it exits non-zero.
pub async fn timed(cmd: &mut tokio::process::Command, what: &str) -> anyhow::Result<Duration> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd
        .output()
        .await
        .with_context(|| format!("cannot start {what}"))?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        bail!(
            "{what} exited {:?}: {}",
            out.status.code(),
            tail(&out.stderr, 600)
        );
    }
    Ok(elapsed)
}

/// `pgbench -i -s 1`: 100,000 `pgbench_accounts` rows, the table `pgbench -S` reads.
///
/// # Errors
/// When pgbench is missing or fails.
pub async fn pgbench_init(url: &str) -> anyhow::Result<()> {
    let Some(pgbench) = which("pgbench") else {
        return Ok(());
    };
    timed(
        tokio::process::Command::new(pgbench)
            .args(["-i", "-s", "1", "-q", "-n"])
            .arg(url),
        "pgbench -i -s 1",
    )
    .await?;
    Ok(())
}

/// Runs pgbench and returns its transactions per second (excluding connection set-up).
///
/// # Errors
/// When pgbench fails or prints no `tps = ` line.
pub async fn pgbench(pgbench: &Path, args: &[String], url: &str) -> anyhow::Result<f64> {
    let out = tokio::process::Command::new(pgbench)
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot start pgbench")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "pgbench {} exited {:?}: {}",
            args.join(" "),
            out.status.code(),
            tail(&out.stderr, 600)
        );
    }
    // pgbench 15: "tps = 12345.678901 (without initial connection time)"
    stdout
        .lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("tps = ")?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .with_context(|| format!("no tps line in pgbench output: {}", tail(&out.stdout, 400)))
}

/// Median of a sample (see [`crate::rounds::median`]); kept here for parts written against the first layout.
#[allow(dead_code)]
pub fn median(xs: Vec<f64>) -> f64 {
    crate::rounds::median(&xs)
}
