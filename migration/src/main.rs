//! The `migration` binary: `cargo run -p migration -- up|down|status|create|redo|fresh|reset|accept-checksum`.
//!
//! Exit codes: 0 success, 1 a migration failed, 2 usage, configuration or validation error, 3 `status --check`
//! found something pending, modified or drifted.

use clap::Parser;

fn main() {
    // Argument errors exit with clap's code 2 (usage), as documented.
    let cli = migration::cli::Cli::parse();
    let code = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(migration::cli::run(cli)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            migration::error::EXIT_FAILED
        }
    };
    std::process::exit(code);
}
