//! A snapshot's manifest (`<snapshot stem>.manifest.json` beside the file): what it is, its checksum, and
//! the directory's bookkeeping built on it: verifying a file against it, listing, and retention.
//!
//! A snapshot without a valid manifest is never restored, listed as a problem, and never deleted by
//! retention (only files this module can account for are removed).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BackupError;

/// The manifest's format version.
pub const FORMAT: u32 = 1;

const SUFFIX: &str = ".manifest.json";

/// What a snapshot is. Written after the file is complete; never contains a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The snapshot's file name, in the same directory.
    pub file: String,
    /// `postgres` or `sqlite`.
    pub backend: String,
    /// The database name (PostgreSQL) or the file's name (SQLite).
    pub database: String,
    /// The highest applied migration version when the snapshot was taken (`None`: no history).
    pub schema_version: Option<u64>,
    /// When it was taken, UTC, RFC 3339 with milliseconds.
    pub created_at: String,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    /// The file's size in bytes.
    pub size_bytes: u64,
    /// How long taking it took, in milliseconds.
    pub duration_ms: u64,
    /// The program that wrote it (`pg_dump (PostgreSQL) 15.20`, `sqlite VACUUM INTO`).
    pub tool: String,
    /// The server's version (PostgreSQL) or the SQLite library's.
    pub server_version: String,
    /// The version of this program.
    pub collex_version: String,
}

/// One manifest found in a backup directory.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The manifest file.
    pub manifest_file: PathBuf,
    /// What it says, or why it cannot be read.
    pub manifest: Result<Manifest, String>,
    /// Whether the snapshot file it names exists.
    pub file_present: bool,
}

/// The manifest path of the snapshot `file`: `x.dump` → `x.manifest.json`.
pub fn manifest_path(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.with_file_name(format!("{stem}{SUFFIX}"))
}

/// SHA-256 (hex) and size of `path`, read in 1 MiB pieces (memory stays flat).
///
/// # Errors
/// The file cannot be read.
pub(crate) fn hash_file(path: &Path) -> Result<(String, u64), std::io::Error> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

fn read_manifest(path: &Path) -> Result<Manifest, BackupError> {
    let text = std::fs::read_to_string(path).map_err(|e| BackupError::ManifestInvalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| BackupError::ManifestInvalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if m.format != FORMAT {
        return Err(BackupError::ManifestInvalid {
            path: path.to_owned(),
            reason: format!("format {} (expected {FORMAT})", m.format),
        });
    }
    if m.file.contains('/') || m.file.contains('\\') || m.file.is_empty() || m.file.starts_with('.') {
        return Err(BackupError::ManifestInvalid {
            path: path.to_owned(),
            reason: format!("file {:?} is not a file name in the same directory", m.file),
        });
    }
    Ok(m)
}

/// Checks the snapshot `file` (or its manifest) against its manifest: the data file and what it is.
///
/// # Errors
/// [`BackupError::ManifestMissing`], [`BackupError::ManifestInvalid`], [`BackupError::ChecksumMismatch`],
/// or an unreadable file: all refusals.
pub fn verify(file: &Path) -> Result<(PathBuf, Manifest), BackupError> {
    let is_manifest = file
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(SUFFIX));
    let (data, manifest_file) = if is_manifest {
        let m = read_manifest(file)?;
        (file.with_file_name(&m.file), file.to_owned())
    } else {
        (file.to_owned(), manifest_path(file))
    };
    if !data.is_file() {
        return Err(BackupError::io(
            "cannot read the snapshot",
            &data,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    if !manifest_file.is_file() {
        return Err(BackupError::ManifestMissing {
            file: data,
            manifest: manifest_file,
        });
    }
    let m = read_manifest(&manifest_file)?;
    if data.file_name().map(|n| n.to_string_lossy().into_owned()) != Some(m.file.clone()) {
        return Err(BackupError::ManifestInvalid {
            path: manifest_file,
            reason: format!("it describes {:?}, not {:?}", m.file, data.display().to_string()),
        });
    }
    let (actual, actual_size) =
        hash_file(&data).map_err(|e| BackupError::io("cannot read the snapshot", &data, e))?;
    if actual != m.sha256 || actual_size != m.size_bytes {
        return Err(BackupError::ChecksumMismatch {
            file: data,
            expected: m.sha256,
            actual,
            expected_size: m.size_bytes,
            actual_size,
        });
    }
    Ok((data, m))
}

/// Writes `m` beside its file in `dir` (through a temporary file, renamed into place).
pub(crate) fn write(dir: &Path, m: &Manifest) -> Result<PathBuf, BackupError> {
    let path = manifest_path(&dir.join(&m.file));
    let tmp = path.with_extension("json.partial");
    let text = serde_json::to_string_pretty(m).unwrap_or_default();
    std::fs::write(&tmp, format!("{text}\n"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            BackupError::io("cannot write the manifest", &path, e)
        })?;
    Ok(path)
}

/// Every manifest in `dir`, oldest first (a missing directory has none).
///
/// # Errors
/// The directory exists but cannot be read.
pub fn list(dir: &Path) -> Result<Vec<Listed>, BackupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BackupError::io("cannot read the backup directory", dir, e)),
    };
    let mut out: Vec<Listed> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(SUFFIX))
        .map(|e| {
            let path = e.path();
            let manifest = read_manifest(&path).map_err(|e| e.to_string());
            let file_present = manifest
                .as_ref()
                .is_ok_and(|m| path.with_file_name(&m.file).is_file());
            Listed {
                manifest_file: path,
                manifest,
                file_present,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        let key = |l: &Listed| {
            (
                l.manifest
                    .as_ref()
                    .map(|m| m.created_at.clone())
                    .unwrap_or_default(),
                l.manifest_file.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok(out)
}

/// Keeps the newest `keep` snapshots of `database` on `backend` in `dir` and deletes the older ones (file
/// and manifest); returns the deleted files. Other databases' snapshots and unreadable manifests are left
/// alone.
///
/// # Errors
/// A file that cannot be deleted.
pub fn prune(dir: &Path, backend: &str, database: &str, keep: u32) -> Result<Vec<PathBuf>, BackupError> {
    let mine: Vec<(PathBuf, Manifest)> = list(dir)?
        .into_iter()
        .filter_map(|l| l.manifest.ok().map(|m| (l.manifest_file, m)))
        .filter(|(_, m)| m.backend == backend && m.database == database)
        .collect();
    let excess = mine.len().saturating_sub(keep as usize);
    let mut removed = Vec::new();
    // `list` is oldest first: the first `excess` go.
    for (manifest_file, m) in mine.into_iter().take(excess) {
        let data = manifest_file.with_file_name(&m.file);
        match std::fs::remove_file(&data) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BackupError::io("cannot delete an old snapshot", &data, e)),
        }
        std::fs::remove_file(&manifest_file)
            .map_err(|e| BackupError::io("cannot delete an old manifest", &manifest_file, e))?;
        removed.push(data);
    }
    Ok(removed)
}

/// The name of a new snapshot: `<database>_v<NNN>_<UTC time>.<ext>`, and the manifest's `created_at`.
pub(crate) fn new_name(database: &str, version: Option<u64>, ext: &str) -> (String, String) {
    let now = chrono::Utc::now();
    let name = format!(
        "{}_v{:03}_{}.{ext}",
        super::name_part(database),
        version.unwrap_or(0),
        now.format("%Y%m%dT%H%M%S_%3fZ")
    );
    (name, now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_sits_beside_its_snapshot() {
        assert_eq!(
            manifest_path(Path::new("b/collex_v003_20260101T000000_000Z.dump")),
            Path::new("b/collex_v003_20260101T000000_000Z.manifest.json")
        );
    }

    #[test]
    fn names_carry_database_version_and_time() {
        let (name, created) = new_name("my db", Some(7), "dump");
        assert!(name.starts_with("my_db_v007_"), "{name}");
        assert!(name.ends_with("Z.dump"), "{name}");
        assert!(created.ends_with('Z') && created.contains('T'), "{created}");
    }
}
