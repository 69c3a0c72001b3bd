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
//! [`Executor::direct`] by [`Op`]; timing by entity and operation wraps [`run`].

use std::future::Future;
use std::sync::Arc;

use sea_orm::prelude::DateTimeUtc;
use sea_orm::sea_query::{Value, Values};
use sea_orm::sqlx::{
    self, Arguments, Executor as _, IntoArguments, PgPool, Postgres, SqlSafeStr, postgres::PgArguments,
};
use sea_orm::{
    ConnAcquireErr, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, QueryResult,
    RuntimeErr, Statement,
};
use sea_query_sqlx::SqlxValues;
use uuid::Uuid;

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
}

/// One statement of the repository: which entity, which kind. Never the SQL or the values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// The table.
    pub entity: &'static str,
    /// The kind of statement.
    pub kind: OpKind,
}

/// A PostgreSQL pool lent for one statement, with whatever the lender holds while it runs (a gate permit,
/// a timer): dropped when the statement is done.
pub struct Direct<'a> {
    pool: &'a PgPool,
    _hold: Option<Box<dyn Send + 'a>>,
}

impl<'a> Direct<'a> {
    /// The pool, holding nothing.
    pub fn new(pool: &'a PgPool) -> Self {
        Self { pool, _hold: None }
    }

    /// The same, holding `guard` until the statement has run.
    #[must_use]
    pub fn holding(self, guard: impl Send + 'a) -> Self {
        Self {
            pool: self.pool,
            _hold: Some(Box::new(guard)),
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
pub(crate) enum Want {
    One,
    All,
    Affected,
}

/// What came back.
#[derive(Debug)]
pub(crate) enum Output {
    One(Option<QueryResult>),
    All(Vec<QueryResult>),
    Affected(u64),
}

/// Runs one statement of the repository: on the pool [`Executor::direct`] lends, else through
/// `ConnectionTrait`.
pub(crate) async fn run<C: Executor>(db: &C, op: Op, stmt: Prepared, want: Want) -> Result<Output, DbErr> {
    if stmt.backend == DbBackend::Postgres
        && let Some(direct) = db.direct(op).await?
    {
        let out = match typed_pg_args(&stmt.args) {
            Some(args) => on_pool(direct.pool, stmt.sql, args, want).await,
            None => {
                let values = Values(stmt.args.into_iter().map(Arg::into_value).collect());
                on_pool(direct.pool, stmt.sql, SqlxValues(values), want).await
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
    Ok(match want {
        Want::One => Output::One(db.query_one_raw(statement).await?),
        Want::All => Output::All(db.query_all_raw(statement).await?),
        Want::Affected => Output::Affected(db.execute_raw(statement).await?.rows_affected()),
    })
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
async fn on_pool<A>(pool: &PgPool, sql: Sql, args: A, want: Want) -> Result<Output, sqlx::Error>
where
    A: IntoArguments<Postgres> + Send,
{
    let sql = match sql {
        Sql::Shared(s) => sqlx::AssertSqlSafe(s).into_sql_str(),
        Sql::Owned(s) => sqlx::AssertSqlSafe(s).into_sql_str(),
    };
    let query = sqlx::query_with(sql, args);
    let mut conn = pool.acquire().await?;
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
    pub(crate) fn one(self) -> Option<QueryResult> {
        match self {
            Self::One(r) => r,
            Self::All(mut rows) => rows.pop(),
            Self::Affected(_) => None,
        }
    }

    pub(crate) fn all(self) -> Vec<QueryResult> {
        match self {
            Self::One(r) => r.into_iter().collect(),
            Self::All(rows) => rows,
            Self::Affected(_) => Vec::new(),
        }
    }

    pub(crate) fn affected(self) -> u64 {
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
