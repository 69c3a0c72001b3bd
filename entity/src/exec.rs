//! The one place where the repository runs a statement, and the [`Executor`] seam a connection implements.
//!
//! Every statement a [`Repo`](crate::Repo) sends, read or write, passes through [`run`] with an [`Op`] naming the
//! entity and the kind of operation. On PostgreSQL, when the connection lends its sqlx pool for the operation
//! ([`Executor::direct`]), the statement goes straight to sqlx: SeaORM's `ConnectionTrait` path costs about
//! 30,000 more CPU instructions per primary-key read than sqlx's own (measured with cachegrind: most of it is
//! copying SeaORM's large statement futures), which was nearly all of the gap between the repository and raw
//! sqlx. Everything else (SQLite, transactions, connections that lend no pool) goes through
//! `ConnectionTrait`, unchanged.
//!
//! What does not belong here: which SQL to send (the repository and [`crate::cache`] decide), how a row becomes
//! a model ([`crate::repo`]). Later layers hook in here: routing a read to a replica is a decision of
//! [`Executor::direct`] by [`Op`]; timing by entity and operation is [`Executor::observer`]'s: [`run`] times
//! every statement it runs, the wait for a connection included, and reports it once as an [`Observation`]
//! (entity, kind, outcome, elapsed, rows and the SQL text with placeholders, never the bound values). A
//! connection that times SeaORM's own statements too (the service's gated pool) runs the repository's
//! through [`Executor::run_raw`], untimed, so none is counted twice.

use std::future::Future;
use std::ops::DerefMut;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::prelude::DateTimeUtc;
use sea_orm::sea_query::{Value, Values};
use sea_orm::sqlx::{
    self, Arguments, Executor as _, IntoArguments, PgConnection, PgPool, Postgres, SqlSafeStr,
    postgres::PgArguments,
};
use sea_orm::{
    ConnAcquireErr, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, QueryResult,
    RuntimeErr, Statement,
};
use sea_query_sqlx::SqlxValues;
use uuid::Uuid;

use crate::context::ReadFrom;

/// What kind of statement the repository runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpKind {
    /// A read.
    Select,
    /// An `INSERT`.
    Insert,
    /// An `UPDATE` (soft deletes and restores included).
    Update,
    /// A `DELETE`.
    Delete,
    /// Anything else (DDL, `SET`, a statement the caller wrote by hand that is none of the above).
    Other,
}

impl OpKind {
    /// The lower-case name used as a metric label (OpenTelemetry's `db.operation.name`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Select => "select",
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Other => "other",
        }
    }
}

/// How a statement ended, as the timing hook counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// It ran (a miss, zero rows, is still `Ok`).
    Ok,
    /// The database or the driver refused it.
    Error,
    /// A versioned update found the row at another version (optimistic locking).
    StaleVersion,
    /// No connection came in time, or the server cancelled it (`statement_timeout`, SQLSTATE 57014).
    Timeout,
}

impl Outcome {
    /// The lower-case name used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::StaleVersion => "stale_version",
            Self::Timeout => "timeout",
        }
    }

    /// The outcome of a failed statement: [`Outcome::Timeout`] for an acquisition that timed out or a
    /// statement the server cancelled, else [`Outcome::Error`].
    pub fn of(e: &DbErr) -> Self {
        let sqlx_timeout = |e: &sqlx::Error| match e {
            sqlx::Error::PoolTimedOut => true,
            sqlx::Error::Database(d) => d.code().as_deref() == Some("57014"),
            _ => false,
        };
        match e {
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => Self::Timeout,
            DbErr::Conn(RuntimeErr::SqlxError(x))
            | DbErr::Exec(RuntimeErr::SqlxError(x))
            | DbErr::Query(RuntimeErr::SqlxError(x))
                if sqlx_timeout(x) =>
            {
                Self::Timeout
            }
            _ => Self::Error,
        }
    }
}

/// One statement that has run, as an [`Observer`] sees it. `sql` is the text sent, with placeholders
/// (`$1`, `?`) for the bound values, which are never shown.
#[derive(Debug)]
pub struct Observation<'a> {
    /// Which entity (table) and which kind.
    pub op: Op,
    /// The SQL text without the bound values.
    pub sql: &'a str,
    /// From asking for a connection to the result.
    pub elapsed: Duration,
    /// Rows returned, or affected for a statement that returns none.
    pub rows: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// The error, when it failed.
    pub error: Option<&'a DbErr>,
}

/// Receives every statement [`run`] times (metrics, a slow-query log). Called on the statement's task right
/// after it ends: keep it cheap.
pub trait Observer: Send + Sync {
    /// One statement has ended.
    fn observe(&self, o: &Observation<'_>);
}

/// One statement of the repository: which entity, which kind, and where the caller said reads may go. Never
/// the SQL or the values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// The table.
    pub entity: &'static str,
    /// The kind of statement.
    pub kind: OpKind,
    /// The context's read intent ([`Ctx::read_from`](crate::Ctx::read_from)); only a [`OpKind::Select`]
    /// outside a transaction may honour it.
    pub read: ReadFrom,
}

impl Op {
    /// A statement of `kind` on `entity` whose reads go to the primary (the default intent).
    pub fn new(entity: &'static str, kind: OpKind) -> Self {
        Self {
            entity,
            kind,
            read: ReadFrom::Primary,
        }
    }
}

/// A PostgreSQL pool (or one of its connections, already taken) lent for one statement, with whatever the
/// lender holds while it runs (a gate permit, a timer): dropped when the statement is done.
pub struct Direct<'a> {
    lent: Lent<'a>,
    _hold: Option<Box<dyn Send + 'a>>,
}

enum Lent<'a> {
    Pool(&'a PgPool),
    /// A connection the lender took itself (a replica router checks the replica on it before lending it).
    Conn(Box<dyn DerefMut<Target = PgConnection> + Send + 'a>),
}

impl<'a> Direct<'a> {
    /// The pool, holding nothing.
    pub fn new(pool: &'a PgPool) -> Self {
        Self {
            lent: Lent::Pool(pool),
            _hold: None,
        }
    }

    /// A connection the lender already took, holding nothing else.
    pub fn connection(conn: impl DerefMut<Target = PgConnection> + Send + 'a) -> Self {
        Self {
            lent: Lent::Conn(Box::new(conn)),
            _hold: None,
        }
    }

    /// The same, holding `guard` (besides what it held already) until the statement has run.
    #[must_use]
    pub fn holding(self, guard: impl Send + 'a) -> Self {
        Self {
            lent: self.lent,
            _hold: Some(Box::new((self._hold, guard))),
        }
    }
}

impl std::fmt::Debug for Direct<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct").finish_non_exhaustive()
    }
}

/// A connection the repository runs statements on: SeaORM's `ConnectionTrait`, plus the option to lend its
/// sqlx PostgreSQL pool for a statement.
///
/// Implemented for `DatabaseConnection` (lends its pool on PostgreSQL) and `DatabaseTransaction` (never: the
/// statements must run on the transaction's connection). A wrapper (a gated pool, a replica router)
/// implements it to keep its accounting or routing on the direct path too.
pub trait Executor: ConnectionTrait + Sync {
    /// The pool `op` may run on directly, or `None` to run it through `ConnectionTrait`.
    ///
    /// # Errors
    /// Whatever stops the lender from lending (a gate's timeout); the statement then fails with it.
    fn direct(&self, op: Op) -> impl Future<Output = Result<Option<Direct<'_>>, DbErr>> + Send {
        let _ = op;
        async { Ok(None) }
    }

    /// Who is told of each statement the repository runs on this connection; `None` (the default) times
    /// nothing.
    fn observer(&self) -> Option<&dyn Observer> {
        None
    }

    /// Runs a statement that did not go [`Executor::direct`], through `ConnectionTrait`. A connection whose
    /// `ConnectionTrait` times statements itself overrides this to skip its own timing: [`run`] has timed it.
    ///
    /// # Errors
    /// The statement's.
    fn run_raw(&self, stmt: Statement, want: Want) -> impl Future<Output = Result<Output, DbErr>> + Send {
        async move {
            Ok(match want {
                Want::One => Output::One(self.query_one_raw(stmt).await?),
                Want::All => Output::All(self.query_all_raw(stmt).await?),
                Want::Affected => Output::Affected(self.execute_raw(stmt).await?.rows_affected()),
            })
        }
    }
}

impl Executor for DatabaseConnection {
    fn direct(&self, _op: Op) -> impl Future<Output = Result<Option<Direct<'_>>, DbErr>> + Send {
        let lent = (self.get_database_backend() == DbBackend::Postgres)
            .then(|| Direct::new(self.get_postgres_connection_pool()));
        async move { Ok(lent) }
    }
}

impl Executor for DatabaseTransaction {}

/// A bound value. The typed variants bind straight into sqlx's arguments; [`Arg::Value`] goes through
/// sea-query's conversion.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Arg {
    Uuid(Option<Uuid>),
    I32(i32),
    I64(i64),
    Time(DateTimeUtc),
    Value(Value),
}

impl Arg {
    /// A value of a statement rendered by sea-query, typed when its type is one of the typed variants.
    pub(crate) fn from_value(v: Value) -> Self {
        match v {
            Value::Uuid(u) => Self::Uuid(u),
            Value::Int(Some(n)) => Self::I32(n),
            Value::BigInt(Some(n)) => Self::I64(n),
            Value::BigUnsigned(Some(n)) => {
                i64::try_from(n).map_or(Self::Value(Value::BigUnsigned(Some(n))), Self::I64)
            }
            Value::ChronoDateTimeUtc(Some(t)) => Self::Time(t),
            v => Self::Value(v),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Self::Uuid(u) => u.into(),
            Self::I32(n) => n.into(),
            Self::I64(n) => n.into(),
            Self::Time(t) => t.into(),
            Self::Value(v) => v,
        }
    }
}

/// SQL text: shared with a cache, or rendered for this call.
#[derive(Clone, Debug)]
pub(crate) enum Sql {
    Shared(Arc<str>),
    Owned(String),
}

/// A statement ready to run.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) backend: DbBackend,
    pub(crate) sql: Sql,
    pub(crate) args: Vec<Arg>,
}

impl Prepared {
    /// A statement sea-query rendered for this call.
    pub(crate) fn from_statement(stmt: Statement) -> Self {
        let args = stmt
            .values
            .map(|v| v.0)
            .unwrap_or_default()
            .into_iter()
            .map(Arg::from_value)
            .collect();
        Self {
            backend: stmt.db_backend,
            sql: Sql::Owned(stmt.sql),
            args,
        }
    }
}

/// What the caller wants back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// The first row, if any.
    One,
    /// Every row.
    All,
    /// The number of rows affected.
    Affected,
}

/// What came back.
#[derive(Debug)]
pub enum Output {
    /// The first row, if any.
    One(Option<QueryResult>),
    /// Every row.
    All(Vec<QueryResult>),
    /// The number of rows affected.
    Affected(u64),
}

/// A timed statement whose outcome the caller may still change (a versioned update that found another
/// version is [`Outcome::StaleVersion`], which only the repository can tell); reported when dropped.
pub(crate) struct Pending<'a> {
    observer: Option<&'a dyn Observer>,
    op: Op,
    sql: Option<Arc<str>>,
    elapsed: Duration,
    rows: u64,
    outcome: Outcome,
}

impl Pending<'_> {
    /// The statement met a stale version.
    pub(crate) fn stale_version(&mut self) {
        self.outcome = Outcome::StaleVersion;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let (Some(observer), Some(sql)) = (self.observer, &self.sql) {
            observer.observe(&Observation {
                op: self.op,
                sql,
                elapsed: self.elapsed,
                rows: self.rows,
                outcome: self.outcome,
                error: None,
            });
        }
    }
}

/// Runs one statement of the repository: on the pool [`Executor::direct`] lends, else through
/// [`Executor::run_raw`]; timed and reported to the connection's [`Executor::observer`].
pub(crate) async fn run<C: Executor>(db: &C, op: Op, stmt: Prepared, want: Want) -> Result<Output, DbErr> {
    run_pending(db, op, stmt, want).await.map(|(out, _)| out)
}

/// [`run`], with the report of a statement that succeeded left to the caller (sent when the [`Pending`] is
/// dropped). A failure is reported here, with its error.
pub(crate) async fn run_pending<'a, C: Executor>(
    db: &'a C,
    op: Op,
    mut stmt: Prepared,
    want: Want,
) -> Result<(Output, Pending<'a>), DbErr> {
    let observer = db.observer();
    // The text is kept for the report only when someone listens; a cached statement's is shared anyway.
    let sql = observer.map(|_| {
        let shared: Arc<str> = match std::mem::replace(&mut stmt.sql, Sql::Owned(String::new())) {
            Sql::Shared(s) => s,
            Sql::Owned(s) => s.into(),
        };
        stmt.sql = Sql::Shared(shared.clone());
        shared
    });
    let started = observer.map(|_| Instant::now());
    let result = run_untimed(db, op, stmt, want).await;
    let elapsed = started.map(|t| t.elapsed()).unwrap_or_default();
    match result {
        Ok(out) => {
            let rows = out.count();
            Ok((
                out,
                Pending {
                    observer,
                    op,
                    sql,
                    elapsed,
                    rows,
                    outcome: Outcome::Ok,
                },
            ))
        }
        Err(e) => {
            if let (Some(observer), Some(sql)) = (observer, &sql) {
                observer.observe(&Observation {
                    op,
                    sql,
                    elapsed,
                    rows: 0,
                    outcome: Outcome::of(&e),
                    error: Some(&e),
                });
            }
            Err(e)
        }
    }
}

async fn run_untimed<C: Executor>(db: &C, op: Op, stmt: Prepared, want: Want) -> Result<Output, DbErr> {
    if stmt.backend == DbBackend::Postgres
        && let Some(mut direct) = db.direct(op).await?
    {
        let out = match typed_pg_args(&stmt.args) {
            Some(args) => on_pool(&mut direct.lent, stmt.sql, args, want).await,
            None => {
                let values = Values(stmt.args.into_iter().map(Arg::into_value).collect());
                on_pool(&mut direct.lent, stmt.sql, SqlxValues(values), want).await
            }
        };
        drop(direct);
        return out.map_err(|e| sqlx_err(e, want));
    }
    let values: Vec<Value> = stmt.args.into_iter().map(Arg::into_value).collect();
    let sql = match stmt.sql {
        Sql::Shared(s) => s.as_ref().to_owned(),
        Sql::Owned(s) => s,
    };
    let statement = Statement::from_sql_and_values(stmt.backend, sql, values);
    db.run_raw(statement, want).await
}

/// The arguments when every value has a typed variant, bound without sea-query's conversion.
fn typed_pg_args(args: &[Arg]) -> Option<PgArguments> {
    let mut out = PgArguments::default();
    for a in args {
        let added = match a {
            Arg::Uuid(u) => out.add(*u),
            Arg::I32(n) => out.add(*n),
            Arg::I64(n) => out.add(*n),
            Arg::Time(t) => out.add(*t),
            Arg::Value(_) => return None,
        };
        added.ok()?;
    }
    Some(out)
}

/// Runs `sql` on a connection of `pool`. The connection is acquired here and the statement run on it
/// through sqlx's `Executor` for `&mut PgConnection`: that costs about 30% fewer client instructions per
/// primary-key read than `query.fetch_optional(&pool)`, which wraps the same work in the pool's own boxed
/// futures (cachegrind, 34.5k against 49.5k instructions per read on this machine).
async fn on_pool<A>(lent: &mut Lent<'_>, sql: Sql, args: A, want: Want) -> Result<Output, sqlx::Error>
where
    A: IntoArguments<Postgres> + Send,
{
    let sql = match sql {
        Sql::Shared(s) => sqlx::AssertSqlSafe(s).into_sql_str(),
        Sql::Owned(s) => sqlx::AssertSqlSafe(s).into_sql_str(),
    };
    let query = sqlx::query_with(sql, args);
    let mut pooled;
    let conn: &mut PgConnection = match lent {
        Lent::Pool(pool) => {
            pooled = pool.acquire().await?;
            &mut pooled
        }
        Lent::Conn(c) => c,
    };
    Ok(match want {
        Want::One => Output::One(conn.fetch_optional(query).await?.map(QueryResult::from)),
        Want::All => Output::All(
            conn.fetch_all(query)
                .await?
                .into_iter()
                .map(QueryResult::from)
                .collect(),
        ),
        Want::Affected => Output::Affected(conn.execute(query).await?.rows_affected()),
    })
}

/// sqlx's error as SeaORM reports the same failure, so callers see one error shape whichever path ran.
fn sqlx_err(e: sqlx::Error, want: Want) -> DbErr {
    match e {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        e if want == Want::Affected => DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e))),
        e => DbErr::Query(RuntimeErr::SqlxError(Arc::new(e))),
    }
}

impl Output {
    /// Rows returned, or affected.
    pub fn count(&self) -> u64 {
        match self {
            Self::One(r) => u64::from(r.is_some()),
            Self::All(rows) => rows.len() as u64,
            Self::Affected(n) => *n,
        }
    }

    /// The first row, if any.
    pub fn one(self) -> Option<QueryResult> {
        match self {
            Self::One(r) => r,
            Self::All(mut rows) => rows.pop(),
            Self::Affected(_) => None,
        }
    }

    /// Every row.
    pub fn all(self) -> Vec<QueryResult> {
        match self {
            Self::One(r) => r.into_iter().collect(),
            Self::All(rows) => rows,
            Self::Affected(_) => Vec::new(),
        }
    }

    /// Rows affected (or returned).
    pub fn affected(self) -> u64 {
        match self {
            Self::Affected(n) => n,
            Self::One(r) => u64::from(r.is_some()),
            Self::All(rows) => rows.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_arguments_are_bound_without_sea_query_only_when_every_value_is_typed() {
        let typed = [Arg::Uuid(Some(Uuid::nil())), Arg::I64(1), Arg::I32(2)];
        assert!(typed_pg_args(&typed).is_some());
        let mixed = [Arg::Uuid(None), Arg::Value(Value::String(Some("x".into())))];
        assert!(typed_pg_args(&mixed).is_none());
    }

    #[test]
    fn rendered_values_keep_their_type() {
        assert_eq!(Arg::from_value(Value::BigUnsigned(Some(1))), Arg::I64(1));
        assert_eq!(Arg::from_value(Value::Uuid(None)), Arg::Uuid(None));
        let s = Value::String(Some("x".into()));
        assert_eq!(Arg::from_value(s.clone()), Arg::Value(s));
    }
}
