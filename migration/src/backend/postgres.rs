//! PostgreSQL: how migrations run there, and why.
//!
//! - A transactional file and its history `INSERT` go to the server as ONE simple query. PostgreSQL runs a
//!   multi-statement query as one implicit transaction, so the step is atomic and costs one round trip, with
//!   no prepared statements (the benchmark compares against `psql`).
//! - A `-- migrate:no-transaction` file runs statement by statement (PostgreSQL refuses `CREATE INDEX
//!   CONCURRENTLY` inside a multi-statement query); a row with `success = false` is written first and flipped
//!   on success, so a run that stops part-way is visible.
//! - Every statement of a run goes through one pool connection, checked out at the first and held until the
//!   run ends or a Rust migration needs it ([`Backend::release`]): one checkout (and health check) per run,
//!   not per migration.
//! - The locks are [`PgLock`], an advisory lock on a connection of its own for the whole run, and the applying
//!   lock on the held connection (see [`crate::lock`]): a rerun right after a killed runner waits for the
//!   server to finish the orphaned migration. The held connection never goes back to the pool holding it: it
//!   is released first, or the connection is closed.

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sqlx::{self, AssertSqlSafe, PgPool, Postgres, Row, pool::PoolConnection};

use super::{Backend, Finish, SqlStep, run_without_transaction};
use crate::diagnosis::{self, DbFailure};
use crate::dialect::Dialect;
use crate::error::MigrateError;
use crate::ledger::{self, AppliedRow};
use crate::lock::{self, PgLock, Waiting};

const PG_DROP_ALL: &str = r#"DO $collex$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format(CASE r.relkind
        WHEN 'v' THEN 'DROP VIEW IF EXISTS %I CASCADE'
        WHEN 'm' THEN 'DROP MATERIALIZED VIEW IF EXISTS %I CASCADE'
        WHEN 'S' THEN 'DROP SEQUENCE IF EXISTS %I CASCADE'
        WHEN 'f' THEN 'DROP FOREIGN TABLE IF EXISTS %I CASCADE'
        ELSE 'DROP TABLE IF EXISTS %I CASCADE' END, r.relname);
  END LOOP;
  FOR r IN SELECT t.typname, t.typtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = current_schema() AND t.typtype IN ('e', 'd')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format(CASE r.typtype WHEN 'd' THEN 'DROP DOMAIN IF EXISTS %I CASCADE'
        ELSE 'DROP TYPE IF EXISTS %I CASCADE' END, r.typname);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure::text AS sig, p.prokind FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = current_schema()
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format(CASE r.prokind WHEN 'p' THEN 'DROP PROCEDURE IF EXISTS %s CASCADE'
        WHEN 'a' THEN 'DROP AGGREGATE IF EXISTS %s CASCADE'
        ELSE 'DROP FUNCTION IF EXISTS %s CASCADE' END, r.sig);
  END LOOP;
END
$collex$"#;

/// The PostgreSQL backend of one run.
pub(super) struct Pg {
    pool: PgPool,
    /// The connection that applies migrations, held across consecutive steps.
    conn: Option<PoolConnection<Postgres>>,
    lock: Option<PgLock>,
    /// Whether `conn` holds the applying lock.
    applying: bool,
    /// The lock timeout of this run, for the applying lock.
    timeout: Duration,
    /// The history table: unqualified until the lock is taken (reads run no migration, so `search_path` is
    /// the session's own), then qualified with the schema current at that moment.
    table: String,
}

impl Pg {
    pub(super) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            conn: None,
            lock: None,
            applying: false,
            timeout: Duration::ZERO,
            table: ledger::TABLE.to_owned(),
        }
    }

    /// The held connection, checked out of the pool the first time; once the run lock is held, with the
    /// applying lock taken on it.
    async fn conn(&mut self) -> Result<&mut sqlx::PgConnection, MigrateError> {
        self.conn_reporting(&|_| {}).await.map(|(c, _)| c)
    }

    async fn conn_reporting(
        &mut self,
        on_wait: &(dyn for<'w> Fn(&'w Waiting) + Send + Sync),
    ) -> Result<(&mut sqlx::PgConnection, Option<Duration>), MigrateError> {
        let mut waited = None;
        let conn = match self.conn.take() {
            Some(c) => c,
            None => {
                let mut c = self
                    .pool
                    .acquire()
                    .await
                    .map_err(|e| MigrateError::db("acquiring a connection", e))?;
                if self.lock.is_some() {
                    waited = lock::hold_applying(&mut c, self.timeout, on_wait).await?;
                    self.applying = true;
                }
                c
            }
        };
        Ok((&mut **self.conn.insert(conn), waited))
    }

    /// Gives the held connection back to the pool without the applying lock (or closes it when the lock
    /// cannot be released).
    async fn give_back(&mut self) {
        if let Some(mut c) = self.conn.take()
            && std::mem::take(&mut self.applying)
            && !lock::release_applying(&mut c).await
        {
            c.close_on_drop();
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        // A run dropped part-way (a cancelled future): the applying lock must not stay in the pool.
        if self.applying
            && let Some(c) = self.conn.as_mut()
        {
            c.close_on_drop();
        }
    }
}

#[async_trait]
impl Backend for Pg {
    async fn lock(
        &mut self,
        timeout: Duration,
        on_wait: &(dyn for<'w> Fn(&'w Waiting) + Send + Sync),
    ) -> Result<Option<Duration>, MigrateError> {
        let (lock, waited) = PgLock::acquire(&self.pool, timeout, on_wait).await?;
        self.lock = Some(lock);
        self.timeout = timeout;
        // A connection held from before the lock (none today) takes the applying lock too.
        self.give_back().await;
        let (conn, waited_applying) = self.conn_reporting(on_wait).await?;
        let waited = match (waited, waited_applying) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        // Resolved before any migration runs: one may `SET search_path` on this session.
        let schema: Option<String> =
            sqlx::raw_sql("SELECT pg_catalog.quote_ident(pg_catalog.current_schema())")
                .fetch_one(&mut *conn)
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| MigrateError::db("reading the current schema", e))?;
        // No schema on the search path: creating the history would fail there anyway; `public` says where.
        self.table = ledger::qualified(schema.as_deref().unwrap_or("public"));
        Ok(waited)
    }

    async fn unlock(&mut self) {
        self.give_back().await;
        if let Some(lock) = self.lock.take() {
            lock.release().await;
        }
    }

    async fn history(&mut self, create: bool) -> Result<Vec<AppliedRow>, MigrateError> {
        let t = self.table.clone();
        let conn = self.conn().await?;
        let rows = match sqlx::raw_sql(AssertSqlSafe(ledger::select_sql(Dialect::Postgres, &t)))
            .fetch_all(&mut *conn)
            .await
        {
            Ok(rows) => rows,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(ledger::PG_UNDEFINED_TABLE) => {
                if create {
                    sqlx::raw_sql(AssertSqlSafe(ledger::create_sql(Dialect::Postgres, &t)))
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| MigrateError::db("creating the history table", e))?;
                }
                return Ok(Vec::new());
            }
            Err(e) => return Err(MigrateError::db("reading the migration history", e)),
        };
        ledger::decode(&rows)
    }

    async fn run_sql(&mut self, step: SqlStep<'_>) -> Result<bool, MigrateError> {
        let SqlStep {
            version,
            file,
            finish,
            ..
        } = step;
        if !file.no_transaction {
            let record_sql = match finish {
                Finish::Insert(r) => ledger::insert(Dialect::Postgres, &self.table, r, ledger::PG_ELAPSED_MS),
                Finish::Delete => ledger::delete(&self.table, version),
            };
            // The newline ends a trailing `--` comment; the extra `;` is harmless.
            let sql = format!("{}\n;\n{record_sql}", file.sql);
            let conn = self.conn().await?;
            return match diagnosis::run_counted::<Postgres>(conn, sql).await {
                Ok(()) => Ok(true),
                Err((completed, e)) => Err(diagnosis::failed_after(
                    version,
                    file,
                    completed,
                    DbFailure::from_sqlx(e),
                )),
            };
        }
        let t = self.table.clone();
        let conn = self.conn().await?;
        run_without_transaction::<Postgres>(conn, (Dialect::Postgres, &t), step).await
    }

    async fn exec(&mut self, sql: String, context: &'static str) -> Result<(), MigrateError> {
        let conn = self.conn().await?;
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(|e| MigrateError::db(context, e))
    }

    async fn release(&mut self) {
        self.give_back().await;
    }

    fn rechecks_history(&self) -> bool {
        false
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn table(&self) -> &str {
        &self.table
    }

    async fn drop_everything(&mut self) -> Result<(), MigrateError> {
        let conn = self.conn().await?;
        sqlx::raw_sql(PG_DROP_ALL)
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(|e| MigrateError::db("dropping the schema's objects", e))
    }
}
