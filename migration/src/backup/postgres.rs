//! PostgreSQL snapshots: `pg_dump -Fc` streamed to disk, restored by `pg_restore` piped into `psql` in one
//! transaction.
//!
//! - **The client programs** are found on `PATH`; `pg_dump` must be of the server's major version or newer
//!   (an older one refuses a newer server, or worse, misses what it does not know), checked before anything
//!   runs, with the directory of a matching one named when it is installed (Debian's
//!   `/usr/lib/postgresql/N/bin`).
//! - **The password** goes to the child in `PGPASSWORD`, never on its command line (`/proc/*/cmdline` is
//!   readable by every user; a process's environment only by its owner). Every other connection setting
//!   goes through the environment too, and the parent's own `PG*` variables are removed, so the configuration
//!   is the only source, as for the service's own connections (with an empty `DB_PASSWORD`, libpq's own
//!   `~/.pgpass` may still supply one).
//! - **The dump** comes through a pipe and is hashed while it is written, so it costs no second read and
//!   memory stays flat, whatever the size.
//! - **Restoring** replaces every object of the database's schemas: `psql --single-transaction` runs a
//!   prelude that drops them and then `pg_restore`'s script, so a failure anywhere leaves the database as it
//!   was. The migration lock is held meanwhile.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use config::PgTarget;
use sea_orm::DatabaseConnection;
use sea_orm::sqlx::{self, Row};
use sha2::{Digest, Sha256};

use super::manifest::{FORMAT, Manifest, new_name};
use super::{BackupError, BackupOptions, schema_version};
use crate::backend;

/// A PostgreSQL client program found on `PATH`, with its version.
struct Tool {
    path: PathBuf,
    /// `pg_dump (PostgreSQL) 15.20`.
    version_line: String,
    /// `15.20`.
    version: String,
    major: u32,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `15.20` and 15 from `pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)`; `9.6.24` gives 9.
fn parse_version(line: &str) -> Option<(String, u32)> {
    let v = line
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let v = v.trim_end_matches(|c: char| !c.is_ascii_digit());
    let mut parts = v.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    // Before 10 the major version had two parts (9.6); those servers are long unsupported.
    Some((v.to_owned(), major))
}

impl Tool {
    fn find(name: &'static str, server_major: u32) -> Result<Self, BackupError> {
        let path = on_path(name).ok_or(BackupError::ToolMissing {
            tool: name,
            server_major,
        })?;
        let out = Command::new(&path)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| BackupError::Tool {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let (version, major) = parse_version(&line).ok_or_else(|| BackupError::Tool {
            path: path.clone(),
            reason: format!("`--version` printed {line:?}, expected `{name} (PostgreSQL) N.N`"),
        })?;
        Ok(Self {
            path,
            version_line: line,
            version,
            major,
        })
    }

    /// Refuses a program older than `needed_major`.
    fn at_least(
        self,
        needed: &str,
        needed_major: u32,
        what: &'static str,
        verb: &'static str,
    ) -> Result<Self, BackupError> {
        if self.major >= needed_major {
            return Ok(self);
        }
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let debian = PathBuf::from(format!("/usr/lib/postgresql/{needed_major}/bin"));
        let hint = if debian.join(&name).is_file() {
            format!(" (it is installed in {})", debian.display())
        } else {
            String::new()
        };
        Err(BackupError::ToolTooOld {
            tool: match name.as_str() {
                "pg_restore" => "pg_restore",
                "psql" => "psql",
                _ => "pg_dump",
            },
            path: self.path,
            client: self.version,
            needed_major,
            reason: format!("{what} {needed}: it cannot {verb}"),
            hint,
        })
    }

    /// The program, connecting to `t` through the environment only.
    fn command(&self, t: &PgTarget) -> Command {
        let mut c = Command::new(&self.path);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") {
                c.env_remove(k);
            }
        }
        c.env("PGHOST", &t.host)
            .env("PGPORT", t.port.to_string())
            .env("PGUSER", &t.user)
            .env("PGDATABASE", &t.database)
            .env("PGSSLMODE", t.ssl_mode.as_str())
            .env("PGAPPNAME", "collex-backup");
        if let Some(p) = t.password_secret() {
            c.env("PGPASSWORD", p);
        }
        if let Some(ca) = &t.ssl_root_cert {
            c.env("PGSSLROOTCERT", ca);
        }
        c.arg("--no-password");
        c
    }
}

/// The server's version: `15.20` and 15.
async fn server_version(db: &DatabaseConnection) -> Result<(String, u32), BackupError> {
    let row =
        sqlx::query("SELECT current_setting('server_version'), current_setting('server_version_num')::int")
            .fetch_one(db.get_postgres_connection_pool())
            .await
            .map_err(|source| BackupError::Database {
                context: "reading the server's version",
                source,
            })?;
    let text: String = row.try_get(0).map_err(|source| BackupError::Database {
        context: "reading the server's version",
        source,
    })?;
    let num: i32 = row.try_get(1).map_err(|source| BackupError::Database {
        context: "reading the server's version",
        source,
    })?;
    let version = text.split_whitespace().next().unwrap_or(&text).to_owned();
    Ok((version, u32::try_from(num / 10000).unwrap_or(0)))
}

/// Reads a child's standard error on a thread (so a chatty child cannot fill the pipe and stall), keeping
/// the last 4 KiB.
fn collect_stderr(child: &mut std::process::Child) -> std::thread::JoinHandle<String> {
    let pipe = child.stderr.take();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut text);
        }
        let text = text.trim();
        let start = text.len().saturating_sub(4096);
        let start = (start..=text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    })
}

fn failed(tool: &'static str, status: std::process::ExitStatus, stderr: String) -> BackupError {
    BackupError::ToolFailed {
        tool,
        status: status.to_string(),
        stderr: if stderr.is_empty() {
            "(no message)".to_owned()
        } else {
            stderr
        },
    }
}

/// Runs `pg_dump -Fc` into `partial`, hashing on the way; returns the checksum and size.
fn dump(
    tool: &Tool,
    t: &PgTarget,
    partial: &Path,
    progress: Option<&super::Progress>,
) -> Result<(String, u64), BackupError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(partial)
        .map_err(|e| BackupError::io("cannot create the snapshot file", partial, e))?;
    let mut child = tool
        .command(t)
        .arg("--format=custom")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| BackupError::Tool {
            path: tool.path.clone(),
            reason: e.to_string(),
        })?;
    let stderr = collect_stderr(&mut child);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut copy = || -> Result<(), BackupError> {
        let Some(mut out) = child.stdout.take() else {
            return Ok(());
        };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = out
                .read(&mut buf)
                .map_err(|e| BackupError::io("cannot read pg_dump's output", &tool.path, e))?;
            if n == 0 {
                return Ok(());
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .map_err(|e| BackupError::io("cannot write the snapshot file", partial, e))?;
            size += n as u64;
            if let Some(p) = progress {
                p(size);
            }
        }
    };
    let copied = copy();
    if copied.is_err() {
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| BackupError::io("cannot wait for pg_dump", &tool.path, e))?;
    let stderr = stderr.join().unwrap_or_default();
    copied?;
    if !status.success() {
        return Err(failed("pg_dump", status, stderr));
    }
    file.sync_all()
        .map_err(|e| BackupError::io("cannot write the snapshot file", partial, e))?;
    Ok((hex::encode(hasher.finalize()), size))
}

pub(super) async fn backup(
    db: &DatabaseConnection,
    t: &PgTarget,
    options: &BackupOptions,
) -> Result<Manifest, BackupError> {
    let (server, server_major) = server_version(db).await?;
    let tool = Tool::find("pg_dump", server_major)?.at_least(
        &server,
        server_major,
        "the server",
        "dump a newer server",
    )?;
    // Under the migration lock: the version in the name is the one in the file.
    let mut b = backend::choose::for_connection(db)?;
    b.lock(options.lock_timeout, &|_: &crate::lock::Waiting| {})
        .await?;
    let result = async {
        let version = schema_version(&mut *b).await?;
        b.release().await;
        let (name, created_at) = new_name(&t.database, version, "dump");
        let path = options.dir.join(&name);
        let partial = options.dir.join(format!("{name}.partial"));
        let started = Instant::now();
        let progress = options.progress.clone();
        let dumped = tokio::task::spawn_blocking({
            let partial = partial.clone();
            let t = t.clone();
            move || {
                let r = dump(&tool, &t, &partial, progress.as_ref());
                (r, tool)
            }
        })
        .await;
        let (dumped, tool) = match dumped {
            Ok(x) => x,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(BackupError::Tool {
                    path: PathBuf::from("pg_dump"),
                    reason: e.to_string(),
                });
            }
        };
        let (sha256, size_bytes) = match dumped {
            Ok(x) => x,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        std::fs::rename(&partial, &path).map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            BackupError::io("cannot move the snapshot into place", &path, e)
        })?;
        Ok(Manifest {
            format: FORMAT,
            file: name,
            backend: "postgres".to_owned(),
            database: t.database.clone(),
            schema_version: version,
            created_at,
            sha256,
            size_bytes,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            tool: tool.version_line,
            server_version: server,
            collex_version: env!("CARGO_PKG_VERSION").to_owned(),
        })
    }
    .await;
    b.unlock().await;
    result
}

/// Drops every object of the database's own schemas: the other schemas whole, `public`'s contents (the
/// schema itself keeps its owner and grants, which the dump does not carry). Objects that belong to an
/// extension stay: the dump re-creates extensions with `IF NOT EXISTS`.
const PRELUDE: &str = r#"SET client_min_messages = warning;
DO $collex$
DECLARE r record;
BEGIN
  FOR r IN SELECT n.nspname FROM pg_namespace n
           WHERE n.nspname NOT IN ('public', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = n.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);
  END LOOP;
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
             -- A sequence behind a serial or identity column goes with its table (an identity's cannot be
             -- dropped on its own).
             AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid
                      AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                      AND d.deptype IN ('a', 'i')))
  LOOP
    EXECUTE format(CASE r.relkind
        WHEN 'v' THEN 'DROP VIEW IF EXISTS public.%I CASCADE'
        WHEN 'm' THEN 'DROP MATERIALIZED VIEW IF EXISTS public.%I CASCADE'
        WHEN 'S' THEN 'DROP SEQUENCE IF EXISTS public.%I CASCADE'
        WHEN 'f' THEN 'DROP FOREIGN TABLE IF EXISTS public.%I CASCADE'
        WHEN 'c' THEN 'DROP TYPE IF EXISTS public.%I CASCADE'
        ELSE 'DROP TABLE IF EXISTS public.%I CASCADE' END, r.relname);
  END LOOP;
  FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('DROP TYPE IF EXISTS public.%I CASCADE', r.typname);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure::text AS sig, p.prokind FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public'
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format(CASE r.prokind WHEN 'p' THEN 'DROP PROCEDURE IF EXISTS %s CASCADE'
        WHEN 'a' THEN 'DROP AGGREGATE IF EXISTS %s CASCADE'
        ELSE 'DROP FUNCTION IF EXISTS %s CASCADE' END, r.sig);
  END LOOP;
END
$collex$;
"#;

/// `pg_restore -f - FILE | psql --single-transaction -f -`, the prelude first.
fn pipe_restore(restore: &Tool, psql: &Tool, t: &PgTarget, file: &Path) -> Result<(), BackupError> {
    let mut producer = restore
        .command(t)
        .arg("--file=-")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| BackupError::Tool {
            path: restore.path.clone(),
            reason: e.to_string(),
        })?;
    let producer_err = collect_stderr(&mut producer);
    let mut consumer = psql
        .command(t)
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            let _ = producer.kill();
            BackupError::Tool {
                path: psql.path.clone(),
                reason: e.to_string(),
            }
        })?;
    let consumer_err = collect_stderr(&mut consumer);
    // A write error means psql stopped reading (it failed): its exit status and message say why.
    if let (Some(mut input), Some(mut output)) = (consumer.stdin.take(), producer.stdout.take()) {
        let _ = input
            .write_all(PRELUDE.as_bytes())
            .and_then(|()| std::io::copy(&mut output, &mut input).map(|_| ()));
    }
    let consumer_status = consumer
        .wait()
        .map_err(|e| BackupError::io("cannot wait for psql", &psql.path, e))?;
    if !consumer_status.success() {
        let _ = producer.kill();
    }
    let producer_status = producer
        .wait()
        .map_err(|e| BackupError::io("cannot wait for pg_restore", &restore.path, e))?;
    let consumer_err = consumer_err.join().unwrap_or_default();
    let producer_err = producer_err.join().unwrap_or_default();
    if !producer_status.success() && consumer_status.success() {
        // psql committed only what pg_restore wrote before failing: that cannot happen with a complete
        // script, but say so plainly if it ever does.
        return Err(failed("pg_restore", producer_status, producer_err));
    }
    if !consumer_status.success() {
        let msg = if producer_err.is_empty() {
            consumer_err
        } else {
            format!("{consumer_err} (pg_restore: {producer_err})")
        };
        return Err(failed(
            "psql (nothing was changed: the restore runs in one transaction)",
            consumer_status,
            msg,
        ));
    }
    Ok(())
}

pub(super) async fn restore(
    db: Option<&DatabaseConnection>,
    t: &PgTarget,
    file: &Path,
    m: &Manifest,
    lock_timeout: std::time::Duration,
) -> Result<(), BackupError> {
    let (server_major, mut lock) = match db {
        Some(db) => {
            let (_, major) = server_version(db).await?;
            let mut b = backend::choose::for_connection(db)?;
            b.lock(lock_timeout, &|_: &crate::lock::Waiting| {}).await?;
            (major, Some(b))
        }
        None => (0, None),
    };
    let result = async {
        let dumped_with = parse_version(&m.tool).map_or((String::new(), 0), |v| v);
        let needed_major = server_major.max(dumped_with.1);
        let needed = if dumped_with.1 >= server_major {
            dumped_with.0.clone()
        } else {
            server_major.to_string()
        };
        let what = if dumped_with.1 >= server_major {
            "the snapshot's pg_dump"
        } else {
            "the server"
        };
        let restore =
            Tool::find("pg_restore", needed_major)?.at_least(&needed, needed_major, what, "read it")?;
        let psql = Tool::find("psql", needed_major)?;
        let t = t.clone();
        let file = file.to_owned();
        tokio::task::spawn_blocking(move || pipe_restore(&restore, &psql, &t, &file))
            .await
            .map_err(|e| BackupError::Tool {
                path: PathBuf::from("pg_restore"),
                reason: e.to_string(),
            })?
    }
    .await;
    if let Some(b) = lock.as_mut() {
        b.unlock().await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn client_versions_are_read_from_their_banner() {
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"),
            Some(("15.20".to_owned(), 15))
        );
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 9.6.24"),
            Some(("9.6.24".to_owned(), 9))
        );
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 17devel"),
            Some(("17".to_owned(), 17))
        );
        assert_eq!(parse_version("nonsense"), None);
    }
}
