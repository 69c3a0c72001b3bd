//! [`Db`]: the pool's SeaORM connection, on which every statement and every transaction first passes the
//! pool's gate, so that queries made through SeaORM wait, count and time out exactly like [`Pool::acquire`].
//!
//! Owns the permit a SeaORM statement holds while it runs: taken before the statement (a wait is counted in
//! `wait_count`/`wait_duration`, bounded by `DB_CONN_ACQUIRE_TIMEOUT` with [`PoolError::Timeout`]'s message),
//! released when it finishes (observed as `use_time`). A transaction holds one permit from `BEGIN` to
//! `COMMIT`/`ROLLBACK`; a stream holds one until it is dropped. An `entity::Repo` statement that runs on sqlx's
//! pool directly (`entity::Executor::direct`) holds one the same way. Everything else is the inner
//! `DatabaseConnection`'s.
//!
//! Every statement is timed into the pool's [`QueryMetrics`], once: those of SeaORM here (table and operation
//! read from the SQL), the repository's by `entity::exec` (which knows them), whose statements that do not
//! run on sqlx directly come back through `entity::Executor::run_raw`, untimed.
//!
//! [`Pool::acquire`]: super::Pool::acquire

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use entity::{Observer, Outcome, Output, Want};

use futures::Stream;
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    IsolationLevel, QueryResult, QueryStream, RuntimeErr, Statement, StreamTrait, TransactionError,
    TransactionOptions, TransactionSession, TransactionTrait,
};
use tokio::sync::OwnedSemaphorePermit;

use super::replicas::Replicas;
use super::stats::{Counters, PendingGuard};
use super::{Gate, PoolError};
use crate::metrics::queries::QueryMetrics;

/// The SeaORM connection of a [`super::Pool`]; get it with [`super::Pool::db`].
///
/// Implements [`ConnectionTrait`], [`TransactionTrait`] and [`StreamTrait`], so `entity::Repo`, SeaORM's
/// `Entity::find()…​.all(db)` and `db.transaction(…)` take it as they take a `DatabaseConnection`.
#[derive(Clone)]
pub struct Db {
    orm: DatabaseConnection,
    gate: Gate,
    queries: Arc<QueryMetrics>,
    /// The primary's replicas, for repository reads that ask for one (see `replicas`).
    replicas: Option<Arc<Replicas>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.orm.get_database_backend())
            .finish_non_exhaustive()
    }
}

/// Gate permits held for the length of a statement, a transaction, a stream or a [`Held`] scope.
struct Pass {
    _permit: OwnedSemaphorePermit,
    since: Instant,
    counters: Arc<Counters>,
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.counters.use_time.observe(self.since.elapsed());
    }
}

/// The gate's refusal as a SeaORM error that keeps the pool's wording (what ran out and what to raise).
fn db_err(e: PoolError) -> DbErr {
    DbErr::Conn(RuntimeErr::Internal(e.to_string()))
}

impl Db {
    pub(super) fn new(orm: DatabaseConnection, gate: Gate, queries: Arc<QueryMetrics>) -> Self {
        Self {
            orm,
            gate,
            queries,
            replicas: None,
        }
    }

    /// The query timing its statements report to.
    pub fn queries(&self) -> &Arc<QueryMetrics> {
        &self.queries
    }

    /// The same connection, routing repository reads that ask for a replica to `replicas`.
    pub(super) fn with_replicas(mut self, replicas: Option<Arc<Replicas>>) -> Self {
        self.replicas = replicas;
        self
    }

    /// The primary's pool lent for one repository statement, holding a gate permit while it runs.
    pub(super) async fn primary_direct(&self) -> Result<Option<entity::Direct<'_>>, DbErr> {
        if self.orm.get_database_backend() != DbBackend::Postgres {
            return Ok(None);
        }
        let pass = self.pass(1).await?;
        Ok(Some(
            entity::Direct::new(self.orm.get_postgres_connection_pool()).holding(pass),
        ))
    }

    /// Takes `n` permits (one per connection the work will hold), waiting at most `DB_CONN_ACQUIRE_TIMEOUT`.
    async fn pass(&self, n: u32) -> Result<Pass, DbErr> {
        let counters = self.gate.counters().clone();
        let started = Instant::now();
        let entered = {
            let _pending = PendingGuard::enter(&counters);
            self.gate.enter(n, started, self.gate.timeout()).await
        };
        let (permit, waited) = entered.map_err(db_err)?;
        if !waited {
            // sqlx hands the connection over inside SeaORM, past any hook; with the gate passed one is free.
            self.gate.settle(started, false);
        }
        Ok(Pass {
            _permit: permit,
            since: Instant::now(),
            counters,
        })
    }

    /// Holds one gate permit and lends the raw `DatabaseConnection` for work that only takes that type (the
    /// migration crate's `Migrator::status`, which reads the ledger through the sqlx pool). Statements run
    /// through the raw connection inside the scope are not gated again; do not use [`Db`] inside it, or
    /// with `DB_MAX_OPEN_CONNS=1` the second permit never comes.
    ///
    /// # Errors
    /// The gate's timeout or the pool's closure, as a [`DbErr::Conn`] with the pool's message.
    pub async fn hold(&self) -> Result<Held<'_>, DbErr> {
        self.hold_many(1).await
    }

    /// Like [`Db::hold`], for work that holds `n` connections at once (auto-migrate holds the migration lock
    /// on one connection while it migrates on another). `n` is capped at `DB_MAX_OPEN_CONNS`.
    ///
    /// # Errors
    /// As [`Db::hold`].
    pub async fn hold_many(&self, n: u32) -> Result<Held<'_>, DbErr> {
        Ok(Held {
            orm: &self.orm,
            _pass: self.pass(n).await?,
        })
    }
}

/// Runs `work`, one SeaORM statement, and reports it to `queries`.
async fn timed<T>(
    queries: &QueryMetrics,
    sql: &str,
    work: impl Future<Output = Result<T, DbErr>>,
    rows: impl FnOnce(&T) -> u64,
) -> Result<T, DbErr> {
    let started = Instant::now();
    let result = work.await;
    let elapsed = started.elapsed();
    match &result {
        Ok(v) => queries.observe_sql(sql, elapsed, rows(v), Outcome::Ok, None),
        Err(e) => queries.observe_sql(sql, elapsed, 0, Outcome::of(e), Some(e)),
    }
    result
}

/// A statement of the repository on `db`, untimed (`entity::exec` times it).
async fn untimed(db: &impl ConnectionTrait, stmt: Statement, want: Want) -> Result<Output, DbErr> {
    Ok(match want {
        Want::One => Output::One(db.query_one_raw(stmt).await?),
        Want::All => Output::All(db.query_all_raw(stmt).await?),
        Want::Affected => Output::Affected(db.execute_raw(stmt).await?.rows_affected()),
    })
}

/// Permits held by [`Db::hold`]; derefs to the raw connection. Released on drop.
pub struct Held<'a> {
    orm: &'a DatabaseConnection,
    _pass: Pass,
}

impl std::fmt::Debug for Held<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").finish_non_exhaustive()
    }
}

impl std::ops::Deref for Held<'_> {
    type Target = DatabaseConnection;

    fn deref(&self) -> &DatabaseConnection {
        self.orm
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Db {
    fn get_database_backend(&self) -> DbBackend {
        self.orm.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let sql = stmt.sql.clone();
        let work = async {
            let _pass = self.pass(1).await?;
            self.orm.execute_raw(stmt).await
        };
        timed(&self.queries, &sql, work, ExecResult::rows_affected).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let work = async {
            let _pass = self.pass(1).await?;
            self.orm.execute_unprepared(sql).await
        };
        timed(&self.queries, sql, work, ExecResult::rows_affected).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let sql = stmt.sql.clone();
        let work = async {
            let _pass = self.pass(1).await?;
            self.orm.query_one_raw(stmt).await
        };
        timed(&self.queries, &sql, work, |r| u64::from(r.is_some())).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let sql = stmt.sql.clone();
        let work = async {
            let _pass = self.pass(1).await?;
            self.orm.query_all_raw(stmt).await
        };
        timed(&self.queries, &sql, work, |r| r.len() as u64).await
    }

    fn support_returning(&self) -> bool {
        self.orm.support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        self.orm.is_mock_connection()
    }
}

/// A query's rows, streamed while the stream holds its gate permit.
pub struct GatedStream {
    inner: Pin<Box<QueryStream>>,
    _pass: Pass,
}

impl std::fmt::Debug for GatedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatedStream").finish_non_exhaustive()
    }
}

impl Stream for GatedStream {
    type Item = Result<QueryResult, DbErr>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl StreamTrait for Db {
    type Stream<'a> = GatedStream;

    fn get_database_backend(&self) -> DbBackend {
        self.orm.get_database_backend()
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<GatedStream, DbErr>> + 'a + Send>> {
        Box::pin(async move {
            // Timed until the stream is open: its rows are the caller's pace, not the database's.
            let sql = stmt.sql.clone();
            let work = async {
                let pass = self.pass(1).await?;
                let inner = self.orm.stream_raw(stmt).await?;
                Ok(GatedStream {
                    inner: Box::pin(inner),
                    _pass: pass,
                })
            };
            timed(&self.queries, &sql, work, |_| 0).await
        })
    }
}

/// A transaction on [`Db`]: holds its gate permit from `BEGIN` until it commits, rolls back or is dropped.
/// Nested transactions (savepoints) run on the same connection and take no permit of their own.
pub struct DbTransaction {
    inner: DatabaseTransaction,
    _pass: Option<Pass>,
    queries: Arc<QueryMetrics>,
}

impl std::fmt::Debug for DbTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbTransaction")
            .field("backend", &ConnectionTrait::get_database_backend(&self.inner))
            .finish_non_exhaustive()
    }
}

impl DbTransaction {
    /// Runs `callback` inside the transaction `begun` opened: commits on `Ok`, rolls back on `Err`. A `BEGIN`
    /// that failed is [`TransactionError::Connection`], as in SeaORM's own `transaction`.
    async fn run<F, T, E>(begun: Result<Self, DbErr>, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(&'c DbTransaction) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let txn = begun.map_err(TransactionError::Connection)?;
        let outcome = callback(&txn).await;
        match outcome {
            Ok(v) => {
                txn.commit().await.map_err(TransactionError::Connection)?;
                Ok(v)
            }
            Err(e) => {
                txn.rollback().await.map_err(TransactionError::Connection)?;
                Err(TransactionError::Transaction(e))
            }
        }
    }

    /// The inner SeaORM transaction.
    pub fn inner(&self) -> &DatabaseTransaction {
        &self.inner
    }
}

#[async_trait::async_trait]
impl TransactionSession for DbTransaction {
    async fn commit(self) -> Result<(), DbErr> {
        self.inner.commit().await
    }

    async fn rollback(self) -> Result<(), DbErr> {
        self.inner.rollback().await
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for DbTransaction {
    fn get_database_backend(&self) -> DbBackend {
        ConnectionTrait::get_database_backend(&self.inner)
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let sql = stmt.sql.clone();
        let work = self.inner.execute_raw(stmt);
        timed(&self.queries, &sql, work, ExecResult::rows_affected).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let work = self.inner.execute_unprepared(sql);
        timed(&self.queries, sql, work, ExecResult::rows_affected).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let sql = stmt.sql.clone();
        let work = self.inner.query_one_raw(stmt);
        timed(&self.queries, &sql, work, |r| u64::from(r.is_some())).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let sql = stmt.sql.clone();
        let work = self.inner.query_all_raw(stmt);
        timed(&self.queries, &sql, work, |r| r.len() as u64).await
    }

    fn support_returning(&self) -> bool {
        self.inner.support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        self.inner.is_mock_connection()
    }
}

impl StreamTrait for DbTransaction {
    type Stream<'a> = <DatabaseTransaction as StreamTrait>::Stream<'a>;

    fn get_database_backend(&self) -> DbBackend {
        ConnectionTrait::get_database_backend(&self.inner)
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<Self::Stream<'a>, DbErr>> + 'a + Send>> {
        self.inner.stream_raw(stmt)
    }
}

/// `BEGIN` (or a savepoint) on `begin`'s connection, wrapped with the permits to keep.
async fn wrap(
    pass: Option<Pass>,
    queries: &Arc<QueryMetrics>,
    begin: impl Future<Output = Result<DatabaseTransaction, DbErr>>,
) -> Result<DbTransaction, DbErr> {
    Ok(DbTransaction {
        inner: begin.await?,
        _pass: pass,
        queries: queries.clone(),
    })
}

#[async_trait::async_trait]
impl TransactionTrait for Db {
    type Transaction = DbTransaction;

    async fn begin(&self) -> Result<DbTransaction, DbErr> {
        let pass = self.pass(1).await?;
        wrap(Some(pass), &self.queries, self.orm.begin()).await
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<DbTransaction, DbErr> {
        let pass = self.pass(1).await?;
        wrap(
            Some(pass),
            &self.queries,
            self.orm.begin_with_config(isolation_level, access_mode),
        )
        .await
    }

    async fn begin_with_options(&self, options: TransactionOptions) -> Result<DbTransaction, DbErr> {
        let pass = self.pass(1).await?;
        wrap(Some(pass), &self.queries, self.orm.begin_with_options(options)).await
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(&'c DbTransaction) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        DbTransaction::run(self.begin().await, callback).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(&'c DbTransaction) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let begun = self.begin_with_config(isolation_level, access_mode).await;
        DbTransaction::run(begun, callback).await
    }
}

#[async_trait::async_trait]
impl TransactionTrait for DbTransaction {
    type Transaction = DbTransaction;

    async fn begin(&self) -> Result<DbTransaction, DbErr> {
        wrap(None, &self.queries, self.inner.begin()).await
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<DbTransaction, DbErr> {
        wrap(
            None,
            &self.queries,
            self.inner.begin_with_config(isolation_level, access_mode),
        )
        .await
    }

    async fn begin_with_options(&self, options: TransactionOptions) -> Result<DbTransaction, DbErr> {
        wrap(None, &self.queries, self.inner.begin_with_options(options)).await
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(&'c DbTransaction) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        DbTransaction::run(self.begin().await, callback).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(&'c DbTransaction) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let begun = self.begin_with_config(isolation_level, access_mode).await;
        DbTransaction::run(begun, callback).await
    }
}

/// The repository's direct sqlx path (`entity::exec`) passes the gate too: the permit is taken before the
/// statement and held until it has run, as for every statement through [`ConnectionTrait`].
///
/// A read whose context asks for a replica (`Ctx::read_from`) goes to one when the pool has replicas (see
/// `replicas`: no sticky window here, a [`super::Session`] has one); everything else goes to the primary.
impl entity::Executor for Db {
    async fn direct(&self, op: entity::Op) -> Result<Option<entity::Direct<'_>>, DbErr> {
        if op.kind == entity::OpKind::Select
            && let Some(replicas) = &self.replicas
            && let Some(lent) = replicas.lend(op.read, None).await
        {
            return Ok(Some(lent));
        }
        self.primary_direct().await
    }

    fn observer(&self) -> Option<&dyn Observer> {
        Some(&*self.queries)
    }

    async fn run_raw(&self, stmt: Statement, want: Want) -> Result<Output, DbErr> {
        let _pass = self.pass(1).await?;
        untimed(&self.orm, stmt, want).await
    }
}

/// Statements of a transaction run on its connection, through [`ConnectionTrait`].
impl entity::Executor for DbTransaction {
    fn observer(&self) -> Option<&dyn Observer> {
        Some(&*self.queries)
    }

    async fn run_raw(&self, stmt: Statement, want: Want) -> Result<Output, DbErr> {
        untimed(&self.inner, stmt, want).await
    }
}
