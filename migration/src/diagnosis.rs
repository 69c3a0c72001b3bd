//! Failure diagnosis: from the database's error to [`MigrateError::Failed`] naming the file, the statement,
//! the line and column, and the database's message (with PostgreSQL's SQLSTATE, detail, hint and context).
//!
//! Owns the reading of a driver error ([`DbFailure`]), the mapping of an error position to a line of the file,
//! and, when the database gave no position, the failing statement found by counting the statements the server
//! reported complete before the error ([`run_counted`]). Nothing is ever executed again to diagnose a failure:
//! a replay would repeat the file's locking and side effects (sequences) against the target database.

use sea_orm::sqlx::{self, AssertSqlSafe, postgres::PgDatabaseError};

use crate::error::{DriverError, MigrateError};
use crate::source::SqlFile;
use crate::statements::{self, Statement};

/// The database's side of a failure.
#[derive(Debug)]
pub(crate) struct DbFailure {
    /// The message, with PostgreSQL's SQLSTATE, detail, hint and context.
    pub message: String,
    /// 1-based character position in the text that was sent.
    pub position: Option<usize>,
    /// The driver's error.
    pub source: DriverError,
}

impl DbFailure {
    pub(crate) fn from_sqlx(e: sqlx::Error) -> Self {
        let (message, position) = describe(&e);
        Self {
            message,
            position,
            source: e.into(),
        }
    }

    /// A failure of SeaORM (a Rust migration), which has no position.
    pub(crate) fn from_orm(e: sea_orm::DbErr) -> Self {
        Self {
            message: e.to_string(),
            position: None,
            source: e.into(),
        }
    }
}

fn describe(e: &sqlx::Error) -> (String, Option<usize>) {
    let sqlx::Error::Database(db) = e else {
        return (e.to_string(), None);
    };
    let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() else {
        return (db.message().to_owned(), None);
    };
    let mut message = format!("{} (SQLSTATE {})", pg.message(), pg.code());
    if let Some(d) = pg.detail() {
        message.push_str(&format!("; detail: {d}"));
    }
    if let Some(h) = pg.hint() {
        message.push_str(&format!("; hint: {h}"));
    }
    // Errors inside function bodies and DO blocks say where there (the position is not in the file).
    if let Some(w) = pg.r#where() {
        message.push_str(&format!("; context: {}", w.replace('\n', " / ")));
    }
    if pg.code() == "25001" {
        message.push_str(
            "; put `-- migrate:no-transaction` on the file's first line to run it outside a transaction",
        );
    }
    let position = match pg.position() {
        Some(sqlx::postgres::PgErrorPosition::Original(p)) => Some(p),
        _ => None,
    };
    (message, position)
}

/// Builds [`MigrateError::Failed`]: `offset` is where the text that was sent starts in the file, so the
/// database's position (relative to that text) lands on a line of the file.
pub(crate) fn failed(
    version: u64,
    file: &SqlFile,
    stmt: Option<Statement>,
    f: DbFailure,
    offset: usize,
) -> MigrateError {
    let sent = file.sql.get(offset..).unwrap_or("");
    let at = f
        .position
        .and_then(|p| statements::char_pos_to_byte(sent, p))
        .map(|b| offset + b)
        .filter(|b| *b < file.sql.len());
    let stmt = stmt.or_else(|| {
        let b = at?;
        file.statements.iter().rev().find(|s| s.start <= b).copied()
    });
    let (line, column) = match (at, stmt) {
        (Some(b), _) => {
            let (l, c) = statements::line_col(&file.sql, b);
            (l, Some(c))
        }
        (None, Some(s)) => (statements::line_col(&file.sql, s.start).0, None),
        (None, None) => (0, None),
    };
    MigrateError::Failed {
        version,
        file: file.file_name.clone(),
        statement: stmt.map(|s| s.text(&file.sql).to_owned()).unwrap_or_default(),
        line,
        column,
        message: f.message,
        source: f.source,
    }
}

/// [`MigrateError::Failed`] of a Rust migration (no file, no statement).
pub(crate) fn rust_failed(version: u64, label: String, e: sea_orm::DbErr) -> MigrateError {
    let f = DbFailure::from_orm(e);
    MigrateError::Failed {
        version,
        file: label,
        statement: String::new(),
        line: 0,
        column: None,
        message: f.message,
        source: f.source,
    }
}

/// Runs `sql` as one simple query on `conn`, counting the statements that completed (the server reports each
/// one). On failure, returns how many had completed: the failing one is the next, so a failure without a
/// position is still located without running anything again.
pub(crate) async fn run_counted<DB>(
    conn: &mut DB::Connection,
    sql: String,
) -> Result<(), (usize, sqlx::Error)>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    use futures::TryStreamExt;
    let mut completed = 0usize;
    let mut results = sqlx::raw_sql(AssertSqlSafe(sql)).execute_many(&mut *conn);
    loop {
        match results.try_next().await {
            Ok(Some(_)) => completed += 1,
            Ok(None) => return Ok(()),
            Err(e) => return Err((completed, e)),
        }
    }
}

/// The failure of a whole file run with [`run_counted`]: the database's position when it gave one (PostgreSQL),
/// else the statement after the `completed` ones. When neither lands in the file, the error names the file and
/// says the statement could not be located.
pub(crate) fn failed_after(version: u64, file: &SqlFile, completed: usize, f: DbFailure) -> MigrateError {
    let in_file = f
        .position
        .and_then(|p| statements::char_pos_to_byte(&file.sql, p))
        .is_some();
    let stmt = if in_file {
        None
    } else {
        file.statements.get(completed).copied()
    };
    failed(version, file, stmt, f, 0)
}
