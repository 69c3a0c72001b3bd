//! The thresholds of the service's resource checks: `HEALTH_MIN_FREE_MEMORY` and `HEALTH_MIN_FREE_DISK`
//! ([`HealthConfig`]).
//!
//! Owns their meaning, defaults (the registry's) and validation; the `service` crate's `/health` applies them.
//! A fixed share suits neither a 20 GB root disk (5 % is 1 GB, nearly full) nor a 4 TB volume (5 % is 200 GB
//! left), so an operator sets them per machine; 0 turns a check's verdict off without hiding its readings.

use crate::read::Reader;
use crate::vars::{self, Var};

/// The shares of memory and disk below which `/health` reports the resource unhealthy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthConfig {
    /// `HEALTH_MIN_FREE_MEMORY` (default 5): memory is unhealthy when less than this percentage of the
    /// machine's memory is available.
    pub min_free_memory_percent: f64,
    /// `HEALTH_MIN_FREE_DISK` (default 5): disk is unhealthy when less than this percentage of the filesystem
    /// holding the data (the SQLite file's directory, else the working directory) is available.
    pub min_free_disk_percent: f64,
}

impl Default for HealthConfig {
    /// The registry's defaults (a unit test holds the two together).
    fn default() -> Self {
        Self {
            min_free_memory_percent: 5.0,
            min_free_disk_percent: 5.0,
        }
    }
}

fn percent<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>, var: &Var, fallback: f64) -> f64 {
    r.parsed(var, "a percentage from 0 to 100, like 5 or 2.5", fallback, |v| {
        v.trim_end_matches('%')
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=100.0).contains(p))
    })
}

/// Reads the thresholds, recording each invalid variable in `r`.
pub(crate) fn read<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> HealthConfig {
    let d = HealthConfig::default();
    HealthConfig {
        min_free_memory_percent: percent(r, &vars::HEALTH_MIN_FREE_MEMORY, d.min_free_memory_percent),
        min_free_disk_percent: percent(r, &vars::HEALTH_MIN_FREE_DISK, d.min_free_disk_percent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_registrys() {
        let mut r = Reader::new(|_: &str| None);
        assert_eq!(read(&mut r), HealthConfig::default());
        assert!(r.problems.is_empty());
    }

    #[test]
    fn percentages_outside_0_to_100_are_refused_by_name() {
        for bad in ["-1", "101", "five", "NaN"] {
            let mut r = Reader::new(|k: &str| (k == "HEALTH_MIN_FREE_DISK").then(|| bad.to_owned()));
            let _ = read(&mut r);
            assert_eq!(r.problems.len(), 1, "{bad} accepted");
            assert_eq!(r.problems[0].var, "HEALTH_MIN_FREE_DISK");
        }
        let mut r = Reader::new(|k: &str| (k == "HEALTH_MIN_FREE_MEMORY").then(|| "2.5%".to_owned()));
        assert_eq!(read(&mut r).min_free_memory_percent, 2.5);
        assert!(r.problems.is_empty());
    }
}
