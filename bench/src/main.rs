//! `collex-bench`: the `make bench` harness. Measures the project against references run in the same process
//! lifetime (raw sqlx, pgbench, psql, a bare axum handler), prints the table and writes `bench/results.json`.
//!
//! `run` does the whole bench; `bare` is the reference HTTP server the service is compared with.

mod bare;
mod db;
mod migrations;
mod reads;
mod report;
mod service;
mod tools;
mod updates;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::report::Report;

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
    /// Serve the bare axum reference (`/live`, `/ready`, `/health/database`) on SERVER_ADDR.
    Bare,
}

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
    /// Which parts to run, comma-separated: reads, updates, migrations, service.
    #[arg(
        long,
        default_value = "reads,updates,migrations,service",
        value_delimiter = ','
    )]
    only: Vec<String>,
    /// Seconds per measured window (reads, updates, HTTP load).
    #[arg(long, env = "BENCH_SECONDS", default_value_t = 2)]
    seconds: u64,
    /// Rounds of the read benchmark; the paths alternate within each round.
    #[arg(long, env = "BENCH_ROUNDS", default_value_t = 3)]
    rounds: u32,
    /// Read cases as TASKS:POOL (the last one, 32 tasks on 8 connections, is the 32-task investigation).
    #[arg(long, default_value = "1:1,8:8,32:32,32:8", value_delimiter = ',')]
    read_cases: Vec<String>,
    /// Also time `psql -1 -f` as one process per file (about 35 s for 500 files; off by default).
    #[arg(long, env = "BENCH_PSQL_PER_FILE")]
    psql_per_file: bool,
    /// Number of generated migrations.
    #[arg(long, env = "BENCH_MIGRATIONS", default_value_t = 500)]
    migrations: u32,
}

impl RunArgs {
    fn window(&self) -> Duration {
        Duration::from_secs(self.seconds.max(1))
    }

    fn wants(&self, part: &str) -> bool {
        self.only.iter().any(|p| p.trim() == part)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Bare => bare::serve(),
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
    let tools = tools::Tools::find();
    let dbs = db::Databases::connect().await?;
    let mut report = Report::new(&tools, &dbs).await;
    eprintln!("collex-bench: PostgreSQL at {}", db::redact(&dbs.admin_url));
    eprintln!("collex-bench: {}", tools.summary());

    let outcome = run_parts(&args, &tools, &dbs, &mut report).await;
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
    if let Err(e) = &outcome {
        report.note(format!("bench aborted: {e:#}"));
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
    outcome
}

/// Scratch directory of this run: generated migrations, the pgbench script, server logs.
pub fn work_dir() -> PathBuf {
    std::env::temp_dir().join(format!("collex-bench-{}", std::process::id()))
}

async fn run_parts(
    args: &RunArgs,
    tools: &tools::Tools,
    dbs: &db::Databases,
    report: &mut Report,
) -> anyhow::Result<()> {
    if args.wants("reads") || args.wants("updates") {
        let data = db::prepare_data(dbs, &args.bin_dir, report).await?;
        if args.wants("reads") {
            reads::run(args, tools, &data, report).await?;
        }
        if args.wants("updates") {
            updates::run(args, &data, report).await?;
        }
        data.db.clone().close().await.ok();
    }
    if args.wants("migrations") {
        migrations::run(args, tools, dbs, report).await?;
    }
    if args.wants("service") {
        service::run(args, tools, dbs, report).await?;
    }
    Ok(())
}
