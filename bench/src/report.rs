//! The results: each figure with its same-run reference, the ratio and the target, printed as a table and
//! written as JSON (`bench/results.json`) and Markdown (`bench/results.md`, pasted into BENCHMARKS.md).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::db::Databases;
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

    fn show(self, unit: &str) -> String {
        match self {
            Target::RatioAtLeast(t) => format!(">= {t}x"),
            Target::RatioAtMost(t) => format!("<= {t}x"),
            Target::ValueAtMost(t) => format!("<= {t} {unit}"),
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Benchmark group (`reads`, `updates`, `migrations`, `service`).
    pub group: String,
    /// What was measured.
    pub name: String,
    /// The measured value; `None` when it could not be measured (see `note`).
    pub value: Option<f64>,
    /// Unit of `value` and `reference_value`.
    pub unit: String,
    /// What the reference is.
    pub reference: Option<String>,
    /// The reference's value in the same run.
    pub reference_value: Option<f64>,
    /// `value / reference_value`.
    pub ratio: Option<f64>,
    /// The target, if the issue sets one.
    pub target: Option<String>,
    /// Whether the target is met.
    pub met: Option<bool>,
    /// Anything the reader must know about this figure.
    pub note: Option<String>,
}

impl Figure {
    /// A figure with no reference yet.
    pub fn new(group: &str, name: impl Into<String>, value: f64, unit: &str) -> Self {
        Self {
            group: group.to_owned(),
            name: name.into(),
            value: Some(value),
            unit: unit.to_owned(),
            reference: None,
            reference_value: None,
            ratio: None,
            target: None,
            met: None,
            note: None,
        }
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

    /// Sets the target and whether it is met.
    #[must_use]
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target.show(&self.unit));
        self.met = self.value.and_then(|v| target.met(v, self.ratio));
        self
    }

    /// Adds a note.
    #[must_use]
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
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

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    date: String,
    machine: Machine,
    tools: Tools,
    figures: Vec<Figure>,
    notes: Vec<String>,
    duration_s: f64,
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
    pub async fn new(tools: &Tools, dbs: &Databases) -> Self {
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
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            machine,
            tools: tools.clone(),
            figures: Vec::new(),
            notes: Vec::new(),
            duration_s: 0.0,
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

    /// Stamps how long the run took.
    pub fn finish(&mut self, took: Duration) {
        self.duration_s = took.as_secs_f64();
    }

    /// Prints the table.
    pub fn print(&self) {
        println!();
        println!(
            "collex-db bench, {} ({} cores, {})",
            self.date, self.machine.cores, self.machine.cpu
        );
        let header = [
            "group",
            "figure",
            "value",
            "reference",
            "ref value",
            "ratio",
            "target",
            "met",
        ];
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
        rows.extend(self.figures.iter().map(row));
        let widths: Vec<usize> = (0..header.len())
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        for (n, r) in rows.iter().enumerate() {
            let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            println!("{}", line.join("  "));
            if n == 0 {
                println!(
                    "{}",
                    "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
                );
            }
        }
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
        println!("took {:.0} s", self.duration_s);
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
            "Run of {} on {} cores ({}), {} RAM, Linux {}, {}. Took {:.0} s.\n\n",
            self.date,
            self.machine.cores,
            self.machine.cpu,
            self.machine.memory,
            self.machine.kernel,
            self.machine.postgres.split(" on ").next().unwrap_or(""),
            self.duration_s
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

fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn row(f: &Figure) -> Vec<String> {
    let with_unit = |v: Option<f64>| match v {
        Some(v) => format!("{} {}", num(v), f.unit),
        None => "-".to_owned(),
    };
    vec![
        f.group.clone(),
        f.name.clone(),
        match f.value {
            Some(v) => format!("{} {}", num(v), f.unit),
            None => "MISSING".to_owned(),
        },
        f.reference.clone().unwrap_or_else(|| "-".into()),
        with_unit(f.reference_value),
        f.ratio.map_or_else(|| "-".into(), |r| format!("{r:.2}x")),
        f.target.clone().unwrap_or_else(|| "-".into()),
        match f.met {
            Some(true) => "yes".into(),
            Some(false) => "NO".into(),
            None => "-".into(),
        },
    ]
}
