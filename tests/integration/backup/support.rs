//! Helpers for the snapshot tests: the CLI with a backup directory, migration pairs, and the files a
//! backup directory holds.

use std::path::{Path, PathBuf};

use collex_tests::{TempDir, workspace_bin};

/// What one CLI run gave.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A `migration` command for `url` with migrations in `migs` and snapshots in `backups`; every other
/// `DB_*` variable cleared.
pub fn command(url: &str, migs: &Path, backups: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(workspace_bin("migration"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DB_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.env("DATABASE_URL", url)
        .env("DB_MIGRATE_PATH", migs)
        .env("DB_BACKUP_DIR", backups)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `cmd` to completion.
pub async fn finish(mut cmd: tokio::process::Command) -> Run {
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("migration CLI finished within 120 s")
        .expect("migration CLI started");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the CLI with the default environment.
pub async fn run(url: &str, migs: &Path, backups: &Path, args: &[&str]) -> Run {
    finish(command(url, migs, backups, args)).await
}

/// Writes `NNN_<name>.sql` and `NNN_rollback.sql` with the spec's header.
pub fn pair(dir: &TempDir, version: u32, name: &str, up: &str, down: &str) {
    let header = |kind: &str| {
        format!(
            "-- {kind}: {name}\n-- Version: {version:03}\n-- Description: {name}\n-- Created: 2026-01-01T00:00:00Z\n\n"
        )
    };
    dir.write(
        &format!("{version:03}_{name}.sql"),
        format!("{}{up}\n", header("Migration")),
    );
    dir.write(
        &format!("{version:03}_rollback.sql"),
        format!("{}{down}\n", header("Rollback Migration")),
    );
}

/// The snapshot files (not manifests) in `dir`, sorted.
pub fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|e| {
            e.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let n = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    n.ends_with(".dump") || n.ends_with(".sqlite")
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The one snapshot in `dir`.
pub fn only_snapshot(dir: &Path) -> PathBuf {
    let all = snapshots(dir);
    assert_eq!(
        all.len(),
        1,
        "expected exactly one snapshot in {}: {all:?}",
        dir.display()
    );
    all.into_iter().next().unwrap_or_default()
}

/// The manifest of `snapshot`, parsed.
pub fn manifest(snapshot: &Path) -> serde_json::Value {
    let stem = snapshot
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = snapshot.with_file_name(format!("{stem}.manifest.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("manifest is JSON")
}

/// Flips one byte in the middle of `file`.
pub fn corrupt(file: &Path) {
    let mut bytes = std::fs::read(file).expect("read snapshot");
    let i = bytes.len() / 2;
    bytes[i] ^= 0xff;
    std::fs::write(file, bytes).expect("write snapshot");
}
