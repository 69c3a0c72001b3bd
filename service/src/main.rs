//! The `service` binary: reads the environment, starts the pool, auto-migrates, serves health and metrics.
//!
//! Exit codes: 0 after a clean shutdown (SIGTERM or SIGINT), 2 for invalid configuration, 1 for anything else.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use migration::config::AppConfig;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match AppConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("service: invalid configuration:");
            for p in e.problems() {
                eprintln!("  {p}");
            }
            return ExitCode::from(2);
        }
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("service: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: AppConfig) -> anyhow::Result<()> {
    let runner = Arc::new(service::Runner::new(config.db.clone()));
    let running = service::start(config, runner)
        .await
        .context("starting the service")?;
    println!("collex service listening on http://{}", running.addr());
    running
        .run_until(shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(())
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
