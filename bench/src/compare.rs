//! `--compare FILE` and `collex-bench compare BEFORE AFTER`: each figure of one results.json against the same
//! figure (same group, name and reference) of an earlier one, with the change and a verdict on whether it is noise.
//!
//! The verdict judges the ratio to the same-run reference when both files have one (ratios survive a
//! different machine load; raw values do not), else the value. A change is `within noise` when the two runs'
//! min–max spreads overlap; files written before spreads existed (format 1) have single values, so a change
//! against them is judged by the later run's spread alone.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::report::{Figure, table, with_spread};

/// What `--compare` reads of a results.json (any format: absent fields are empty).
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct Results {
    /// Layout version (absent before 2).
    pub format: Option<u32>,
    /// When the run was made.
    pub date: Option<String>,
    /// The run's windows and rounds (absent before format 2).
    pub settings: Option<crate::report::Settings>,
    /// Every figure.
    pub figures: Vec<Figure>,
}

/// Reads a results.json.
///
/// # Errors
/// When the file cannot be read or is not a collex-bench results file; the message names the file.
pub fn load(path: &Path) -> anyhow::Result<Results> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the results file {}", path.display()))?;
    let results: Results = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a collex-bench results.json (expected a JSON object with a \"figures\" list)",
            path.display()
        )
    })?;
    if results.figures.is_empty() {
        anyhow::bail!(
            "{} holds no figures: expected a results.json written by `collex-bench run`",
            path.display()
        );
    }
    Ok(results)
}

/// How a figure moved between two runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The two runs' spreads overlap (or the earlier single value lies in the later spread).
    Noise,
    /// Higher than the earlier run, outside the spreads.
    Higher,
    /// Lower than the earlier run, outside the spreads.
    Lower,
    /// Neither run has a spread: the change cannot be told from noise.
    Unknown,
}

impl Verdict {
    fn show(self) -> &'static str {
        match self {
            Verdict::Noise => "within noise",
            Verdict::Higher => "higher",
            Verdict::Lower => "lower",
            Verdict::Unknown => "no spread to judge",
        }
    }
}

/// Judges `now` against `before`, each a median and maybe a spread.
pub fn verdict(before: (f64, Option<[f64; 2]>), now: (f64, Option<[f64; 2]>)) -> Verdict {
    let interval = |(v, s): (f64, Option<[f64; 2]>)| s.unwrap_or([v, v]);
    if before.1.is_none() && now.1.is_none() {
        return if before.0 == now.0 {
            Verdict::Noise
        } else {
            Verdict::Unknown
        };
    }
    let [b_lo, b_hi] = interval(before);
    let [n_lo, n_hi] = interval(now);
    if n_lo <= b_hi && b_lo <= n_hi {
        Verdict::Noise
    } else if now.0 > before.0 {
        Verdict::Higher
    } else {
        Verdict::Lower
    }
}

fn percent(before: f64, now: f64) -> String {
    if before == 0.0 || !before.is_finite() || !now.is_finite() {
        return "-".into();
    }
    format!("{:+.1}%", (now / before - 1.0) * 100.0)
}

fn ratio_text(r: Option<f64>, s: Option<[f64; 2]>) -> String {
    match (r, s) {
        (Some(r), Some([lo, hi])) => format!("{r:.2}x ({lo:.2}–{hi:.2})"),
        (Some(r), None) => format!("{r:.2}x"),
        (None, _) => "-".into(),
    }
}

fn value_text(f: &Figure) -> String {
    match f.value {
        Some(_) => with_spread(f.value, &f.unit, f.spread),
        None => "MISSING".into(),
    }
}

/// The comparison as text: a table of the figures both runs have, then the figures only one has.
pub fn render(before_path: &Path, before: &Results, after_name: &str, after: &Results) -> String {
    let mut out = format!(
        "\ncompare: {} ({}{}) -> {} ({}{})\n",
        before_path.display(),
        before.date.as_deref().unwrap_or("undated"),
        settings_text(before),
        after_name,
        after.date.as_deref().unwrap_or("undated"),
        settings_text(after),
    );
    let mut rows = vec![
        [
            "group",
            "figure",
            "before",
            "now",
            "change",
            "ratio before",
            "ratio now",
            "verdict",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect::<Vec<_>>(),
    ];
    // A figure is its group, name and reference: the same value may be set against several references.
    let key = |f: &Figure| (f.group.clone(), f.name.clone(), f.reference.clone());
    for now in &after.figures {
        let Some(old) = before.figures.iter().find(|o| key(o) == key(now)) else {
            continue;
        };
        // Ratios when both have one: they carry the same-run reference; raw values move with the machine.
        let judged = match (old.ratio, now.ratio) {
            (Some(b), Some(n)) => Some(verdict((b, old.ratio_spread), (n, now.ratio_spread))),
            _ => match (old.value, now.value) {
                (Some(b), Some(n)) => Some(verdict((b, old.spread), (n, now.spread))),
                _ => None,
            },
        };
        rows.push(vec![
            now.group.clone(),
            now.name.clone(),
            value_text(old),
            value_text(now),
            match (old.value, now.value) {
                (Some(b), Some(n)) => percent(b, n),
                _ => "-".into(),
            },
            ratio_text(old.ratio, old.ratio_spread),
            ratio_text(now.ratio, now.ratio_spread),
            judged.map_or("-", Verdict::show).to_owned(),
        ]);
    }
    out.push_str(&table(&rows));
    let only = |a: &Results, b: &Results| -> Vec<String> {
        a.figures
            .iter()
            .filter(|f| !b.figures.iter().any(|o| key(o) == key(f)))
            .map(|f| match &f.reference {
                Some(r) => format!("{} / {} (vs {r})", f.group, f.name),
                None => format!("{} / {}", f.group, f.name),
            })
            .collect()
    };
    for (label, names) in [
        ("only before", only(before, after)),
        ("only now", only(after, before)),
    ] {
        if !names.is_empty() {
            out.push_str(&format!("{label}: {}\n", names.join("; ")));
        }
    }
    out
}

fn settings_text(r: &Results) -> String {
    match &r.settings {
        Some(s) => format!(
            ", {} rounds of {:.1} s{}",
            s.rounds,
            s.window_s,
            if s.quick { ", quick" } else { "" }
        ),
        None => ", no spreads (format 1)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_spreads_are_noise() {
        assert_eq!(
            verdict((1.00, Some([0.95, 1.04])), (1.03, Some([1.01, 1.06]))),
            Verdict::Noise
        );
        assert_eq!(
            verdict((1.00, Some([0.97, 1.02])), (1.08, Some([1.05, 1.10]))),
            Verdict::Higher
        );
        assert_eq!(
            verdict((1.00, Some([0.97, 1.02])), (0.90, Some([0.88, 0.93]))),
            Verdict::Lower
        );
        // An earlier single value judged by the later spread alone.
        assert_eq!(verdict((0.95, None), (1.00, Some([0.94, 1.03]))), Verdict::Noise);
        assert_eq!(verdict((0.90, None), (1.00, Some([0.94, 1.03]))), Verdict::Higher);
        assert_eq!(verdict((0.90, None), (1.00, None)), Verdict::Unknown);
    }

    #[test]
    fn a_format_1_file_is_read() {
        let old = r#"{"date":"2026-11-27 04:41 UTC","figures":[{"group":"reads","name":"x","value":2.0,
            "unit":"reads/s","reference":"raw","reference_value":2.0,"ratio":1.0,"target":null,"met":null,
            "note":null}],"notes":[],"duration_s":201.0}"#;
        let r: Results = serde_json::from_str(old).expect("format 1 parses");
        assert_eq!(r.figures[0].ratio, Some(1.0));
        assert_eq!(r.figures[0].spread, None);
        let new = Results {
            figures: vec![Figure::new("reads", "x", 3.0, "reads/s").against("raw", Some(3.0))],
            ..Results::default()
        };
        let text = render(Path::new("old.json"), &r, "now", &new);
        assert!(text.contains("+50.0%"), "{text}");
    }
}
