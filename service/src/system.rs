//! Memory and disk checks for `/health` and `/metrics`, read from `/proc` and `statvfs`.
//!
//! Owns how a reading and a threshold (`HEALTH_MIN_FREE_MEMORY`, `HEALTH_MIN_FREE_DISK`, read by the `config`
//! crate) become healthy or unhealthy. On systems without `/proc` the readings are absent and the checks report
//! `unknown`, which does not make the service unhealthy.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Within the threshold.
    Healthy,
    /// Beyond the threshold, or the database is unreachable.
    Unhealthy,
    /// No reading on this system.
    Unknown,
}

impl Verdict {
    /// Whether this verdict makes the service unhealthy.
    pub fn is_bad(self) -> bool {
        self == Self::Unhealthy
    }
}

/// The process's own memory.
#[derive(Debug, Clone, Copy, Default, Serialize, ts_rs::TS)]
pub struct ProcessMemory {
    /// Resident set size in bytes.
    pub resident_bytes: Option<u64>,
    /// Virtual size in bytes.
    pub virtual_bytes: Option<u64>,
}

/// Reads `VmRSS` and `VmSize` from `/proc/self/status`.
pub fn process_memory() -> ProcessMemory {
    let Ok(text) = std::fs::read_to_string("/proc/self/status") else {
        return ProcessMemory::default();
    };
    ProcessMemory {
        resident_bytes: kb_field(&text, "VmRSS:"),
        virtual_bytes: kb_field(&text, "VmSize:"),
    }
}

fn kb_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The memory check.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct MemoryCheck {
    /// The verdict.
    pub status: Verdict,
    /// This process's memory.
    pub process: ProcessMemory,
    /// `MemTotal` of the machine.
    pub system_total_bytes: Option<u64>,
    /// `MemAvailable` of the machine.
    pub system_available_bytes: Option<u64>,
    /// The rule applied.
    pub threshold: String,
}

/// Checks the machine's available memory: unhealthy below `min_free_percent` of the total.
pub fn memory_check(min_free_percent: f64) -> MemoryCheck {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = kb_field(&info, "MemTotal:");
    let available = kb_field(&info, "MemAvailable:");
    MemoryCheck {
        status: ratio_verdict(available, total, min_free_percent),
        process: process_memory(),
        system_total_bytes: total,
        system_available_bytes: available,
        threshold: format!("available memory >= {}% of total", min_free_percent),
    }
}

/// The disk check.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct DiskCheck {
    /// The verdict.
    pub status: Verdict,
    /// The directory whose filesystem was checked.
    pub path: PathBuf,
    /// Size of the filesystem.
    pub total_bytes: Option<u64>,
    /// Space available to this process.
    pub available_bytes: Option<u64>,
    /// The rule applied.
    pub threshold: String,
}

/// Checks the filesystem holding `path`: unhealthy below `min_free_percent` of its size available.
// statvfs field types differ between platforms (u32 on some); the casts are not always no-ops.
#[allow(clippy::unnecessary_cast)]
pub fn disk_check(path: &Path, min_free_percent: f64) -> DiskCheck {
    let (total, available) = match nix::sys::statvfs::statvfs(path) {
        Ok(s) => {
            let frag = s.fragment_size() as u64;
            (
                Some(s.blocks() as u64 * frag),
                Some(s.blocks_available() as u64 * frag),
            )
        }
        Err(_) => (None, None),
    };
    DiskCheck {
        status: ratio_verdict(available, total, min_free_percent),
        path: path.to_path_buf(),
        total_bytes: total,
        available_bytes: available,
        threshold: format!("available space >= {}% of the filesystem", min_free_percent),
    }
}

fn ratio_verdict(available: Option<u64>, total: Option<u64>, min_percent: f64) -> Verdict {
    match (available, total) {
        (Some(a), Some(t)) if t > 0 => {
            if (a as f64) * 100.0 / (t as f64) >= min_percent {
                Verdict::Healthy
            } else {
                Verdict::Unhealthy
            }
        }
        _ => Verdict::Unknown,
    }
}
