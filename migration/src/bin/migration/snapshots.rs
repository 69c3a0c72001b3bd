//! The snapshot commands: `backup`, `backups`, `restore FILE --yes`, and the snapshot `up --backup` takes.
//! What they print and which exit code each outcome gets; the work is the library's (`migration::backup`).

use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use config::{DbConfig, DbTarget};
use migration::backup::{self, BackupOptions, Snapshot};
use migration::{BackupError, Migrator};

use crate::run::{EXIT_FAILED, EXIT_USAGE, Failure, confirm, connect_failure, describe_target};

fn failure(e: &BackupError) -> Failure {
    let code = if e.is_refusal() { EXIT_USAGE } else { EXIT_FAILED };
    Failure::new(code, e.to_string())
}

/// `12.3 MiB`.
fn size(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // a size shown to one decimal
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KiB", b / 1024.0)
    } else if bytes < 1024 * 1024 * 1024 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.2} GiB", b / 1024.0 / 1024.0 / 1024.0)
    }
}

/// The options from the configuration, with progress on a terminal (standard error), at most twice a second.
fn options(cfg: &DbConfig, lock_timeout: Duration) -> BackupOptions {
    let mut o = BackupOptions::from_config(&cfg.backup);
    o.lock_timeout = lock_timeout;
    if std::io::stderr().is_terminal() {
        let last = Mutex::new(Instant::now());
        o.progress = Some(Arc::new(move |bytes| {
            if let Ok(mut l) = last.lock()
                && l.elapsed() >= Duration::from_millis(500)
            {
                *l = Instant::now();
                eprint!("\rsnapshot: {} written   ", size(bytes));
            }
        }));
    }
    o
}

fn print_snapshot(s: &Snapshot, target: &str) {
    let m = &s.manifest;
    if std::io::stderr().is_terminal() {
        eprint!("\r{:40}\r", "");
    }
    println!(
        "backed up {target} at schema version {:03} to {}",
        m.schema_version.unwrap_or(0),
        s.file.display()
    );
    println!(
        "  {}, sha256 {}, {} ms, {}; manifest {}",
        size(m.size_bytes),
        m.sha256,
        m.duration_ms,
        m.tool,
        s.manifest_file.display()
    );
    for p in &s.pruned {
        println!("deleted older snapshot {} (DB_BACKUP_KEEP)", p.display());
    }
}

/// `migration backup`.
pub async fn backup(cfg: &DbConfig, lock_timeout: Duration) -> Result<(), Failure> {
    let db = config::connect(cfg).await.map_err(connect_failure)?;
    let result = backup::backup(&db, &cfg.target, &options(cfg, lock_timeout)).await;
    let _ = db.close().await;
    let s = result.map_err(|e| Failure::new(EXIT_FAILED, format!("backup failed: {e}")))?;
    print_snapshot(&s, &describe_target(&cfg.target));
    Ok(())
}

/// The snapshot `up --backup` (or `DB_BACKUP_BEFORE_MIGRATE`) takes: only when something is pending.
pub async fn before_up(
    cfg: &DbConfig,
    db: &sea_orm::DatabaseConnection,
    migrator: &Migrator,
    lock_timeout: Duration,
) -> Result<(), Failure> {
    match backup::backup_if_pending(db, &cfg.target, migrator, &options(cfg, lock_timeout)).await {
        Ok(Some(s)) => {
            print_snapshot(&s, &describe_target(&cfg.target));
            Ok(())
        }
        Ok(None) => {
            println!("nothing pending: no snapshot taken");
            Ok(())
        }
        Err(e) => Err(Failure::new(
            EXIT_FAILED,
            format!("the snapshot before migrating failed, so nothing was applied: {e}"),
        )),
    }
}

/// `migration backups`.
pub fn list(cfg: &DbConfig) -> Result<(), Failure> {
    let dir = &cfg.backup.dir;
    let listed = backup::list(dir).map_err(|e| failure(&e))?;
    if listed.is_empty() {
        println!("no snapshots in {} (DB_BACKUP_DIR)", dir.display());
        return Ok(());
    }
    let mut lines = vec![format!(
        "{:<44}  {:<8}  {:<16}  {:>7}  {:<24}  {:>10}",
        "FILE", "BACKEND", "DATABASE", "VERSION", "TAKEN AT", "SIZE"
    )];
    for l in &listed {
        match &l.manifest {
            Ok(m) => lines.push(format!(
                "{:<44}  {:<8}  {:<16}  {:>7}  {:<24}  {:>10}{}",
                m.file,
                m.backend,
                m.database,
                format!("{:03}", m.schema_version.unwrap_or(0)),
                m.created_at,
                size(m.size_bytes),
                if l.file_present { "" } else { "  (file missing)" }
            )),
            Err(e) => lines.push(format!("{}: {e}", l.manifest_file.display())),
        }
    }
    lines.push(format!("{} snapshot(s) in {}", listed.len(), dir.display()));
    println!("{}", lines.join("\n"));
    Ok(())
}

/// `migration restore FILE [--yes]`: the file is checked before anything is asked or changed.
pub async fn restore(cfg: &DbConfig, file: &Path, yes: bool, lock_timeout: Duration) -> Result<(), Failure> {
    let (_, m) = backup::verify(file).map_err(|e| failure(&e))?;
    let target = describe_target(&cfg.target);
    confirm(
        yes,
        &format!(
            "restore replaces everything in {target} with the snapshot {} (database {}, schema version {:03}, taken {})",
            file.display(),
            m.database,
            m.schema_version.unwrap_or(0),
            m.created_at
        ),
    )?;
    let db = match &cfg.target {
        DbTarget::Postgres(_) => Some(config::connect(cfg).await.map_err(connect_failure)?),
        _ => None,
    };
    let result = backup::restore(db.as_ref(), &cfg.target, file, lock_timeout).await;
    if let Some(db) = db {
        let _ = db.close().await;
    }
    let m = result.map_err(|e| {
        let mut f = failure(&e);
        if f.code == EXIT_FAILED {
            f.message = format!("restore failed: {}", f.message);
        }
        f
    })?;
    println!(
        "restored {target} from {} (schema version {:03}, taken {})",
        file.display(),
        m.schema_version.unwrap_or(0),
        m.created_at
    );
    Ok(())
}
