//! Query timing: every statement the service's connection runs, through `entity::Repo` or through SeaORM on
//! [`crate::Db`], counted and timed by table, operation and outcome; the slow-query log; the slowest recent
//! statements for the dashboard.
//!
//! Owns the label rules, the series table, the slow-query threshold (`DB_SLOW_QUERY_THRESHOLD`) and SQL
//! normalization. The labels cannot be invented by input: `db_collection_name` is one of the registered
//! entities' tables (`entity::registry`) or `other`, `db_operation_name` one of five kinds, `outcome` one
//! of four, so there are at most (tables + 1) × 5 × 4 series, allocated up front and filled with atomics.
//! No SQL text and no value is ever a label. The slow-query log and the slowest statements show the SQL
//! with its placeholders and with any literal written into the text replaced by `?` ([`normalize`]): bound
//! values and literals may be personal data.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use entity::{Observation, Observer, Op, OpKind, Outcome};
use sea_orm::{DbErr, RuntimeErr};
use serde::Serialize;

use crate::histogram::Histogram;

/// `db_collection_name` of a statement on no registered entity's table.
pub const OTHER: &str = "other";
/// The `db_operation_name` labels, in index order.
pub const OPERATIONS: [&str; 5] = ["select", "insert", "update", "delete", "other"];
/// The `outcome` labels, in index order.
pub const OUTCOMES: [&str; 4] = ["ok", "error", "stale_version", "timeout"];
/// How many of the slowest recent statements are kept.
pub const SLOWEST_KEPT: usize = 10;
/// The longest SQL text kept for the log and the dashboard, in characters.
const SQL_MAX: usize = 2000;

/// The registered entities' tables, in registry order: the only collection labels besides [`OTHER`].
pub fn tables() -> &'static [&'static str] {
    static TABLES: OnceLock<Vec<&'static str>> = OnceLock::new();
    TABLES.get_or_init(|| entity::registry::all().iter().map(|m| m.table).collect())
}

fn op_index(k: OpKind) -> usize {
    match k {
        OpKind::Select => 0,
        OpKind::Insert => 1,
        OpKind::Update => 2,
        OpKind::Delete => 3,
        _ => 4,
    }
}

fn outcome_index(o: Outcome) -> usize {
    match o {
        Outcome::Ok => 0,
        Outcome::StaleVersion => 2,
        Outcome::Timeout => 3,
        _ => 1,
    }
}

/// One of the slowest recent statements.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlowStatement {
    /// Table label.
    pub entity: &'static str,
    /// Operation label.
    pub operation: &'static str,
    /// Outcome label.
    pub outcome: &'static str,
    /// Milliseconds.
    pub duration_ms: f64,
    /// Rows returned or affected.
    pub rows: u64,
    /// Normalized SQL.
    pub sql: String,
    /// When it ended, seconds since the Unix epoch.
    pub at: f64,
}

/// The slowest statements of the current and of the previous window ([`QueryMetrics::rotate`]), so the
/// list shows recent ones, not the slowest since start.
#[derive(Debug, Default)]
struct Slowest {
    current: Vec<SlowStatement>,
    previous: Vec<SlowStatement>,
}

/// The query timing series; the service's [`crate::Db`] reports to it. Shared by every pool of the service.
#[derive(Debug)]
pub struct QueryMetrics {
    series: Box<[Histogram]>,
    slow: Box<[AtomicU64]>,
    slow_threshold_nanos: AtomicU64,
    slowest: Mutex<Slowest>,
    /// The shortest duration in a full `current` list: a statement faster than this takes no lock.
    floor_nanos: AtomicU64,
}

impl Default for QueryMetrics {
    fn default() -> Self {
        Self::new(config::app::DEFAULT_SLOW_QUERY_THRESHOLD)
    }
}

impl QueryMetrics {
    /// Empty series; statements at or above `slow_threshold` are logged (zero logs none).
    pub fn new(slow_threshold: Duration) -> Self {
        let collections = tables().len() + 1;
        Self {
            series: (0..collections * OPERATIONS.len() * OUTCOMES.len())
                .map(|_| Histogram::default())
                .collect(),
            slow: (0..collections * OPERATIONS.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            slow_threshold_nanos: AtomicU64::new(nanos(slow_threshold)),
            slowest: Mutex::default(),
            floor_nanos: AtomicU64::new(0),
        }
    }

    /// Sets `DB_SLOW_QUERY_THRESHOLD`; zero turns the slow-query log off.
    pub fn set_slow_threshold(&self, d: Duration) {
        self.slow_threshold_nanos.store(nanos(d), Ordering::Relaxed);
    }

    /// The slow-query threshold (zero: off).
    pub fn slow_threshold(&self) -> Duration {
        Duration::from_nanos(self.slow_threshold_nanos.load(Ordering::Relaxed))
    }

    /// The index of `table`'s collection label: its place among [`tables`], else [`OTHER`]'s.
    fn collection(table: &str) -> usize {
        let known = tables();
        known.iter().position(|t| *t == table).unwrap_or(known.len())
    }

    fn label(collection: usize) -> &'static str {
        tables().get(collection).copied().unwrap_or(OTHER)
    }

    /// The `db_collection_name` of a collection index (a registered table, or [`OTHER`] past them).
    pub fn collection_label(&self, collection: usize) -> &'static str {
        Self::label(collection)
    }

    /// Every histogram, by (collection, operation, outcome) in index order: [`OUTCOMES`] vary fastest, then
    /// [`OPERATIONS`], then the collections of [`tables`] and [`OTHER`] last.
    pub fn histograms(&self) -> &[Histogram] {
        &self.series
    }

    /// The count of every histogram, in [`QueryMetrics::histograms`]' order.
    pub fn counts(&self) -> Vec<u64> {
        self.series.iter().map(Histogram::count).collect()
    }

    /// The histogram of one (table, operation, outcome); `table` outside the registry counts as `other`.
    pub fn histogram(&self, table: &str, op: OpKind, outcome: Outcome) -> &Histogram {
        let i = (Self::collection(table) * OPERATIONS.len() + op_index(op)) * OUTCOMES.len()
            + outcome_index(outcome);
        &self.series[i]
    }

    /// Statements so far at or above the threshold.
    pub fn slow_total(&self) -> u64 {
        self.slow.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }

    /// Records one statement, with its collection given as a label index.
    fn record(&self, collection: usize, o: &Observation<'_>) {
        let op = op_index(o.op.kind);
        let outcome = refine(o.outcome, o.error);
        let i = (collection * OPERATIONS.len() + op) * OUTCOMES.len() + outcome_index(outcome);
        self.series[i].observe(o.elapsed);
        let took = nanos(o.elapsed);
        let threshold = self.slow_threshold_nanos.load(Ordering::Relaxed);
        let slow = threshold > 0 && took >= threshold;
        let ranked = took > self.floor_nanos.load(Ordering::Relaxed);
        if !slow && !ranked {
            return;
        }
        let sql = normalize(o.sql);
        let entry = SlowStatement {
            entity: Self::label(collection),
            operation: OPERATIONS[op],
            outcome: outcome.as_str(),
            duration_ms: o.elapsed.as_secs_f64() * 1000.0,
            rows: o.rows,
            sql,
            at: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        };
        if slow {
            self.slow[collection * OPERATIONS.len() + op].fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target: "collex::slow_query",
                entity = entry.entity,
                operation = entry.operation,
                outcome = entry.outcome,
                duration_ms = entry.duration_ms,
                rows = entry.rows,
                threshold_ms = threshold as f64 / 1e6,
                sql = %entry.sql,
                "slow query"
            );
        }
        if ranked {
            self.rank(entry);
        }
    }

    fn rank(&self, entry: SlowStatement) {
        let Ok(mut s) = self.slowest.lock() else {
            return;
        };
        let list = &mut s.current;
        list.push(entry);
        list.sort_by(|a, b| b.duration_ms.total_cmp(&a.duration_ms));
        list.truncate(SLOWEST_KEPT);
        if list.len() == SLOWEST_KEPT
            && let Some(last) = list.last()
        {
            self.floor_nanos
                .store((last.duration_ms * 1e6) as u64, Ordering::Relaxed);
        }
    }

    /// Starts a new window of slowest statements: the current list becomes the previous one.
    pub fn rotate(&self) {
        if let Ok(mut s) = self.slowest.lock() {
            s.previous = std::mem::take(&mut s.current);
            self.floor_nanos.store(0, Ordering::Relaxed);
        }
    }

    /// The slowest statements of the last two windows, slowest first.
    pub fn slowest(&self) -> Vec<SlowStatement> {
        let Ok(s) = self.slowest.lock() else {
            return Vec::new();
        };
        let mut all: Vec<SlowStatement> = s.current.iter().chain(&s.previous).cloned().collect();
        all.sort_by(|a, b| b.duration_ms.total_cmp(&a.duration_ms));
        all.truncate(SLOWEST_KEPT);
        all
    }

    /// Every series with at least one observation: (table, operation, outcome, histogram).
    pub fn series(&self) -> impl Iterator<Item = (&'static str, &'static str, &'static str, &Histogram)> {
        self.series
            .iter()
            .enumerate()
            .filter(|(_, h)| h.count() > 0)
            .map(|(i, h)| {
                let outcome = i % OUTCOMES.len();
                let op = (i / OUTCOMES.len()) % OPERATIONS.len();
                let collection = i / (OUTCOMES.len() * OPERATIONS.len());
                (Self::label(collection), OPERATIONS[op], OUTCOMES[outcome], h)
            })
    }

    /// Appends the Prometheus families.
    pub fn render(&self, out: &mut String, family: fn(&mut String, &str, &str, &str)) {
        family(
            out,
            "db_client_operation_duration_seconds",
            "histogram",
            "Duration of database statements, from asking for a connection to the result, by table \
             (db_collection_name: a registered entity or other), operation and outcome (OpenTelemetry \
             db.client.operation.duration).",
        );
        for (collection, op, outcome, h) in self.series() {
            let labels = format!(
                "db_collection_name=\"{collection}\",db_operation_name=\"{op}\",outcome=\"{outcome}\""
            );
            h.render(out, "db_client_operation_duration_seconds", &labels);
        }
        family(
            out,
            "db_client_slow_queries_total",
            "counter",
            "Statements that took DB_SLOW_QUERY_THRESHOLD or longer (each also logged once), by table and operation.",
        );
        let mut any = false;
        for (i, n) in self.slow.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            any = true;
            let _ = writeln!(
                out,
                "db_client_slow_queries_total{{db_collection_name=\"{}\",db_operation_name=\"{}\"}} {n}",
                Self::label(i / OPERATIONS.len()),
                OPERATIONS[i % OPERATIONS.len()]
            );
        }
        if !any {
            // One zero series, so `rate()` over it is defined from the first scrape.
            let _ = writeln!(
                out,
                "db_client_slow_queries_total{{db_collection_name=\"{OTHER}\",db_operation_name=\"other\"}} 0"
            );
        }
        family(
            out,
            "db_client_slow_query_threshold_seconds",
            "gauge",
            "DB_SLOW_QUERY_THRESHOLD (0: the slow-query log is off).",
        );
        let _ = writeln!(
            out,
            "db_client_slow_query_threshold_seconds {}",
            self.slow_threshold().as_secs_f64()
        );
    }

    /// Records a statement that ran through SeaORM on the service's connection: its table and operation
    /// are read from the SQL text (and kept only when the table is a registered entity's).
    pub(crate) fn observe_sql(
        &self,
        sql: &str,
        elapsed: Duration,
        rows: u64,
        outcome: Outcome,
        error: Option<&DbErr>,
    ) {
        let (kind, table) = classify(sql);
        let collection = table.map_or(tables().len(), Self::collection);
        self.record(
            collection,
            &Observation {
                op: Op::new(OTHER, kind),
                sql,
                elapsed,
                rows,
                outcome,
                error,
            },
        );
    }
}

impl Observer for QueryMetrics {
    fn observe(&self, o: &Observation<'_>) {
        self.record(Self::collection(o.op.entity), o);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The pool's own timeouts reach SeaORM as a connection error carrying the pool's message: they are
/// timeouts too.
fn refine(outcome: Outcome, error: Option<&DbErr>) -> Outcome {
    match (outcome, error) {
        (Outcome::Error, Some(DbErr::Conn(RuntimeErr::Internal(m))))
            if crate::pool::is_timeout_message(m) =>
        {
            Outcome::Timeout
        }
        (o, _) => o,
    }
}

/// The operation of `sql` from its first keyword, and the table it names right after `INSERT INTO`,
/// `UPDATE`, `DELETE FROM` or a `SELECT`'s first `FROM` (unquoted, without a schema).
pub fn classify(sql: &str) -> (OpKind, Option<&str>) {
    let mut words = Words::new(sql);
    let Some(first) = words.next() else {
        return (OpKind::Other, None);
    };
    let kind = match first.to_ascii_lowercase().as_str() {
        "select" => OpKind::Select,
        "insert" => OpKind::Insert,
        "update" => OpKind::Update,
        "delete" => OpKind::Delete,
        _ => return (OpKind::Other, None),
    };
    let table = match kind {
        OpKind::Update => words.next(),
        _ => words
            .find(|w| {
                let w = w.to_ascii_lowercase();
                w == "from" || w == "into"
            })
            .and_then(|_| words.next()),
    };
    (kind, table.map(unqualified))
}

/// `"public"."users"` → `users`.
fn unqualified(name: &str) -> &str {
    let last = name.rsplit('.').next().unwrap_or(name);
    last.trim_matches('"').trim_matches('`')
}

/// The words of a SQL text outside quoted strings: identifiers (quoted ones kept with their quotes,
/// qualified ones with their dots) and keywords.
struct Words<'a> {
    rest: &'a str,
}

impl<'a> Words<'a> {
    fn new(s: &'a str) -> Self {
        Self { rest: s }
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let s = self
                .rest
                .trim_start_matches(|c: char| !(c.is_alphanumeric() || c == '_' || c == '"' || c == '\''));
            let first = s.chars().next()?;
            if first == '\'' {
                // Skip a string literal ('' inside it is a quote).
                let mut end = 1;
                let bytes = s.as_bytes();
                while end < bytes.len() {
                    if bytes[end] == b'\'' {
                        if bytes.get(end + 1) == Some(&b'\'') {
                            end += 2;
                            continue;
                        }
                        break;
                    }
                    end += 1;
                }
                self.rest = s.get(end + 1..).unwrap_or("");
                continue;
            }
            let mut end = 0;
            let mut quoted = false;
            for (i, c) in s.char_indices() {
                if c == '"' {
                    quoted = !quoted;
                } else if !(quoted || c.is_alphanumeric() || c == '_' || c == '.' || c == '$') {
                    break;
                }
                end = i + c.len_utf8();
            }
            self.rest = &s[end..];
            return Some(&s[..end]);
        }
    }
}

/// `sql` fit for a log line: string literals become `'?'`, numbers outside identifiers `?`, runs of
/// whitespace one space; placeholders (`$1`, `?`) and identifiers stay. At most [`SQL_MAX`] characters.
pub fn normalize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len().min(SQL_MAX));
    let mut chars = sql.chars().peekable();
    // What the previous character makes of a digit: part of a word ($1, t1) or a literal.
    let mut in_word = false;
    let mut space = false;
    while let Some(c) = chars.next() {
        if out.len() >= SQL_MAX {
            out.push('…');
            break;
        }
        if c.is_whitespace() {
            space = true;
            in_word = false;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        match c {
            '\'' => {
                // A string literal ('' inside it is a quote).
                while let Some(d) = chars.next() {
                    if d == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                            continue;
                        }
                        break;
                    }
                }
                out.push_str("'?'");
                in_word = false;
            }
            '"' => {
                out.push('"');
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '"' {
                        break;
                    }
                }
                in_word = true;
            }
            c if c.is_ascii_digit() && !in_word => {
                while chars
                    .peek()
                    .is_some_and(|d| d.is_ascii_digit() || *d == '.' || *d == 'e' || *d == 'E')
                {
                    chars.next();
                }
                out.push('?');
            }
            c => {
                out.push(c);
                in_word = c.is_alphanumeric() || c == '_' || c == '$';
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_sql_keeps_placeholders_and_hides_literals() {
        assert_eq!(
            normalize(
                "SELECT  pg_sleep($1), 'card 4111-1111', 42, t1.x FROM \"users\"\n WHERE a = 'it''s' AND b = 3.5"
            ),
            "SELECT pg_sleep($1), '?', ?, t1.x FROM \"users\" WHERE a = '?' AND b = ?"
        );
        assert_eq!(
            normalize("INSERT INTO \"t2\" VALUES (?, ?)"),
            "INSERT INTO \"t2\" VALUES (?, ?)"
        );
    }

    #[test]
    fn statements_are_classified_by_keyword_and_registered_table() {
        assert_eq!(
            classify("SELECT \"users\".\"id\" FROM \"users\" WHERE x = $1"),
            (OpKind::Select, Some("users"))
        );
        assert_eq!(
            classify("  insert into public.users (a) values ($1)"),
            (OpKind::Insert, Some("users"))
        );
        assert_eq!(
            classify("UPDATE \"roles\" SET a = 1"),
            (OpKind::Update, Some("roles"))
        );
        assert_eq!(classify("DELETE FROM \"x\""), (OpKind::Delete, Some("x")));
        assert_eq!(classify("SELECT 'from users' , 1"), (OpKind::Select, None));
        assert_eq!(classify("SET statement_timeout = 0"), (OpKind::Other, None));
        assert_eq!(classify(""), (OpKind::Other, None));
    }

    #[test]
    fn invented_tables_and_statements_add_no_series() {
        let m = QueryMetrics::new(Duration::ZERO);
        for i in 0..500 {
            m.observe_sql(
                &format!("SELECT * FROM invented_{i} WHERE id = {i}"),
                Duration::from_micros(5),
                1,
                Outcome::Ok,
                None,
            );
            m.observe_sql(
                &format!("VACUUM t{i}"),
                Duration::from_micros(5),
                0,
                Outcome::Ok,
                None,
            );
            m.observe(&Observation {
                op: Op::new("made_up", OpKind::Insert),
                sql: "INSERT INTO made_up VALUES ($1)",
                elapsed: Duration::from_micros(5),
                rows: 1,
                outcome: Outcome::Ok,
                error: None,
            });
        }
        let series: Vec<_> = m.series().map(|(c, o, r, h)| (c, o, r, h.count())).collect();
        assert_eq!(
            series,
            vec![
                ("other", "select", "ok", 500),
                ("other", "insert", "ok", 500),
                ("other", "other", "ok", 500)
            ]
        );
        let mut text = String::new();
        m.render(&mut text, |out, name, kind, help| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        });
        assert!(
            !text.contains("invented") && !text.contains("made_up") && !text.contains("VACUUM"),
            "{text}"
        );
    }

    #[test]
    fn the_slowest_statements_are_kept_per_window() {
        let m = QueryMetrics::new(Duration::ZERO);
        for ms in 1..=30u64 {
            m.observe_sql("SELECT 1", Duration::from_millis(ms), 1, Outcome::Ok, None);
        }
        let top: Vec<f64> = m.slowest().iter().map(|s| s.duration_ms.round()).collect();
        assert_eq!(top, (21..=30).rev().map(|n| n as f64).collect::<Vec<_>>());
        m.rotate();
        m.observe_sql("SELECT 2", Duration::from_millis(2), 1, Outcome::Ok, None);
        assert_eq!(
            m.slowest().len(),
            SLOWEST_KEPT,
            "the previous window is still shown"
        );
        m.rotate();
        assert_eq!(
            m.slowest().len(),
            1,
            "two windows later only the new statement is left"
        );
    }
}
