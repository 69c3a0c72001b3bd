//! What the command line prints: a run's progress (to stdout, waits for the lock to stderr) and `status` as a
//! table or JSON. Each multi-line block goes out in one write: a plan or a table may have hundreds of lines.

use std::io::Write;
use std::time::Duration;

use migration::schema::diff::Drift;
use migration::{Direction, Event, State, StatusReport};

/// Prints one event of a run.
pub fn event(event: &Event<'_>) {
    match event {
        Event::WaitingForLock(w) => eprintln!(
            "waiting for the migration lock{}, for up to {}",
            w.holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default(),
            humantime::format_duration(w.timeout)
        ),
        Event::LockAcquired { waited } => eprintln!(
            "got the migration lock after {}; re-reading the history",
            humantime::format_duration(Duration::from_millis(
                u64::try_from(waited.as_millis()).unwrap_or(u64::MAX)
            ))
        ),
        Event::Plan { direction, steps } => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let head = match direction {
                Direction::Up => format!("applying {} migration(s):", steps.len()),
                Direction::Down => format!("rolling back {} migration(s), newest first:", steps.len()),
            };
            let _ = writeln!(out, "{head}");
            for (v, label) in *steps {
                let _ = writeln!(out, "  {v:03}  {label}");
            }
            let _ = out.flush();
        }
        Event::Done {
            direction,
            label,
            elapsed,
            ..
        } => {
            let verb = match direction {
                Direction::Up => "applied",
                Direction::Down => "rolled back",
            };
            println!("{verb} {label} ({} ms)", elapsed.as_millis());
        }
        Event::Dropped => println!("dropped every object in the schema"),
        _ => {}
    }
}

/// Prints `status` with the schema drift: a table, or JSON with a `drift` object next to the migrations.
pub fn status(report: &StatusReport, drift: &Drift, json: bool) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        let mut value = serde_json::to_value(report).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            let mut dv = serde_json::to_value(drift).unwrap_or_default();
            if let Some(m) = dv.as_object_mut() {
                m.insert("clean".to_owned(), serde_json::Value::Bool(drift.is_empty()));
            }
            map.insert("drift".to_owned(), dv);
        }
        let text = serde_json::to_string_pretty(&value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
        return;
    }
    let name_w = report
        .migrations
        .iter()
        .map(|m| m.file.as_deref().unwrap_or(&m.name).len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "{:<7}  {:<name_w$}  {:<7}  {:<24}  {:>9}  PROBLEMS",
        "VERSION", "FILE", "STATE", "APPLIED AT", "DURATION"
    );
    for m in &report.migrations {
        let state = match m.state {
            State::Applied => "applied",
            State::Pending => "pending",
        };
        let problems: Vec<&str> = m.problems.iter().map(|p| p.as_str()).collect();
        let _ = writeln!(
            out,
            "{:<7}  {:<name_w$}  {:<7}  {:<24}  {:>9}  {}",
            format!("{:03}", m.version),
            m.file.as_deref().unwrap_or(&m.name),
            state,
            m.applied_at.as_deref().unwrap_or("-"),
            m.execution_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms")),
            problems.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "{} applied, {} pending, {} with problems",
        report.applied, report.pending, report.problems
    );
    let lines = drift.lines();
    if lines.is_empty() {
        let _ = writeln!(out, "schema: matches the entities");
    } else {
        let _ = writeln!(
            out,
            "schema drift ({} difference(s) from the entities):",
            lines.len()
        );
        for l in lines {
            let _ = writeln!(out, "  {l}");
        }
    }
    let _ = out.flush();
}
