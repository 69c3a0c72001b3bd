//! The `service` binary: reads the environment, starts the pool, auto-migrates, serves health and metrics.
//!
//! Owns the process edges: `--help` / `--version` (answered before anything is read, opened or created), the
//! log output, the exit codes, and the signals that stop it. Everything else is the `service` library's; the
//! variables are the `config` crate's.
//!
//! Exit codes: 0 after a clean shutdown (SIGTERM or SIGINT, also when connections had to be dropped at the
//! shutdown deadline) or after `--help` / `--version`, 2 for invalid configuration or arguments, 1 when the
//! service cannot start (`SERVER_ADDR` taken) or anything else fails.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use config::vars::{self, Scope};
use config::{AppConfig, ConfigError, LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

fn after_help() -> String {
    format!(
        "{}\nThe database: DATABASE_URL when set; else the DB_* connection variables (setting any of them \
         selects PostgreSQL); else SQLite in ./collex.db.\n\nExit codes: 0 after SIGTERM or SIGINT, 2 invalid \
         configuration, 1 anything else (for example SERVER_ADDR taken).",
        vars::help(
            "Environment variables (name, default, meaning):",
            &[Scope::Database, Scope::Service]
        )
    )
}

/// The Collex database service: a pooled connection with statistics, migrations applied at start-up,
/// health endpoints and Prometheus metrics over HTTP. Configured by environment variables only.
#[derive(Debug, Parser)]
#[command(name = "service", version, after_help = after_help())]
struct Args {}

fn main() -> ExitCode {
    let Args {} = Args::parse();
    let configs = AppConfig::from_env().and_then(|app| Ok((app, LogConfig::from_env()?)));
    let (config, log) = match configs {
        Ok(c) => c,
        Err(e) => return invalid(&e),
    };
    init_logging(&log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("service: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

/// Logs to stderr, filtered by `RUST_LOG`, as text or one JSON object per line (`LOG_FORMAT`).
fn init_logging(log: &LogConfig) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&log.filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Json => builder.json().init(),
        // Colour codes only for a person at a terminal: log files and collectors get plain text.
        _ => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

fn invalid(e: &ConfigError) -> ExitCode {
    eprintln!("service: {e}");
    ExitCode::from(2)
}

async fn run(config: AppConfig) -> ExitCode {
    let runner = Arc::new(service::Runner::new(config.db.clone()));
    let running = match service::start(config, runner).await {
        Ok(r) => r,
        Err(e) => {
            // The message already says what failed, where, and what to do; its source would repeat it.
            eprintln!("service: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("collex service listening on http://{}", running.addr());
    match running.run_until(shutdown_signal()).await {
        Ok(stopped) => {
            tracing::info!(dropped = stopped.dropped, "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("service: serving HTTP failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
