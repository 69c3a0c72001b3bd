//! The results: each figure with its same-run reference, the ratio and the target, each with its min–max
//! spread over the rounds when it was measured in rounds, printed as a table and written as JSON
//! (`bench/results.json`) and Markdown (`bench/results.md`, pasted into BENCHMARKS.md).
//!
//! A figure measured in rounds carries the median and the spread of its value and of its reference, and the
//! ratio as the median of the per-round ratios (each round's value over the same round's reference, so drift
//! between rounds cancels) with their spread.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::db::Databases;
use crate::rounds::{median, spread};
use crate::tools::Tools;

/// Which way a target points.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The ratio to the reference must be at least this.
    RatioAtLeast(f64),
    /// The ratio to the reference must be at most this.
    RatioAtMost(f64),
    /// The value itself must be at most this (in the figure's unit).
    ValueAtMost(f64),
}

impl Target {
    fn met(self, value: f64, ratio: Option<f64>) -> Option<bool> {
        match self {
            Target::RatioAtLeast(t) => ratio.map(|r| r >= t),
            Target::RatioAtMost(t) => ratio.map(|r| r <= t),
            Target::ValueAtMost(t) => Some(value <= t),
        }
    }

    /// Whether the spread of what the target judges lies on both sides of the line.
    fn crossed(self, value: Option<[f64; 2]>, ratio: Option<[f64; 2]>) -> bool {
        let (line, s) = match self {
            Target::RatioAtLeast(t) | Target::RatioAtMost(t) => (t, ratio),
            Target::ValueAtMost(t) => (t, value),
        };
        s.is_some_and(|[lo, hi]| lo < line && hi >= line || lo <= line && hi > line)
    }

    fn show(self, unit: &str) -> String {
        match self {
            Target::RatioAtLeast(t) => format!(">= {t}x"),
            Target::RatioAtMost(t) => format!("<= {t}x"),
            Target::ValueAtMost(t) => format!("<= {t} {unit}"),
        }
    }
}

/// One measured figure. Every field but `group` and `name` may be absent in a results file (older files have
/// no spreads), so `--compare` reads any earlier `results.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Figure {
    /// Benchmark group (`reads`, `updates`, `migrations`, `service`).
    pub group: String,
    /// What was measured.
    pub name: String,
    /// The measured value (the median over the rounds); `None` when it could not be measured (see `note`).
    pub value: Option<f64>,
    /// `[min, max]` of the value over the rounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread: Option<[f64; 2]>,
    /// How many rounds the value is the median of (absent: one measurement).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounds: Option<usize>,
    /// Unit of `value` and `reference_value`.
    pub unit: String,
    /// What the reference is.
    pub reference: Option<String>,
    /// The reference's value in the same run.
    pub reference_value: Option<f64>,
    /// `[min, max]` of the reference's value over the rounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_spread: Option<[f64; 2]>,
    /// The median of the per-round `value / reference` when both were measured in the same rounds, else
    /// `value / reference_value`.
    pub ratio: Option<f64>,
    /// `[min, max]` of the per-round ratios.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_spread: Option<[f64; 2]>,
    /// The target, if the issue sets one.
    pub target: Option<String>,
    /// Whether the target is met (by the median).
    pub met: Option<bool>,
    /// Whether the rounds lie on both sides of the target (the verdict is then within the noise).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub target_in_spread: bool,
    /// Anything the reader must know about this figure.
    pub note: Option<String>,
    /// The per-round values (paired with the reference's by round), not written out.
    #[serde(skip)]
    samples: Vec<f64>,
}

impl Figure {
    /// A figure measured once, with no reference yet.
    pub fn new(group: &str, name: impl Into<String>, value: f64, unit: &str) -> Self {
        Self {
            group: group.to_owned(),
            name: name.into(),
            value: Some(value),
            unit: unit.to_owned(),
            ..Self::default()
        }
    }

    /// A figure measured once per round: the median and the min–max spread of `samples`, which are kept so
    /// that [`Figure::against_rounds`] can pair them with the reference's.
    pub fn from_rounds(group: &str, name: impl Into<String>, samples: &[f64], unit: &str) -> Self {
        let mut f = Self::new(group, name, median(samples), unit);
        f.spread = spread_of(samples);
        f.rounds = Some(samples.len());
        f.samples = samples.to_vec();
        f
    }

    /// A figure that could not be measured, and why.
    pub fn missing(group: &str, name: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            value: None,
            note: Some(why.into()),
            ..Self::new(group, name, 0.0, "")
        }
    }

    /// Sets the reference and computes the ratio.
    #[must_use]
    pub fn against(mut self, reference: impl Into<String>, value: Option<f64>) -> Self {
        self.reference = Some(reference.into());
        self.reference_value = value;
        self.ratio = match (self.value, value) {
            (Some(v), Some(r)) if r != 0.0 && v.is_finite() && r.is_finite() => Some(v / r),
            _ => None,
        };
        self
    }

    /// Sets a reference measured in the same rounds as this figure (`reference[i]` in round `i`): its median
    /// and spread, and the ratio as the median and spread of the per-round ratios. Without per-round samples
    /// on this side (or a different count), the ratio is the ratio of the medians.
    #[must_use]
    pub fn against_rounds(mut self, reference: impl Into<String>, samples: &[f64]) -> Self {
        self = self.against(reference, Some(median(samples)));
        self.reference_spread = spread_of(samples);
        if self.samples.len() == samples.len() && !samples.is_empty() {
            let ratios: Vec<f64> = self
                .samples
                .iter()
                .zip(samples)
                .filter(|(_, r)| **r != 0.0)
                .map(|(v, r)| v / r)
                .filter(|x| x.is_finite())
                .collect();
            if !ratios.is_empty() {
                self.ratio = Some(median(&ratios));
                self.ratio_spread = spread_of(&ratios);
            }
        }
        self
    }

    /// Sets a reference measured in its own rounds (not paired with this figure's, e.g. an external tool run
    /// apart): its median and spread; the ratio of the medians, with the widest ratio the two spreads allow.
    #[must_use]
    pub fn against_unpaired(mut self, reference: impl Into<String>, samples: &[f64]) -> Self {
        self = self.against(reference, Some(median(samples)));
        self.reference_spread = spread_of(samples);
        if let (Some([lo, hi]), Some([rlo, rhi])) = (self.spread, self.reference_spread)
            && rlo > 0.0
        {
            self.ratio_spread = Some([lo / rhi, hi / rlo]);
        }
        self
    }

    /// Sets the target, whether the median meets it, and whether the rounds straddle it.
    #[must_use]
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target.show(&self.unit));
        self.met = self.value.and_then(|v| target.met(v, self.ratio));
        self.target_in_spread = target.crossed(self.spread, self.ratio_spread);
        self
    }

    /// Adds a note.
    #[must_use]
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// The min–max spread of two or more samples (one sample has none).
fn spread_of(samples: &[f64]) -> Option<[f64; 2]> {
    if samples.len() < 2 {
        return None;
    }
    spread(samples)
}

/// The machine the run happened on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    cpu: String,
    cores: usize,
    memory: String,
    kernel: String,
    postgres: String,
}

/// How the run was made (what `--compare` shows next to the figures).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Settings {
    /// Seconds of each measured window.
    pub window_s: f64,
    /// Seconds of warm-up before each window.
    pub warmup_s: f64,
    /// Alternating rounds per comparison.
    pub rounds: usize,
    /// A smoke run (`--quick`): figures not worth comparing.
    pub quick: bool,
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Version of this file's layout: 2 added spreads, rounds and settings.
    format: u32,
    date: String,
    settings: Settings,
    machine: Machine,
    tools: Tools,
    figures: Vec<Figure>,
    notes: Vec<String>,
    duration_s: f64,
    /// Seconds each part took, in run order.
    part_seconds: Vec<(String, f64)>,
}

fn first_line_with(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

impl Report {
    /// An empty report with the machine described.
    pub async fn new(tools: &Tools, dbs: &Databases, args: &crate::RunArgs) -> Self {
        let machine = Machine {
            cpu: first_line_with("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory: first_line_with("/proc/meminfo", "MemTotal").unwrap_or_else(|| "unknown".into()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
            postgres: dbs
                .scalar("SELECT version()")
                .await
                .unwrap_or_else(|| "unknown".into()),
        };
        Self {
            format: 2,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            settings: Settings {
                window_s: args.window().as_secs_f64(),
                warmup_s: args.warmup().as_secs_f64(),
                rounds: args.rounds(),
                quick: args.quick,
            },
            machine,
            tools: tools.clone(),
            figures: Vec::new(),
            notes: Vec::new(),
            duration_s: 0.0,
            part_seconds: Vec::new(),
        }
    }

    /// Records a figure and prints it as it comes.
    pub fn add(&mut self, f: Figure) {
        eprintln!("  {}", row(&f).join(" | "));
        self.figures.push(f);
    }

    /// Records a note on the whole run.
    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        eprintln!("collex-bench: note: {note}");
        self.notes.push(note);
    }

    /// Records how long a part took.
    pub fn part_took(&mut self, part: &str, took: Duration) {
        self.part_seconds.push((part.to_owned(), took.as_secs_f64()));
    }

    fn parts_text(&self) -> String {
        let parts: Vec<String> = self
            .part_seconds
            .iter()
            .map(|(p, s)| format!("{p} {s:.0} s"))
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    }

    /// Stamps how long the run took.
    pub fn finish(&mut self, took: Duration) {
        self.duration_s = took.as_secs_f64();
    }

    /// Prints the table.
    pub fn print(&self) {
        println!();
        println!(
            "collex-db bench, {} ({} cores, {}); {} rounds of {:.1} s windows{}",
            self.date,
            self.machine.cores,
            self.machine.cpu,
            self.settings.rounds,
            self.settings.window_s,
            if self.settings.quick {
                ", QUICK (smoke run, not for comparison)"
            } else {
                ""
            }
        );
        let mut rows: Vec<Vec<String>> = vec![HEADER.iter().map(|s| (*s).to_owned()).collect()];
        rows.extend(self.figures.iter().map(row));
        print!("{}", table(&rows));
        for f in self.figures.iter().filter(|f| f.note.is_some()) {
            println!(
                "  * {} / {}: {}",
                f.group,
                f.name,
                f.note.as_deref().unwrap_or("")
            );
        }
        for n in &self.notes {
            println!("  * {n}");
        }
        println!("took {:.0} s{}", self.duration_s, self.parts_text());
    }

    /// Writes the JSON and the Markdown table.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn write(&self, json: &Path, markdown: &Path) -> anyhow::Result<()> {
        for p in [json, markdown] {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
        }
        std::fs::write(json, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("cannot write {}", json.display()))?;
        std::fs::write(markdown, self.markdown())
            .with_context(|| format!("cannot write {}", markdown.display()))?;
        Ok(())
    }

    fn markdown(&self) -> String {
        let mut s = format!(
            "Run of {} on {} cores ({}), {} RAM, Linux {}, {}. {} rounds of {:.1} s windows (warm-up \
             {:.1} s){}; each value is the median over the rounds with its (min–max), each ratio the median of \
             the per-round ratios with theirs. Took {:.0} s{}.\n\n",
            self.date,
            self.machine.cores,
            self.machine.cpu,
            self.machine.memory,
            self.machine.kernel,
            self.machine.postgres.split(" on ").next().unwrap_or(""),
            self.settings.rounds,
            self.settings.window_s,
            self.settings.warmup_s,
            if self.settings.quick {
                ", QUICK (smoke run, not for comparison)"
            } else {
                ""
            },
            self.duration_s,
            self.parts_text()
        );
        s.push_str("| group | figure | value | reference | ref value | ratio | target | met |\n");
        s.push_str("|---|---|---|---|---|---|---|---|\n");
        for f in &self.figures {
            s.push_str(&format!("| {} |\n", row(f).join(" | ")));
        }
        let notes: Vec<String> = self
            .figures
            .iter()
            .filter_map(|f| {
                f.note
                    .as_ref()
                    .map(|n| format!("- {} / {}: {n}", f.group, f.name))
            })
            .chain(self.notes.iter().map(|n| format!("- {n}")))
            .collect();
        if !notes.is_empty() {
            s.push_str("\nNotes:\n\n");
            s.push_str(&notes.join("\n"));
            s.push('\n');
        }
        s
    }
}

const HEADER: [&str; 8] = [
    "group",
    "figure",
    "value",
    "reference",
    "ref value",
    "ratio",
    "target",
    "met",
];

/// Rows as aligned columns, a rule under the first (the header).
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (n, r) in rows.iter().enumerate() {
        let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * cols.saturating_sub(1)));
            out.push('\n');
        }
    }
    out
}

/// A number with as many digits as it deserves.
fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `value unit (min–max)`, the spread left out when there is none.
pub fn with_spread(v: Option<f64>, unit: &str, s: Option<[f64; 2]>) -> String {
    let Some(v) = v else {
        return "-".to_owned();
    };
    let mut text = format!("{} {unit}", num(v)).trim_end().to_owned();
    if let Some([lo, hi]) = s {
        text.push_str(&format!(" ({}–{})", num(lo), num(hi)));
    }
    text
}

fn row(f: &Figure) -> Vec<String> {
    vec![
        f.group.clone(),
        f.name.clone(),
        match f.value {
            Some(_) => with_spread(f.value, &f.unit, f.spread),
            None => "MISSING".to_owned(),
        },
        f.reference.clone().unwrap_or_else(|| "-".into()),
        with_spread(f.reference_value, &f.unit, f.reference_spread),
        match (f.ratio, f.ratio_spread) {
            (Some(r), Some([lo, hi])) => format!("{r:.2}x ({lo:.2}–{hi:.2})"),
            (Some(r), None) => format!("{r:.2}x"),
            (None, _) => "-".into(),
        },
        f.target.clone().unwrap_or_else(|| "-".into()),
        match (f.met, f.target_in_spread) {
            (Some(true), false) => "yes".into(),
            (Some(false), false) => "NO".into(),
            (Some(true), true) => "yes, within spread".into(),
            (Some(false), true) => "NO, within spread".into(),
            (None, _) => "-".into(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_give_medians_spreads_and_paired_ratios() {
        let f = Figure::from_rounds("g", "n", &[100.0, 90.0, 110.0], "ops/s")
            .against_rounds("ref", &[100.0, 100.0, 100.0])
            .target(Target::RatioAtLeast(1.0));
        assert_eq!(f.value, Some(100.0));
        assert_eq!(f.spread, Some([90.0, 110.0]));
        assert_eq!(f.ratio, Some(1.0));
        assert_eq!(f.ratio_spread, Some([0.9, 1.1]));
        assert_eq!(f.met, Some(true));
        assert!(f.target_in_spread, "rounds at 0.9x and 1.1x straddle 1.0x");
        assert!(row(&f).join("|").contains("yes, within spread"));

        // Paired by round: a machine twice as fast in round 2 moves both sides; every round is 1.1x.
        let g = Figure::from_rounds("g", "n", &[110.0, 220.0], "ops/s")
            .against_rounds("ref", &[100.0, 200.0])
            .target(Target::RatioAtLeast(1.0));
        let [lo, hi] = g.ratio_spread.expect("a ratio spread");
        assert!((lo - 1.1).abs() < 1e-9 && (hi - 1.1).abs() < 1e-9);
        assert!(!g.target_in_spread);

        // One sample has no spread; unpaired references give the widest ratio their spreads allow.
        let h = Figure::from_rounds("g", "n", &[10.0], "ms").against_unpaired("ref", &[4.0, 5.0]);
        assert_eq!(h.spread, None);
        assert_eq!(h.ratio, Some(10.0 / 4.5));
        assert_eq!(h.ratio_spread, None);
    }
}
