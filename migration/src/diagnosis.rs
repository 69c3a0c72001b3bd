//! Failure diagnosis: from the database's error to [`MigrateError::Failed`] naming the file, the statement,
//! the line and column, and the database's message (with PostgreSQL's SQLSTATE, detail, hint and context).
//!
//! Owns the reading of a driver error ([`DbFailure`]), the mapping of an error position to a line of the file,
//! and, when the database gave no position, finding the failing statement by replaying the file statement by
//! statement inside a transaction the caller rolls back ([`replay`]). Running migrations is the backends'.

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

/// A PostgreSQL failure of a whole-file query: map the position, or replay to find the statement.
pub(crate) async fn diagnose_pg(
    conn: &mut sqlx::PgConnection,
    version: u64,
    file: &SqlFile,
    f: DbFailure,
) -> MigrateError {
    let in_file = f
        .position
        .and_then(|p| statements::char_pos_to_byte(&file.sql, p))
        .is_some();
    if in_file || file.statements.len() <= 1 {
        let only = if in_file {
            None
        } else {
            file.statements.first().copied()
        };
        return failed(version, file, only, f, 0);
    }
    let found = replay::<sqlx::Postgres>(conn, file, "BEGIN").await;
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    match found {
        Some((s, replayed)) => failed(version, file, Some(s), replayed, s.start),
        None => failed(version, file, None, f, 0),
    }
}

/// Runs the file's statements one by one after `begin`; returns the first that fails. The caller rolls back.
pub(crate) async fn replay<DB>(
    conn: &mut DB::Connection,
    file: &SqlFile,
    begin: &'static str,
) -> Option<(Statement, DbFailure)>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    sqlx::raw_sql(begin).execute(&mut *conn).await.ok()?;
    for s in &file.statements {
        if let Err(e) = sqlx::raw_sql(AssertSqlSafe(s.text(&file.sql).to_owned()))
            .execute(&mut *conn)
            .await
        {
            return Some((*s, DbFailure::from_sqlx(e)));
        }
    }
    None
}
