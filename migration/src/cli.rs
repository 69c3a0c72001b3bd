//! The `migration` command line: argument parsing, confirmation of destructive commands, `create`, and
//! printing (progress and errors). The work itself is the [`Migrator`]'s.
//!
//! Exit codes: 0 success, 1 a migration (or the database) failed, 2 usage, configuration or validation error,
//! 3 `status --check` found something pending, modified, missing, failed or drifted.
//! New commands or flags (for example `create --from-entities`, or drift checks in `status`) are added to
//! [`Command`] and dispatched in [`run`]; `status` output is built from a [`StatusReport`] in
//! [`print_status`].

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::DbConfig;
use crate::error::{EXIT_FAILED, EXIT_USAGE, MigrateError};
use crate::schema::diff::Drift;

/// Exit code of `status --check` when something is pending, has a problem, or the schema drifted.
pub const EXIT_CHECK: i32 = 3;
use crate::migrator::{Direction, DownTarget, Event, Migrator, Options, State, StatusReport};
use crate::schema::from_entities::{next_version, slug, title, write_new};
use crate::source::MigrationSet;

/// Runs Collex database migrations.
#[derive(Debug, Parser)]
#[command(name = "migration", version, about)]
pub struct Cli {
    /// Migrations directory [default: DB_MIGRATE_PATH, else `migrations`].
    #[arg(long, global = true, value_name = "DIR")]
    pub path: Option<PathBuf>,

    /// How long to wait for another runner's migration lock (e.g. `30s`, `2m`).
    #[arg(long, global = true, default_value = "60s", value_parser = humantime::parse_duration)]
    pub lock_timeout: Duration,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Apply pending migrations in version order.
    Up {
        /// Apply at most N migrations.
        #[arg(short = 'n', long = "steps", value_name = "N")]
        n: Option<usize>,
        /// Print the SQL that would run, in order, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Continue although applied migrations have no file any more.
        #[arg(long)]
        ignore_missing: bool,
        /// Re-run a no-transaction migration recorded as failed (after repairing the database by hand).
        #[arg(long)]
        retry_failed: bool,
    },
    /// Roll back applied migrations, newest first (default: the latest one).
    Down {
        /// Roll back the latest N migrations.
        #[arg(short = 'n', long = "steps", value_name = "N", conflicts_with_all = ["to", "through"])]
        n: Option<usize>,
        /// Roll back everything applied above VERSION (VERSION itself stays; 0 rolls back everything).
        #[arg(long, value_name = "VERSION", conflicts_with = "through")]
        to: Option<u64>,
        /// Roll back VERSION and everything applied above it.
        #[arg(long, value_name = "VERSION")]
        through: Option<u64>,
        /// Print the SQL that would run, in order, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show every migration: applied or pending, when, how long, and problems, and whether the schema
    /// matches the entities (drift). Never writes.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Exit with code 3 when anything is pending, modified, missing, failed or drifted (for CI).
        #[arg(long)]
        check: bool,
    },
    /// Create the next NNN_<description>.sql and NNN_rollback.sql with the header.
    Create {
        /// What the migration does, e.g. "add user preferences table".
        description: String,
        /// Write the difference between the entities and the replayed migrations instead of an empty
        /// template, as `.postgres.sql` and `.sqlite.sql` variants; writes nothing when nothing differs.
        #[arg(long)]
        from_entities: bool,
    },
    /// Roll back the latest migration and apply it again.
    Redo,
    /// Drop every object in the schema, then apply every migration (destructive).
    Fresh {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Roll back every applied migration (destructive).
    Reset {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Accept the current checksum of an applied migration whose file was deliberately edited.
    AcceptChecksum {
        /// The migration's version.
        version: u64,
    },
}

/// A failure of the CLI with its exit code.
#[derive(Debug)]
struct Failure {
    code: i32,
    message: String,
}

impl From<crate::schema::SchemaError> for Failure {
    fn from(e: crate::schema::SchemaError) -> Self {
        Self {
            code: e.exit_code(),
            message: e.to_string(),
        }
    }
}

impl From<MigrateError> for Failure {
    fn from(e: MigrateError) -> Self {
        Self {
            code: e.exit_code(),
            message: e.to_string(),
        }
    }
}

/// Runs the parsed command with configuration from the environment; returns the exit code.
pub async fn run(cli: Cli) -> i32 {
    let cfg = match DbConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    match run_with(cli, &cfg).await {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("error: {}", redact(&f.message, &cfg));
            f.code
        }
    }
}

async fn run_with(cli: Cli, cfg: &DbConfig) -> Result<(), Failure> {
    let dir = cli.path.clone().unwrap_or_else(|| cfg.migrate_path.clone());
    if let Command::Create {
        description,
        from_entities: true,
    } = &cli.command
    {
        return create_from_entities(&dir, description, cfg).await;
    }
    if let Command::Create { description, .. } = &cli.command {
        let (forward, rollback) = create(&dir, description)?;
        println!("created {}", forward.display());
        println!("created {}", rollback.display());
        return Ok(());
    }
    if let Command::Fresh { yes } | Command::Reset { yes } = &cli.command {
        let what = if matches!(cli.command, Command::Fresh { .. }) {
            "fresh drops every table, view, sequence, type and function in the schema, then applies every migration"
        } else {
            "reset rolls back every applied migration"
        };
        confirm(*yes, what)?;
    }

    let mut options = Options::default().lock_timeout(cli.lock_timeout);
    if let Command::Up {
        ignore_missing,
        retry_failed,
        ..
    } = &cli.command
    {
        options = options
            .ignore_missing(*ignore_missing)
            .retry_failed(*retry_failed);
    }
    // Validate every file before touching the database. On PostgreSQL the connection is opened meanwhile
    // (opening one changes nothing, and the server's start-up of a session overlaps reading the files); it is
    // dropped unused when validation fails. SQLite connects afterwards: connecting creates a missing file.
    let connect_err = |e: sea_orm::DbErr| Failure {
        code: EXIT_FAILED,
        message: format!("cannot connect to the database: {e}"),
    };
    let (set, db) = match &cfg.target {
        crate::config::DbTarget::Postgres(_) => {
            let connecting = tokio::spawn({
                let cfg = cfg.clone();
                async move { crate::db::connect(&cfg).await }
            });
            let loading = tokio::task::spawn_blocking({
                let dir = dir.clone();
                let backend = backend(cfg);
                move || MigrationSet::load_for(&dir, crate::rust_migrations(), backend)
            });
            let set = match loading.await {
                Ok(Ok(set)) => set,
                Ok(Err(e)) => {
                    connecting.abort();
                    return Err(e.into());
                }
                Err(e) => {
                    connecting.abort();
                    return Err(Failure {
                        code: EXIT_FAILED,
                        message: format!("reading the migration files failed: {e}"),
                    });
                }
            };
            let db = match connecting.await {
                Ok(r) => r.map_err(connect_err)?,
                Err(e) => {
                    return Err(Failure {
                        code: EXIT_FAILED,
                        message: format!("cannot connect to the database: {e}"),
                    });
                }
            };
            (set, db)
        }
        crate::config::DbTarget::Sqlite(_) => {
            let set = MigrationSet::load_for(&dir, crate::rust_migrations(), backend(cfg))?;
            (set, crate::db::connect(cfg).await.map_err(connect_err)?)
        }
    };
    let migrator = Migrator::new(set)
        .with_options(options)
        .with_reporter(Arc::new(print_event));

    let result = dispatch(&cli.command, &migrator, &db, &dir).await;
    let _ = db.close().await;
    result
}

async fn dispatch(
    command: &Command,
    migrator: &Migrator,
    db: &sea_orm::DatabaseConnection,
    dir: &Path,
) -> Result<(), Failure> {
    match command {
        Command::Up { n, dry_run: true, .. } => {
            print!("{}", migrator.dry_run_up(db, *n).await?);
        }
        Command::Up { n, .. } => {
            let report = migrator.up(db, *n).await?;
            if report.steps.is_empty() {
                println!("nothing to apply: the database is up to date");
            } else {
                println!("applied {} migration(s)", report.steps.len());
            }
        }
        Command::Down {
            n,
            to,
            through,
            dry_run,
        } => {
            let target = match (n, to, through) {
                (_, Some(v), _) => DownTarget::To(*v),
                (_, _, Some(v)) => DownTarget::Through(*v),
                (Some(n), _, _) => DownTarget::Steps(*n),
                _ => DownTarget::Steps(1),
            };
            if *dry_run {
                print!("{}", migrator.dry_run_down(db, target).await?);
            } else {
                let report = migrator.down(db, target).await?;
                if report.steps.is_empty() {
                    println!("nothing to roll back");
                } else {
                    println!("rolled back {} migration(s)", report.steps.len());
                }
            }
        }
        Command::Status { json, check } => {
            let report = migrator.status(db).await?;
            // The files were read once already: their hand-written objects came with them.
            let known = match migrator.set().hand_written_objects() {
                Some(k) => std::borrow::Cow::Borrowed(k),
                None => std::borrow::Cow::Owned(crate::schema::check::known_objects(dir)),
            };
            let drift = crate::schema::check::drift_with(db, &known, &entity::registry::all()).await?;
            print_status_with_drift(&report, Some(&drift), *json);
            if *check && (report.pending > 0 || report.problems > 0 || !drift.is_empty()) {
                return Err(Failure {
                    code: EXIT_CHECK,
                    message: format!(
                        "status --check: {} pending, {} with problems, {} schema difference(s)",
                        report.pending,
                        report.problems,
                        drift.lines().len()
                    ),
                });
            }
        }
        Command::Redo => {
            let report = migrator.redo(db).await?;
            if report.steps.is_empty() {
                println!("nothing to redo: no migration is applied");
            }
        }
        Command::Fresh { .. } => {
            let report = migrator.fresh(db).await?;
            println!("applied {} migration(s)", report.steps.len());
        }
        Command::Reset { .. } => {
            let report = migrator.reset(db).await?;
            println!("rolled back {} migration(s)", report.steps.len());
        }
        Command::AcceptChecksum { version } => {
            migrator.accept_checksum(db, *version).await?;
            println!("accepted the current checksum of migration {version:03}");
        }
        Command::Create { .. } => {}
    }
    Ok(())
}

fn print_event(event: &Event<'_>) {
    match event {
        Event::WaitingForLock(w) => eprintln!(
            "waiting for the migration lock{}, for up to {}",
            w.holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default(),
            humantime::format_duration(w.timeout)
        ),
        Event::LockAcquired { waited } => eprintln!(
            "got the migration lock after {}; re-reading the history",
            humantime::format_duration(Duration::from_millis(
                u64::try_from(waited.as_millis()).unwrap_or(u64::MAX)
            ))
        ),
        Event::Plan { direction, steps } => {
            // One write for the whole plan (hundreds of lines).
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let head = match direction {
                Direction::Up => format!("applying {} migration(s):", steps.len()),
                Direction::Down => format!("rolling back {} migration(s), newest first:", steps.len()),
            };
            let _ = writeln!(out, "{head}");
            for (v, label) in *steps {
                let _ = writeln!(out, "  {v:03}  {label}");
            }
            let _ = out.flush();
        }
        Event::Done {
            direction,
            label,
            elapsed,
            ..
        } => {
            let verb = match direction {
                Direction::Up => "applied",
                Direction::Down => "rolled back",
            };
            println!("{verb} {label} ({} ms)", elapsed.as_millis());
        }
        Event::Dropped => println!("dropped every object in the schema"),
    }
}

/// Prints `status` as a table or as JSON.
pub fn print_status(report: &StatusReport, json: bool) {
    print_status_with_drift(report, None, json);
}

/// Prints `status` with the schema drift (JSON: a `drift` object next to the migrations).
pub fn print_status_with_drift(report: &StatusReport, drift: Option<&Drift>, json: bool) {
    // One write for the whole table, not one per line (hundreds of migrations).
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        let mut value = serde_json::to_value(report).unwrap_or_default();
        if let (Some(d), Some(map)) = (drift, value.as_object_mut()) {
            let mut dv = serde_json::to_value(d).unwrap_or_default();
            if let Some(m) = dv.as_object_mut() {
                m.insert("clean".to_owned(), serde_json::Value::Bool(d.is_empty()));
            }
            map.insert("drift".to_owned(), dv);
        }
        let text = serde_json::to_string_pretty(&value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
        return;
    }
    let name_w = report
        .migrations
        .iter()
        .map(|m| m.file.as_deref().unwrap_or(&m.name).len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "{:<7}  {:<name_w$}  {:<7}  {:<24}  {:>9}  PROBLEMS",
        "VERSION", "FILE", "STATE", "APPLIED AT", "DURATION"
    );
    for m in &report.migrations {
        let state = match m.state {
            State::Applied => "applied",
            State::Pending => "pending",
        };
        let problems: Vec<&str> = m.problems.iter().map(|p| p.as_str()).collect();
        let _ = writeln!(
            out,
            "{:<7}  {:<name_w$}  {:<7}  {:<24}  {:>9}  {}",
            format!("{:03}", m.version),
            m.file.as_deref().unwrap_or(&m.name),
            state,
            m.applied_at.as_deref().unwrap_or("-"),
            m.execution_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms")),
            problems.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "{} applied, {} pending, {} with problems",
        report.applied, report.pending, report.problems
    );
    if let Some(d) = drift {
        let lines = d.lines();
        if lines.is_empty() {
            let _ = writeln!(out, "schema: matches the entities");
        } else {
            let _ = writeln!(
                out,
                "schema drift ({} difference(s) from the entities):",
                lines.len()
            );
            for l in lines {
                let _ = writeln!(out, "  {l}");
            }
        }
    }
    let _ = out.flush();
}

/// `create --from-entities`: the shadow replay needs a PostgreSQL connection only when PostgreSQL is
/// configured (the SQLite shadow lives in memory).
async fn create_from_entities(dir: &Path, description: &str, cfg: &DbConfig) -> Result<(), Failure> {
    let pg = match &cfg.target {
        crate::config::DbTarget::Postgres(_) => Some(crate::db::connect(cfg).await.map_err(|e| Failure {
            code: EXIT_FAILED,
            message: format!("cannot connect to the database: {e}"),
        })?),
        crate::config::DbTarget::Sqlite(_) => None,
    };
    let result = crate::schema::from_entities::create_from_entities(
        dir,
        description,
        &entity::registry::all(),
        pg.as_ref(),
    )
    .await;
    if let Some(db) = pg {
        let _ = db.close().await;
    }
    match result {
        Ok(None) => {
            println!(
                "nothing differs: the migrations already create what the entities declare; no file written"
            );
            Ok(())
        }
        Ok(Some(generated)) => {
            for (dialect, changes) in &generated.changes {
                for c in changes {
                    println!("{}: {}", dialect.as_str(), c.describe());
                }
            }
            for f in &generated.files {
                println!("created {}", f.display());
            }
            Ok(())
        }
        Err(e) => Err(Failure {
            code: e.exit_code(),
            message: e.to_string(),
        }),
    }
}

fn confirm(yes: bool, what: &str) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure {
            code: EXIT_USAGE,
            message: format!("{what}: pass --yes to confirm (not asking: standard input is not a terminal)"),
        });
    }
    eprint!("{what}. Type `yes` to continue: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = stdin.lock().read_line(&mut answer);
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Failure {
            code: EXIT_USAGE,
            message: "aborted: nothing was changed".to_owned(),
        })
    }
}

/// Writes the next `NNN_<slug>.sql` and `NNN_rollback.sql` into `dir` (created if needed); returns their paths.
///
/// # Errors
/// [`MigrateError::Usage`] for a description without letters or digits; [`MigrateError::Write`] when a file
/// cannot be written (an existing file is never overwritten).
pub fn create(dir: &Path, description: &str) -> Result<(PathBuf, PathBuf), MigrateError> {
    let slug = slug(description);
    if slug.is_empty() {
        return Err(MigrateError::Usage(format!(
            "description {description:?} has no letters or digits: expected something like \"add user preferences table\""
        )));
    }
    std::fs::create_dir_all(dir).map_err(|source| MigrateError::Write {
        file: dir.to_owned(),
        source,
    })?;
    let (version, digits) = next_version(dir);
    let nnn = format!("{version:0digits$}");
    let title = title(description);
    let description = description.trim();
    let created = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let forward = dir.join(format!("{nnn}_{slug}.sql"));
    let rollback = dir.join(format!("{nnn}_rollback.sql"));
    let forward_text = format!(
        "-- Migration: {title}\n-- Version: {nnn}\n-- Description: {description}\n-- Created: {created}\n\n\
         -- Add your migration SQL here\n"
    );
    let rollback_text = format!(
        "-- Rollback Migration: {title}\n-- Version: {nnn}\n-- Description: Rollback {description}\n-- Created: {created}\n\n\
         -- Add the SQL that undoes {nnn}_{slug}.sql here, newest object first\n"
    );
    write_new(&forward, &forward_text)?;
    if let Err(e) = write_new(&rollback, &rollback_text) {
        let _ = std::fs::remove_file(&forward);
        return Err(e);
    }
    Ok((forward, rollback))
}

/// The backend the configuration points at (known before connecting, so files are validated first).
fn backend(cfg: &DbConfig) -> sea_orm::DbBackend {
    match &cfg.target {
        crate::config::DbTarget::Postgres(_) => sea_orm::DbBackend::Postgres,
        crate::config::DbTarget::Sqlite(_) => sea_orm::DbBackend::Sqlite,
    }
}

/// Replaces the configured password wherever it appears in `message` (belt and braces: connect options are
/// built from parts, so drivers should never see a URL carrying it).
fn redact(message: &str, cfg: &DbConfig) -> String {
    match &cfg.target {
        crate::config::DbTarget::Postgres(t) => match t.password_secret() {
            Some(p) if !p.is_empty() => message.replace(p, "***"),
            _ => message.to_owned(),
        },
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lower_snake_case() {
        assert_eq!(
            slug("  Add user-preferences table! "),
            "add_user_preferences_table"
        );
        assert_eq!(slug("!!"), "");
    }

    #[test]
    fn passwords_are_redacted() {
        let cfg = DbConfig::try_from_url("postgres://u:s3cret@h/db").expect("valid url");
        assert_eq!(redact("failed: s3cret", &cfg), "failed: ***");
    }
}
