//! `collex-bench`: the `make bench` harness. Measures the project against references run in the same process
//! lifetime (raw sqlx, pgbench, psql, a bare axum handler), prints the table and writes `bench/results.json`.
//!
//! `run` does the whole bench; `bare` is the reference HTTP server the service is compared with.

mod backup;
mod bare;
mod compare;
mod db;
mod migrations;
pub mod part;
mod reads;
mod report;
pub mod rounds;
mod scoped;
mod service;
mod timing;
mod tools;
mod updates;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::part::{Env, Part};
use crate::report::{Figure, Report};

/// Every part of the bench, in run order. A new part is a module with
/// `pub async fn run(env: &Env<'_>, report: &mut Report) -> anyhow::Result<()>` and one line here (see
/// `part.rs`); its name is what `--only`/`--skip` take and the group its figures carry.
#[rustfmt::skip] // One line per part.
const PARTS: &[Part] = &[
    part!("reads", reads::run, "find_by_id, list_by: entity repo vs raw sqlx (same SQL, pool) and pgbench"),
    part!("scoped", scoped::run, "a read in entity::Scoped (BEGIN, set_config, read, COMMIT) vs repo find_by_id"),
    part!("updates", updates::run, "versioned Repo::update under contention vs the raw UPDATE loop"),
    part!("migrations", migrations::run, "migration up vs one psql session; migration status vs psql -c"),
    part!("backup", backup::run, "migration backup (pg_dump -Fc streamed, hashed, manifest) vs plain pg_dump -Fc"),
    part!("service", service::run, "start-up, RSS, /live, /health/database under wrk vs bare axum"),
    part!("timing", timing::run, "entity repo find_by_id with query timing on vs off (issue 14: at most 1.03x)"),
];

/// The harness's command line.
#[derive(Parser, Debug)]
#[command(
    name = "collex-bench",
    about = "Speed and memory of collex-db against same-run references"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the benchmarks against fresh databases at TEST_DATABASE_URL.
    Run(RunArgs),
    /// Print the difference between two results.json files (figures matched by group, name and reference).
    Compare {
        /// The earlier results.json.
        before: PathBuf,
        /// The later results.json.
        #[arg(default_value = "bench/results.json")]
        after: PathBuf,
    },
    /// List the parts `--only` and `--skip` take.
    List,
    /// Serve the bare axum reference (`/live`, `/ready`, `/health/database`) on SERVER_ADDR.
    Bare,
}

/// Defaults of a full run: windows long enough and rounds enough that a 5 % difference shows outside the
/// spread on a quiet 2-core machine, the whole run about 10 minutes.
const SECONDS: f64 = 3.0;
const WARMUP: f64 = 0.5;
const ROUNDS: u32 = 5;
/// `--quick`: a smoke run (every part runs, nothing is worth comparing).
const QUICK_SECONDS: f64 = 0.3;
const QUICK_WARMUP: f64 = 0.1;
const QUICK_ROUNDS: u32 = 2;

/// Options of `run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Where the release `migration` and `service` binaries are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Where to write the machine-readable results.
    #[arg(long, default_value = "bench/results.json")]
    out: PathBuf,
    /// Where to write the Markdown table (for BENCHMARKS.md).
    #[arg(long, default_value = "bench/results.md")]
    markdown: PathBuf,
    /// Parts to run, comma-separated (default: all; `collex-bench list` names them).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Parts not to run, comma-separated.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Smoke run: 0.3 s windows, 2 rounds, fewer cases and files (also BENCH_QUICK=1). Explicit options win.
    #[arg(long, env = "BENCH_QUICK", value_parser = clap::builder::BoolishValueParser::new())]
    quick: bool,
    /// Seconds per measured window (reads, updates, HTTP load) [default: 3, quick: 0.3].
    #[arg(long, env = "BENCH_SECONDS")]
    seconds: Option<f64>,
    /// Seconds of warm-up before each window [default: 0.5, quick: 0.1].
    #[arg(long, env = "BENCH_WARMUP")]
    warmup: Option<f64>,
    /// Alternating rounds of every comparison; each figure is the median, with the min–max spread
    /// [default: 5, quick: 2].
    #[arg(long, env = "BENCH_ROUNDS")]
    rounds: Option<u32>,
    /// Read cases as TASKS:POOL (32 tasks on 8 connections is the 32-task investigation)
    /// [default: 1:1,8:8,32:32,32:8, quick: 1:1,8:8].
    #[arg(long, value_delimiter = ',')]
    read_cases: Vec<String>,
    /// Also time `psql -1 -f` as one process per file (about 35 s for 500 files; off by default).
    #[arg(long, env = "BENCH_PSQL_PER_FILE", value_parser = clap::builder::BoolishValueParser::new())]
    psql_per_file: bool,
    /// Number of generated migrations [default: 500, quick: 20].
    #[arg(long, env = "BENCH_MIGRATIONS")]
    migrations: Option<u32>,
    /// An earlier results.json: after the run, print each figure's difference with it (checked before the
    /// run starts).
    #[arg(long, env = "BENCH_COMPARE")]
    compare: Option<PathBuf>,
}

impl RunArgs {
    /// The measured window.
    pub fn window(&self) -> Duration {
        let d = if self.quick { QUICK_SECONDS } else { SECONDS };
        Duration::from_secs_f64(self.seconds.unwrap_or(d).max(0.05))
    }

    /// The window in whole seconds, at least 1 (for tools that take whole seconds: pgbench -T, wrk -d).
    pub fn whole_seconds(&self) -> u64 {
        self.window().as_secs_f64().ceil().max(1.0) as u64
    }

    /// The warm-up before each window.
    pub fn warmup(&self) -> Duration {
        let d = if self.quick { QUICK_WARMUP } else { WARMUP };
        Duration::from_secs_f64(self.warmup.unwrap_or(d).max(0.0))
    }

    /// Rounds per comparison, at least 1.
    pub fn rounds(&self) -> usize {
        let d = if self.quick { QUICK_ROUNDS } else { ROUNDS };
        self.rounds.unwrap_or(d).max(1) as usize
    }

    /// The read cases as `(tasks, pool size)`.
    ///
    /// # Errors
    /// A case that is not `TASKS:POOL` with positive integers.
    pub fn read_cases(&self) -> anyhow::Result<Vec<(usize, u32)>> {
        let given: Vec<&str> = if !self.read_cases.is_empty() {
            self.read_cases.iter().map(String::as_str).collect()
        } else if self.quick {
            vec!["1:1", "8:8"]
        } else {
            vec!["1:1", "8:8", "32:32", "32:8"]
        };
        given
            .into_iter()
            .map(|case| {
                case.split_once(':')
                    .and_then(|(t, p)| Some((t.trim().parse::<usize>().ok()?, p.trim().parse::<u32>().ok()?)))
                    .filter(|(t, p)| *t > 0 && *p > 0)
                    .with_context(|| {
                        format!("--read-cases: expected TASKS:POOL with positive integers, got {case:?}")
                    })
            })
            .collect()
    }

    /// Generated migrations.
    pub fn migrations(&self) -> u32 {
        self.migrations
            .unwrap_or(if self.quick { 20 } else { 500 })
            .max(1)
    }

    /// The parts to run, in registry order; an unknown name or a window that is not a positive number of
    /// seconds is an error naming what is expected.
    fn parts(&self) -> anyhow::Result<Vec<Part>> {
        if let Some(s) = self.seconds
            && !(s.is_finite() && s > 0.0 && s <= 3600.0)
        {
            bail!("--seconds/BENCH_SECONDS: expected seconds per window between 0 and 3600, got {s}");
        }
        self.read_cases()?;
        if let Some(s) = self.warmup
            && !(s.is_finite() && (0.0..=3600.0).contains(&s))
        {
            bail!("--warmup/BENCH_WARMUP: expected seconds of warm-up between 0 and 3600, got {s}");
        }
        let known: Vec<&str> = PARTS.iter().map(|p| p.name).collect();
        for name in self.only.iter().chain(&self.skip) {
            if !known.contains(&name.trim()) {
                bail!(
                    "unknown part {name:?} in --only/--skip; expected one of: {}",
                    known.join(", ")
                );
            }
        }
        Ok(PARTS
            .iter()
            .filter(|p| self.only.is_empty() || self.only.iter().any(|o| o.trim() == p.name))
            .filter(|p| !self.skip.iter().any(|o| o.trim() == p.name))
            .copied()
            .collect())
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Bare => bare::serve(),
        Command::List => {
            for p in PARTS {
                println!("{:<12} {}", p.name, p.about);
            }
            Ok(())
        }
        Command::Compare { before, after } => {
            let old = compare::load(&before)?;
            let new = compare::load(&after)?;
            print!(
                "{}",
                compare::render(&before, &old, &after.display().to_string(), &new)
            );
            Ok(())
        }
        Command::Run(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the tokio runtime")?;
            rt.block_on(run(args))
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    // Bad input fails before anything is touched.
    let parts = args.parts()?;
    let earlier = match &args.compare {
        Some(path) => Some((path.clone(), compare::load(path)?)),
        None => None,
    };
    let tools = tools::Tools::find();
    let dbs = db::Databases::connect().await?;
    let mut report = Report::new(&tools, &dbs, &args).await;
    eprintln!("collex-bench: PostgreSQL at {}", db::redact(&dbs.admin_url));
    eprintln!("collex-bench: {}", tools.summary());
    eprintln!(
        "collex-bench: {} rounds of {:.1} s windows (warm-up {:.1} s){}; parts: {}",
        args.rounds(),
        args.window().as_secs_f64(),
        args.warmup().as_secs_f64(),
        if args.quick { ", QUICK (smoke run)" } else { "" },
        parts.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
    );

    let env = Env::new(&args, &tools, &dbs);
    // A part that fails is reported (a MISSING figure saying why) and the others still run: one broken part
    // must not cost the whole run's figures. The run then exits non-zero.
    let mut failed = Vec::new();
    for part in &parts {
        eprintln!("collex-bench: part {}", part.name);
        let part_started = std::time::Instant::now();
        let result = (part.run)(&env, &mut report).await;
        report.part_took(part.name, part_started.elapsed());
        if let Err(e) = result {
            eprintln!("collex-bench: part {} failed: {e:#}", part.name);
            report.add(Figure::missing(part.name, "part failed", format!("{e:#}")));
            failed.push(part.name);
        }
    }
    let outcome = if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "part(s) failed: {} (see the MISSING figures)",
            failed.join(", ")
        ))
    };
    env.close().await;
    dbs.drop_all().await;
    // The generated migrations, pgbench script and server logs: kept when the run failed, for the post-mortem.
    let work = work_dir();
    if outcome.is_ok() && std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!(
            "collex-bench: kept {} (generated files and server logs)",
            work.display()
        );
    }
    report.finish(started.elapsed());
    report.print();
    report.write(&args.out, &args.markdown)?;
    eprintln!(
        "collex-bench: wrote {} and {} in {:.0} s",
        args.out.display(),
        args.markdown.display(),
        started.elapsed().as_secs_f64()
    );
    if let Some((path, old)) = earlier {
        let new = compare::load(&args.out)?;
        print!("{}", compare::render(&path, &old, "this run", &new));
    }
    outcome
}

/// Scratch directory of this run: generated migrations, the pgbench script, server logs.
pub fn work_dir() -> PathBuf {
    std::env::temp_dir().join(format!("collex-bench-{}", std::process::id()))
}
