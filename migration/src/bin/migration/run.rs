//! Running a parsed command: the configuration, the confirmation of destructive commands, the connection, the
//! library call, and the exit code each outcome gets (decided here and nowhere else).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use config::{DbConfig, DbTarget};
use migration::{DownTarget, MigrateError, MigrationSet, Migrator, Options, SchemaError};

use crate::args::{Cli, Command};
use crate::print;

/// A migration, the database or the lock wait failed.
pub const EXIT_FAILED: i32 = 1;
/// Usage, configuration or validation error: nothing was changed.
pub const EXIT_USAGE: i32 = 2;
/// `status --check` found something pending, modified, missing, failed or drifted.
pub const EXIT_CHECK: i32 = 3;

/// A failure with its exit code and what to print.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// 1 when something failed while running, 2 when the input was refused before anything changed.
fn migrate_code(e: &MigrateError) -> i32 {
    match e {
        MigrateError::Failed { .. } | MigrateError::Database { .. } | MigrateError::LockTimeout { .. } => {
            EXIT_FAILED
        }
        _ => EXIT_USAGE,
    }
}

fn schema_code(e: &SchemaError) -> i32 {
    match e {
        SchemaError::Migrate(m) => migrate_code(m),
        SchemaError::Database { .. } | SchemaError::Shadow { .. } => EXIT_FAILED,
        _ => EXIT_USAGE,
    }
}

impl From<MigrateError> for Failure {
    fn from(e: MigrateError) -> Self {
        Self::new(migrate_code(&e), e.to_string())
    }
}

impl From<SchemaError> for Failure {
    fn from(e: SchemaError) -> Self {
        Self::new(schema_code(&e), e.to_string())
    }
}

pub fn connect_failure(e: impl std::fmt::Display) -> Failure {
    Failure::new(EXIT_FAILED, format!("cannot connect to the database: {e}"))
}

/// Runs the parsed command with configuration from the environment; returns the exit code.
pub async fn run(cli: Cli) -> i32 {
    // Migrations and their lock take a direct connection: DB_MIGRATION_URL when the app's URL is a pooler's.
    let cfg = match DbConfig::from_env() {
        Ok(c) => c.for_migrations(),
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
    match run_with(cli, &cfg).await {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("error: {}", f.message);
            f.code
        }
    }
}

async fn run_with(cli: Cli, cfg: &DbConfig) -> Result<(), Failure> {
    let dir = cli.path.clone().unwrap_or_else(|| cfg.migrate_path.clone());
    match &cli.command {
        Command::Create {
            description,
            from_entities: true,
        } => return create_from_entities(&dir, description, cfg).await,
        Command::Create { description, .. } => {
            let (forward, rollback) = migration::create(&dir, description)?;
            println!("created {}", forward.display());
            println!("created {}", rollback.display());
            return Ok(());
        }
        Command::CitusPlan => {
            print!("{}", migration::schema::citus::plan(&entity::registry::all())?);
            return Ok(());
        }
        Command::Lint { json } => return lint(&dir, cfg, *json).await,
        Command::Fresh { yes, .. } => confirm(
            *yes,
            &format!(
                "fresh drops every table, view, sequence, type and function in {}, then applies every migration",
                describe_target(&cfg.target)
            ),
        )?,
        Command::Reset { yes, .. } => confirm(
            *yes,
            &format!(
                "reset rolls back every applied migration of {}",
                describe_target(&cfg.target)
            ),
        )?,
        Command::Backup { .. } => return crate::snapshots::backup(cfg, cli.lock_timeout()).await,
        Command::Backups => return crate::snapshots::list(cfg),
        Command::Database { action } => return crate::database::run(cfg, *action).await,
        Command::Restore { file, yes, .. } => {
            return crate::snapshots::restore(cfg, file, *yes, cli.lock_timeout()).await;
        }
        _ => {}
    }

    let mut options = Options::default().lock_timeout(cli.lock_timeout());
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
    let backend = match &cfg.target {
        DbTarget::Postgres(_) => sea_orm::DbBackend::Postgres,
        _ => sea_orm::DbBackend::Sqlite,
    };
    let (set, db) = match &cfg.target {
        DbTarget::Postgres(_) => {
            let connecting = tokio::spawn({
                let cfg = cfg.clone();
                async move { config::connect(&cfg).await }
            });
            let loading = tokio::task::spawn_blocking({
                let dir = dir.clone();
                move || MigrationSet::load_for(&dir, migration::rust_migrations(), backend)
            });
            let set = match loading.await {
                Ok(Ok(set)) => set,
                Ok(Err(e)) => {
                    connecting.abort();
                    return Err(e.into());
                }
                Err(e) => {
                    connecting.abort();
                    return Err(Failure::new(
                        EXIT_FAILED,
                        format!("reading the migration files failed: {e}"),
                    ));
                }
            };
            let db = match connecting.await {
                Ok(r) => r.map_err(connect_failure)?,
                Err(e) => return Err(connect_failure(e)),
            };
            (set, db)
        }
        _ => {
            let set = MigrationSet::load_for(&dir, migration::rust_migrations(), backend)?;
            // `status` only reads: it opens SQLite read-only and never creates a missing file.
            let db = if matches!(cli.command, Command::Status { .. }) {
                config::connect_read_only(cfg).await.map_err(|e| match e {
                    config::ConnectError::NoSqliteFile { .. } => Failure::new(EXIT_USAGE, e.to_string()),
                    e => connect_failure(e),
                })?
            } else {
                config::connect(cfg).await.map_err(connect_failure)?
            };
            (set, db)
        }
    };
    let migrator = Migrator::new(set)
        .with_options(options)
        .with_reporter(Arc::new(print::event));

    let result = dispatch(&cli, cfg, &migrator, &db, &dir).await;
    let _ = db.close().await;
    result
}

async fn dispatch(
    cli: &Cli,
    cfg: &DbConfig,
    migrator: &Migrator,
    db: &sea_orm::DatabaseConnection,
    dir: &Path,
) -> Result<(), Failure> {
    match &cli.command {
        Command::Up { n, dry_run: true, .. } => {
            print!("{}", migrator.dry_run_up(db, *n).await?);
        }
        Command::Up { n, backup, .. } => {
            if *backup || cfg.backup.before_migrate {
                crate::snapshots::before_up(cfg, db, migrator, cli.lock_timeout()).await?;
            }
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
            ..
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
            // The files were read once already: their hand-written objects come from that read.
            let known = match migrator.set().files_read() {
                Some(files) => migration::known_from(files),
                None => migration::schema::check::known_objects(dir),
            };
            let drift = migration::drift_with(db, &known, &entity::registry::all()).await?;
            print::status(&report, &drift, *json);
            if *check && (report.pending > 0 || report.problems > 0 || !drift.is_empty()) {
                return Err(Failure::new(
                    EXIT_CHECK,
                    format!(
                        "status --check: {} pending, {} with problems, {} schema difference(s)",
                        report.pending,
                        report.problems,
                        drift.lines().len()
                    ),
                ));
            }
        }
        Command::Redo { .. } => {
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
        Command::AcceptChecksum { version, .. } => {
            migrator.accept_checksum(db, *version).await?;
            println!("accepted the current checksum of migration {version:03}");
        }
        Command::Create { .. }
        | Command::Backup { .. }
        | Command::Backups
        | Command::Restore { .. }
        | Command::CitusPlan
        | Command::Lint { .. }
        | Command::Database { .. } => {}
    }
    Ok(())
}

/// `lint`: the database's tables judged for distribution by business_id. Tables the hand-written migrations
/// create (and the history table) are listed as not judged: their distribution is decided by hand.
async fn lint(dir: &Path, cfg: &DbConfig, json: bool) -> Result<(), Failure> {
    let db = config::connect(cfg).await.map_err(connect_failure)?;
    let read = migration::schema::introspect::read(&db).await;
    let _ = db.close().await;
    let schema = read?;
    let known = migration::schema::check::known_objects(dir);
    let skip: Vec<String> = known.tables.into_iter().collect();
    let r = migration::schema::citus::readiness(&schema, &entity::registry::all(), &skip);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).map_err(|e| Failure::new(EXIT_FAILED, e.to_string()))?
        );
    } else {
        println!("distributed by business_id: {}", r.distributed.join(", "));
        println!("reference tables: {}", r.reference.join(", "));
        if !r.skipped.is_empty() {
            println!("not judged (hand-written or history): {}", r.skipped.join(", "));
        }
        for g in &r.global_unique {
            println!("global unique: {}", g.advice());
        }
        for p in &r.problems {
            println!("problem: {}: {}", p.table, p.message);
        }
    }
    if r.is_ready() {
        if !json {
            println!(
                "ready: every distributed table has business_id in its primary, unique and foreign keys"
            );
        }
        Ok(())
    } else {
        Err(Failure::new(
            EXIT_CHECK,
            format!(
                "lint: {} problem(s) would stop Citus from distributing by business_id",
                r.problems.len()
            ),
        ))
    }
}

/// `create --from-entities`: the shadow replay needs a PostgreSQL connection only when PostgreSQL is
/// configured (the SQLite shadow lives in memory).
async fn create_from_entities(dir: &Path, description: &str, cfg: &DbConfig) -> Result<(), Failure> {
    let pg = match &cfg.target {
        DbTarget::Postgres(_) => Some(config::connect(cfg).await.map_err(connect_failure)?),
        _ => None,
    };
    let result = migration::schema::from_entities::create_from_entities(
        dir,
        description,
        &entity::registry::all(),
        pg.as_ref(),
    )
    .await;
    if let Some(db) = pg {
        let _ = db.close().await;
    }
    match result? {
        None => println!(
            "nothing differs: the migrations already create what the entities declare; no file written"
        ),
        Some(generated) => {
            for (dialect, changes) in &generated.changes {
                for c in changes {
                    println!("{}: {}", dialect.as_str(), c.describe());
                }
            }
            for f in &generated.files {
                println!("created {}", f.display());
            }
        }
    }
    Ok(())
}

/// The database a destructive command would change, as its confirmation names it: database, host, port and
/// user on PostgreSQL, the file on SQLite (never a password).
pub fn describe_target(target: &DbTarget) -> String {
    match target {
        DbTarget::Postgres(t) => format!(
            "database \"{}\" on {}:{} (user {})",
            t.database, t.host, t.port, t.user
        ),
        other => format!("the SQLite database {other}"),
    }
}

pub fn confirm(yes: bool, what: &str) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::new(
            EXIT_USAGE,
            format!("{what}: pass --yes to confirm (not asking: standard input is not a terminal)"),
        ));
    }
    eprint!("{what}. Type `yes` to continue: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = stdin.lock().read_line(&mut answer);
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Failure::new(EXIT_USAGE, "aborted: nothing was changed"))
    }
}
