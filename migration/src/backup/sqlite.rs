//! SQLite snapshots: `VACUUM INTO` a new file (a consistent copy written by SQLite itself, without the
//! free pages), restored by swapping the database file.
//!
//! Restoring replaces the file, so no connection may be open meanwhile (the CLI opens none for `restore`).
//! The copy is written beside the database first and renamed over it (a rename within a directory is
//! atomic); the old file's `-wal` and `-shm` are removed before, because SQLite would otherwise replay the
//! old database's journal onto the restored file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use config::SqliteTarget;
use sea_orm::DatabaseConnection;
use sea_orm::sqlx::{self, AssertSqlSafe, Row};

use super::manifest::{FORMAT, Manifest, hash_file, new_name};
use super::{BackupError, BackupOptions, schema_version};
use crate::backend;

fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

pub(super) async fn backup(
    db: &DatabaseConnection,
    t: &SqliteTarget,
    options: &BackupOptions,
) -> Result<Manifest, BackupError> {
    let file = t.file().ok_or_else(|| BackupError::Unsupported {
        target: t.url.clone(),
        reason: "an in-memory database has nothing to keep",
    })?;
    let database = file
        .file_name()
        .map_or_else(|| "sqlite".to_owned(), |n| n.to_string_lossy().into_owned());
    let mut b = backend::choose::for_connection(db)?;
    let version = schema_version(&mut *b).await?;
    b.release().await;
    drop(b);
    let pool = db.get_sqlite_connection_pool();
    let sqlite_version: String = sqlx::query("SELECT sqlite_version()")
        .fetch_one(pool)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|source| BackupError::Database {
            context: "reading the SQLite version",
            source,
        })?;
    let stem = Path::new(&database)
        .file_stem()
        .map_or_else(|| database.clone(), |s| s.to_string_lossy().into_owned());
    let (name, created_at) = new_name(&stem, version, "sqlite");
    let path = options.dir.join(&name);
    let partial = options.dir.join(format!("{name}.partial"));
    let started = Instant::now();
    // VACUUM INTO writes the file itself, in one statement: a consistent snapshot, streamed by SQLite.
    if let Err(source) = sqlx::raw_sql(AssertSqlSafe(format!("VACUUM INTO {}", quote(&partial))))
        .execute(pool)
        .await
    {
        let _ = std::fs::remove_file(&partial);
        return Err(BackupError::Database {
            context: "writing the snapshot with VACUUM INTO",
            source,
        });
    }
    let hashed = {
        let partial = partial.clone();
        tokio::task::spawn_blocking(move || hash_file(&partial)).await
    };
    let (sha256, size_bytes) = match hashed {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            let _ = std::fs::remove_file(&partial);
            return Err(BackupError::io("cannot read the snapshot", &partial, e));
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(BackupError::io(
                "cannot read the snapshot",
                &partial,
                std::io::Error::other(e.to_string()),
            ));
        }
    };
    if let Some(p) = &options.progress {
        p(size_bytes);
    }
    std::fs::rename(&partial, &path).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        BackupError::io("cannot move the snapshot into place", &path, e)
    })?;
    Ok(Manifest {
        format: FORMAT,
        file: name,
        backend: "sqlite".to_owned(),
        database,
        schema_version: version,
        created_at,
        sha256,
        size_bytes,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        tool: "sqlite VACUUM INTO".to_owned(),
        server_version: sqlite_version,
        collex_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub(super) async fn restore(t: &SqliteTarget, snapshot: &Path) -> Result<(), BackupError> {
    let file = t.file().ok_or_else(|| BackupError::Unsupported {
        target: t.url.clone(),
        reason: "an in-memory database cannot be restored into",
    })?;
    let snapshot = snapshot.to_owned();
    tokio::task::spawn_blocking(move || {
        let partial = with_suffix(&file, ".restoring");
        let copy = std::fs::copy(&snapshot, &partial)
            .and_then(|_| std::fs::File::open(&partial).and_then(|f| f.sync_all()));
        if let Err(e) = copy {
            let _ = std::fs::remove_file(&partial);
            return Err(BackupError::io("cannot write beside the database", &partial, e));
        }
        for side in ["-wal", "-shm", "-journal"] {
            let p = with_suffix(&file, side);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(BackupError::io("cannot remove the old journal", &p, e));
                }
            }
        }
        std::fs::rename(&partial, &file).map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            BackupError::io("cannot replace the database file", &file, e)
        })
    })
    .await
    .map_err(|e| {
        BackupError::io(
            "cannot replace the database file",
            Path::new(&t.url),
            std::io::Error::other(e.to_string()),
        )
    })?
}
