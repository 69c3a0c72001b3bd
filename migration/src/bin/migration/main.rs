//! The `migration` binary: `cargo run -p migration -- up|down|status|create|redo|fresh|reset|accept-checksum|
//! backup|backups|restore|database create|drop`.
//!
//! Owns the command line: arguments ([`args`]), running a command and deciding its exit code ([`run`]), and
//! what it prints ([`print`]), and the snapshot commands ([`snapshots`]). The work is the library's (`migration::Migrator`, `migration::schema`); the
//! configuration is the `config` crate's.
//!
//! Exit codes: 0 success, 1 a migration (or the database, or the lock wait) failed, 2 usage, configuration or
//! validation error, 3 `status --check` found something pending, modified, missing, failed or drifted.

mod args;
mod database;
mod print;
mod run;
mod snapshots;

use clap::Parser;

fn main() {
    // Argument errors exit with clap's code 2 (usage), as documented; --help and --version exit 0 here,
    // before anything is read or opened.
    let cli = args::Cli::parse();
    let code = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(run::run(cli)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            run::EXIT_FAILED
        }
    };
    std::process::exit(code);
}
