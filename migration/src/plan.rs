//! The plan: pure functions from the migrations ([`MigrationSet`]) and the history ([`AppliedRow`]s) to what a
//! command shows or runs: every migration's state ([`status`]), what `up` applies ([`pending`]), what `down`
//! rolls back ([`down_targets`]), and the SQL a dry run prints ([`script`]).
//!
//! Nothing here touches a database or a file, so every rule is unit-tested without one. Reading the history
//! is the backends' (`crate::backend`); running the plan is the runner's ([`crate::runner`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::MigrateError;
use crate::ledger::AppliedRow;
use crate::source::{Body, Migration, MigrationSet, SqlFile};

/// Which way a run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Applying.
    Up,
    /// Rolling back.
    Down,
}

/// Whether a migration is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Recorded in the history.
    Applied,
    /// Not recorded yet.
    Pending,
}

/// Something wrong with an applied migration, as `status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum HistoryProblem {
    /// Its file changed after it was applied.
    Modified,
    /// Its file is gone.
    Missing,
    /// It stopped part-way (no-transaction migration).
    Failed,
    /// Pending, and its file has no statement yet (a fresh `migration create` template).
    Empty,
}

impl HistoryProblem {
    /// Lower-case word used in text and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Modified => "modified",
            Self::Missing => "missing",
            Self::Failed => "failed",
            Self::Empty => "empty: fill it in",
        }
    }
}

/// One line of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusEntry {
    /// The version.
    pub version: u64,
    /// The name (from the file, else from the history).
    pub name: String,
    /// The file (or `rust:<name>`), `None` when missing.
    pub file: Option<String>,
    /// `sql` or `rust`.
    pub kind: String,
    /// Applied or pending.
    pub state: State,
    /// When it was applied.
    pub applied_at: Option<String>,
    /// How long it took, in milliseconds.
    pub execution_ms: Option<i64>,
    /// Who applied it.
    pub applied_by: Option<String>,
    /// Problems (empty when fine).
    pub problems: Vec<HistoryProblem>,
}

/// The result of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Every migration known to the files or the history, by version.
    pub migrations: Vec<StatusEntry>,
    /// How many are applied.
    pub applied: usize,
    /// How many are pending.
    pub pending: usize,
    /// How many have a problem.
    pub problems: usize,
}

/// How far `down` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownTarget {
    /// The latest `n` applied migrations.
    Steps(usize),
    /// Everything applied above this version (0: everything); the version itself stays.
    To(u64),
    /// This version and everything applied above it.
    Through(u64),
}

/// Which history problems `up` lets pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tolerance {
    /// Applied migrations whose file is gone.
    pub ignore_missing: bool,
    /// No-transaction migrations recorded as failed: they run again from scratch.
    pub retry_failed: bool,
}

/// Every migration of the files or the history with its state and problems.
pub fn status(set: &MigrationSet, history: &[AppliedRow]) -> StatusReport {
    let rows: BTreeMap<u64, &AppliedRow> = history.iter().map(|r| (r.version, r)).collect();
    let versions: BTreeSet<u64> = rows
        .keys()
        .copied()
        .chain(set.migrations().iter().map(|m| m.version))
        .collect();
    let mut migrations = Vec::with_capacity(versions.len());
    for v in versions {
        let m = set.get(v);
        let row = rows.get(&v).copied();
        let mut problems = Vec::new();
        if let Some(r) = row {
            match m {
                None => problems.push(HistoryProblem::Missing),
                Some(m) if !m.checksum_matches(&r.checksum) => problems.push(HistoryProblem::Modified),
                Some(_) => {}
            }
            if !r.success {
                problems.push(HistoryProblem::Failed);
            }
        } else if let Some(Migration {
            body: Body::Sql { forward, .. },
            ..
        }) = m
            && forward.is_empty()
        {
            problems.push(HistoryProblem::Empty);
        }
        migrations.push(StatusEntry {
            version: v,
            name: m.map_or_else(
                || row.map(|r| r.name.clone()).unwrap_or_default(),
                |m| m.name.clone(),
            ),
            file: m.map(Migration::label),
            kind: m.map_or_else(
                || row.map(|r| r.kind.clone()).unwrap_or_default(),
                |m| m.kind().to_owned(),
            ),
            state: if row.is_some() {
                State::Applied
            } else {
                State::Pending
            },
            applied_at: row.map(|r| r.applied_at.clone()),
            execution_ms: row.map(|r| r.execution_ms),
            applied_by: row.map(|r| r.applied_by.clone()),
            problems,
        });
    }
    StatusReport {
        applied: migrations.iter().filter(|e| e.state == State::Applied).count(),
        pending: migrations.iter().filter(|e| e.state == State::Pending).count(),
        problems: migrations.iter().filter(|e| !e.problems.is_empty()).count(),
        migrations,
    }
}

/// What `up` applies, in version order: at most `limit`, none above `up_to`.
///
/// # Errors
/// Every applied migration that was modified, is missing (unless tolerated) or failed part-way (unless
/// retried), at once.
pub fn pending<'s>(
    set: &'s MigrationSet,
    history: &[AppliedRow],
    tolerance: Tolerance,
    limit: Option<usize>,
    up_to: Option<u64>,
) -> Result<Vec<&'s Migration>, MigrateError> {
    let mut errors = Vec::new();
    let mut applied = BTreeSet::new();
    for r in history {
        let m = set.get(r.version);
        if !r.success {
            // Not applied: with --retry-failed it runs again from scratch (edited file included).
            if !tolerance.retry_failed {
                errors.push(MigrateError::PreviouslyFailed {
                    version: r.version,
                    file: m.map_or_else(|| r.name.clone(), Migration::label),
                });
            }
            continue;
        }
        match m {
            None if !tolerance.ignore_missing => errors.push(MigrateError::MissingFile {
                version: r.version,
                name: r.name.clone(),
            }),
            Some(m) if !m.checksum_matches(&r.checksum) => errors.push(MigrateError::ChecksumMismatch {
                version: r.version,
                file: m.label(),
            }),
            _ => {}
        }
        applied.insert(r.version);
    }
    let pending: Vec<&Migration> = set
        .migrations()
        .iter()
        .filter(|m| !applied.contains(&m.version) && up_to.is_none_or(|u| m.version <= u))
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    for m in &pending {
        if let Body::Sql { forward, .. } = &m.body
            && let Err(e) = forward.require_statements()
        {
            errors.push(e);
        }
    }
    MigrateError::from_many(errors)?;
    Ok(pending)
}

/// What `down` rolls back, newest first.
///
/// # Errors
/// [`MigrateError::UnknownVersion`] for a version that names no migration (or is not applied, for
/// `Through`); [`MigrateError::Irreversible`] for every chosen migration without a rollback, at once.
pub fn down_targets<'s>(
    set: &'s MigrationSet,
    history: &[AppliedRow],
    target: DownTarget,
) -> Result<Vec<&'s Migration>, MigrateError> {
    let mut applied: Vec<&AppliedRow> = history.iter().collect();
    applied.sort_by_key(|r| std::cmp::Reverse(r.version));
    let chosen: Vec<&AppliedRow> = match target {
        DownTarget::Steps(n) => applied.into_iter().take(n).collect(),
        DownTarget::To(v) => {
            if v != 0 && set.get(v).is_none() && !applied.iter().any(|r| r.version == v) {
                return Err(MigrateError::UnknownVersion {
                    version: v,
                    what: "names no migration: expected 0 or the version of a migration",
                });
            }
            applied.into_iter().filter(|r| r.version > v).collect()
        }
        DownTarget::Through(v) => {
            if !applied.iter().any(|r| r.version == v) {
                return Err(MigrateError::UnknownVersion {
                    version: v,
                    what: "is not applied: expected the version of an applied migration",
                });
            }
            applied.into_iter().filter(|r| r.version >= v).collect()
        }
    };
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(chosen.len());
    for r in chosen {
        match set.get(r.version) {
            None => errors.push(MigrateError::Irreversible {
                version: r.version,
                file: r.name.clone(),
                reason: "its migration file is missing".to_owned(),
            }),
            Some(
                m @ Migration {
                    body: Body::Sql { rollback: None, .. },
                    ..
                },
            ) => errors.push(MigrateError::Irreversible {
                version: r.version,
                file: m.label(),
                reason: format!(
                    "there is no {:0w$}_rollback.sql file",
                    r.version,
                    w = set.digits()
                ),
            }),
            Some(Migration {
                body: Body::Sql {
                    rollback: Some(file), ..
                },
                ..
            }) if file.is_empty() => errors.push(MigrateError::Empty {
                file: file.path.clone(),
            }),
            Some(m) => out.push(m),
        }
    }
    MigrateError::from_many(errors)?;
    Ok(out)
}

/// The SQL a dry run prints for `steps`, in order: each file's text under a line saying what it is and
/// whether it runs in a transaction.
pub fn script(direction: Direction, steps: &[&Migration]) -> String {
    let word = match direction {
        Direction::Up => "up",
        Direction::Down => "down",
    };
    let mut out = String::new();
    for m in steps {
        let file = match (&m.body, direction) {
            (Body::Sql { forward, .. }, Direction::Up) => Some(forward),
            (Body::Sql { rollback, .. }, Direction::Down) => rollback.as_ref(),
            _ => None,
        };
        match file {
            Some(file) => script_part(&mut out, word, m.version, file),
            None => out.push_str(&format!(
                "-- {word} {:03} {}: a Rust migration; its statements are built when it runs\n\n",
                m.version,
                m.label()
            )),
        }
    }
    out
}

fn script_part(out: &mut String, word: &str, version: u64, file: &SqlFile) {
    let how = if file.no_transaction {
        "without a transaction (-- migrate:no-transaction)"
    } else {
        "in its own transaction"
    };
    out.push_str(&format!("-- {word} {version:03} {}: {how}\n", file.file_name));
    out.push_str(file.sql.trim_end());
    out.push_str("\n\n");
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::source::{SqlFile, SqlMigration};

    fn file(name: &str, version: u64, sql: &str) -> SqlFile {
        SqlFile::from_bytes(Path::new(name), version, sql.as_bytes().to_vec()).expect("a valid file")
    }

    /// Versions 1..=n, each `CREATE TABLE tN`, with a rollback unless `without_rollback` names it.
    fn set(n: u64, without_rollback: &[u64]) -> MigrationSet {
        let sql = (1..=n)
            .map(|v| SqlMigration {
                version: v,
                name: format!("t{v}"),
                forward: file(
                    &format!("{v:03}_t{v}.sql"),
                    v,
                    &format!("CREATE TABLE t{v} (id int);"),
                ),
                rollback: (!without_rollback.contains(&v))
                    .then(|| file(&format!("{v:03}_rollback.sql"), v, &format!("DROP TABLE t{v};"))),
            })
            .collect();
        MigrationSet::new(sql, Vec::new()).expect("unique versions")
    }

    fn row(set: &MigrationSet, version: u64) -> AppliedRow {
        AppliedRow {
            version,
            name: format!("t{version}"),
            kind: "sql".to_owned(),
            checksum: set.get(version).map(Migration::checksum).unwrap_or_default(),
            applied_at: "2026-01-01T00:00:00.000Z".to_owned(),
            execution_ms: 1,
            applied_by: "u@h".to_owned(),
            success: true,
        }
    }

    fn versions(ms: &[&Migration]) -> Vec<u64> {
        ms.iter().map(|m| m.version).collect()
    }

    #[test]
    fn status_lists_files_and_history_with_their_problems() {
        let s = set(3, &[]);
        let mut edited = row(&s, 1);
        edited.checksum = "other".to_owned();
        let mut half = row(&s, 2);
        half.success = false;
        let mut gone = row(&s, 9);
        gone.name = "gone".to_owned();
        let report = status(&s, &[edited, half, gone]);
        assert_eq!((report.applied, report.pending, report.problems), (3, 1, 3));
        let problems: Vec<(u64, Vec<HistoryProblem>)> = report
            .migrations
            .iter()
            .map(|m| (m.version, m.problems.clone()))
            .collect();
        assert_eq!(
            problems,
            [
                (1, vec![HistoryProblem::Modified]),
                (2, vec![HistoryProblem::Failed]),
                (3, vec![]),
                (9, vec![HistoryProblem::Missing]),
            ]
        );
        assert_eq!(report.migrations[3].name, "gone");
        assert_eq!(report.migrations[3].file, None);
        assert_eq!(report.migrations[2].state, State::Pending);
    }

    #[test]
    fn pending_is_what_is_not_applied_within_limit_and_bound() {
        let s = set(5, &[]);
        let history = [row(&s, 1), row(&s, 3)];
        let all = pending(&s, &history, Tolerance::default(), None, None).expect("valid");
        assert_eq!(versions(&all), [2, 4, 5]);
        let two = pending(&s, &history, Tolerance::default(), Some(2), None).expect("valid");
        assert_eq!(versions(&two), [2, 4]);
        let bounded = pending(&s, &history, Tolerance::default(), None, Some(4)).expect("valid");
        assert_eq!(versions(&bounded), [2, 4]);
    }

    #[test]
    fn an_empty_template_is_listed_by_status_and_refused_by_up_and_down() {
        let template = "-- Migration: Add Foo\n-- Version: 002\n\n-- Add your migration SQL here\n";
        let mut sql = vec![SqlMigration {
            version: 1,
            name: "t1".into(),
            forward: file("001_t1.sql", 1, "CREATE TABLE t1 (id int);"),
            rollback: Some(file(
                "001_rollback.sql",
                1,
                "-- Add the SQL that undoes 001 here\n",
            )),
        }];
        sql.push(SqlMigration {
            version: 2,
            name: "add_foo".into(),
            forward: file("002_add_foo.sql", 2, template),
            rollback: None,
        });
        let s = MigrationSet::new(sql, Vec::new()).expect("valid");
        let report = status(&s, &[]);
        assert_eq!(report.migrations[1].problems, vec![HistoryProblem::Empty]);
        assert_eq!(HistoryProblem::Empty.as_str(), "empty: fill it in");
        let err = pending(&s, &[], Tolerance::default(), None, None).expect_err("refused");
        assert!(err.to_string().contains("002_add_foo.sql` is empty"), "{err}");
        assert_eq!(
            pending(&s, &[], Tolerance::default(), Some(1), None)
                .map(|p| p.len())
                .ok(),
            Some(1)
        );
        let applied = [row(&s, 1)];
        let err = down_targets(&s, &applied, DownTarget::Steps(1)).expect_err("empty rollback");
        assert!(err.to_string().contains("001_rollback.sql` is empty"), "{err}");
    }

    #[test]
    fn pending_refuses_every_modified_missing_or_failed_migration_at_once() {
        let s = set(3, &[]);
        let mut edited = row(&s, 1);
        edited.checksum = "other".to_owned();
        let mut failed = row(&s, 2);
        failed.success = false;
        let gone = row(&s, 7);
        let err = pending(
            &s,
            &[edited.clone(), failed.clone(), gone.clone()],
            Tolerance::default(),
            None,
            None,
        )
        .expect_err("three problems");
        let MigrateError::Invalid(all) = err else {
            panic!("expected every problem: {err}")
        };
        assert!(matches!(
            all[0],
            MigrateError::ChecksumMismatch { version: 1, .. }
        ));
        assert!(matches!(
            all[1],
            MigrateError::PreviouslyFailed { version: 2, .. }
        ));
        assert!(matches!(all[2], MigrateError::MissingFile { version: 7, .. }));

        let tolerant = Tolerance {
            ignore_missing: true,
            retry_failed: true,
        };
        let err =
            pending(&s, &[edited, failed.clone(), gone.clone()], tolerant, None, None).expect_err("modified");
        assert!(
            matches!(err, MigrateError::ChecksumMismatch { version: 1, .. }),
            "{err}"
        );
        // A retried migration runs again; a missing one counts as applied.
        let again = pending(&s, &[row(&s, 1), failed, gone], tolerant, None, None).expect("tolerated");
        assert_eq!(versions(&again), [2, 3]);
    }

    #[test]
    fn down_targets_go_newest_first_to_the_bound_asked_for() {
        let s = set(4, &[]);
        let history = [row(&s, 1), row(&s, 2), row(&s, 3)];
        let latest = down_targets(&s, &history, DownTarget::Steps(1)).expect("valid");
        assert_eq!(versions(&latest), [3]);
        let to = down_targets(&s, &history, DownTarget::To(1)).expect("valid");
        assert_eq!(versions(&to), [3, 2]);
        let all = down_targets(&s, &history, DownTarget::To(0)).expect("valid");
        assert_eq!(versions(&all), [3, 2, 1]);
        let through = down_targets(&s, &history, DownTarget::Through(2)).expect("valid");
        assert_eq!(versions(&through), [3, 2]);
        assert!(matches!(
            down_targets(&s, &history, DownTarget::Through(4)),
            Err(MigrateError::UnknownVersion { version: 4, .. })
        ));
        assert!(matches!(
            down_targets(&s, &history, DownTarget::To(8)),
            Err(MigrateError::UnknownVersion { version: 8, .. })
        ));
    }

    #[test]
    fn down_targets_refuse_migrations_that_cannot_be_rolled_back() {
        let s = set(3, &[2]);
        let history = [row(&s, 1), row(&s, 2), row(&s, 3), row(&s, 9)];
        let err = down_targets(&s, &history, DownTarget::To(0)).expect_err("two irreversible");
        let text = err.to_string();
        assert!(
            text.contains("009") && text.contains("its migration file is missing"),
            "{text}"
        );
        assert!(text.contains("there is no 002_rollback.sql file"), "{text}");
        assert!(matches!(
            down_targets(&s, &history, DownTarget::Through(3)),
            Err(MigrateError::Irreversible { version: 9, .. })
        ));
        let fine = down_targets(&s, &history[..3], DownTarget::Through(3)).expect("3 has a rollback");
        assert_eq!(versions(&fine), [3]);
    }

    #[test]
    fn a_dry_run_script_shows_each_file_in_order_with_how_it_runs() {
        let s = set(2, &[]);
        let up = script(Direction::Up, &s.migrations().iter().collect::<Vec<_>>());
        assert_eq!(
            up,
            "-- up 001 001_t1.sql: in its own transaction\nCREATE TABLE t1 (id int);\n\n\
             -- up 002 002_t2.sql: in its own transaction\nCREATE TABLE t2 (id int);\n\n"
        );
        let down = script(Direction::Down, &s.migrations().iter().rev().collect::<Vec<_>>());
        assert!(
            down.starts_with("-- down 002 002_rollback.sql: in its own transaction\nDROP TABLE t2;"),
            "{down}"
        );
    }
}
