//! Queries made through SeaORM on [`service::Pool::db`] (the `entity::Repo` path the application uses) pass
//! the pool's gate: their waits enter `wait_count`/`wait_duration`, they time out after
//! `DB_CONN_ACQUIRE_TIMEOUT` with the pool's clear error, and a transaction holds its connection's permit
//! until it ends. On real PostgreSQL with the real migrations.

use std::time::Duration;

use collex_tests::PgTestDb;
use entity::prelude::*;
use entity::{businesses, users};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DbBackend, DbErr, IsolationLevel, Statement, TransactionError,
    TransactionSession, TransactionTrait,
};
use service::Pool;
use tokio::task::JoinHandle;

use super::support::{eventually, pg_config};

const BOUND: Duration = Duration::from_secs(15);

fn pool(db: &PgTestDb, max_open: u32, acquire_timeout: Duration) -> Pool {
    let mut cfg = pg_config(db.url());
    cfg.pool.max_open = max_open;
    cfg.pool.acquire_timeout = acquire_timeout;
    Pool::new(&cfg).expect("pool builds")
}

/// Inserts a business and one of its users through the gated connection; returns the business id.
async fn seed(pool: &Pool) -> uuid::Uuid {
    let shop = Businesses::repo(pool.db(), Ctx::new())
        .expect("businesses are not scoped")
        .insert(businesses::ActiveModel {
            name: Set("Gate Shop".into()),
            slug: Set("gate-shop".into()),
            status: Set("active".into()),
            ..Default::default()
        })
        .await
        .expect("insert business through pool.db()");
    Users::repo(pool.db(), Ctx::new().business(shop.id))
        .expect("scoped")
        .insert(users::ActiveModel {
            phone_number: Set("+15550000001".into()),
            status: Set("active".into()),
            ..Default::default()
        })
        .await
        .expect("insert user through pool.db()");
    shop.id
}

/// Counts the shop's users through `Repo` on `pool.db()` in a task of its own, so the test can watch it wait.
fn spawn_count_users(pool: &Pool, shop: uuid::Uuid) -> JoinHandle<Result<usize, EntityError>> {
    let pool = pool.clone();
    tokio::spawn(async move {
        Users::repo(pool.db(), Ctx::new().business(shop))
            .expect("scoped")
            .list()
            .await
            .map(|rows| rows.len())
    })
}

#[tokio::test]
async fn repo_queries_on_pool_db_count_their_waits_and_time_out_with_the_pools_error() {
    let db = PgTestDb::migrated().await;
    let pool = pool(&db, 2, Duration::from_millis(400));
    let shop = seed(&pool).await;
    let before = pool.stats();
    assert_eq!(
        (before.wait_count, before.wait_duration),
        (0, Duration::ZERO),
        "a free pool is no wait"
    );

    // Every connection taken: a Repo query must wait at the gate, visibly.
    let held = futures::future::join_all([pool.acquire(), pool.acquire()]).await;
    let query = spawn_count_users(&pool, shop);
    eventually(BOUND, "the Repo query is counted as waiting", || {
        pool.stats().wait_count == 1 && pool.counters().pending() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(held);
    let rows = query
        .await
        .expect("query task")
        .expect("the query runs once a connection is free");
    assert_eq!(rows, 1);
    let s = pool.stats();
    assert_eq!(s.wait_count, 1);
    assert!(
        s.wait_duration >= Duration::from_millis(100),
        "{:?}",
        s.wait_duration
    );
    assert_eq!(pool.counters().pending(), 0);

    // Still exhausted after DB_CONN_ACQUIRE_TIMEOUT: the pool's own message, not sqlx's bare timeout. (The
    // connections are back in the pool first: taking one still on its way back would be a wait of its own.)
    eventually(BOUND, "both connections idle", || pool.stats().idle == 2).await;
    let held = futures::future::join_all([pool.acquire(), pool.acquire()]).await;
    let timeouts = pool.counters().timeouts();
    let err = Users::repo(pool.db(), Ctx::new().business(shop))
        .expect("scoped")
        .list()
        .await
        .expect_err("no connection frees up");
    let msg = err.to_string();
    assert!(
        msg.contains("no database connection became free within 400ms")
            && msg.contains("all 2 connections are in use")
            && msg.contains("DB_MAX_OPEN_CONNS"),
        "{msg}"
    );
    assert_eq!(pool.counters().timeouts(), timeouts + 1);
    assert_eq!(pool.stats().wait_count, 2);
    drop(held);
    pool.close().await;
}

#[tokio::test]
async fn a_transaction_on_pool_db_holds_its_permit_until_it_commits() {
    let db = PgTestDb::migrated().await;
    let pool = pool(&db, 1, Duration::from_secs(10));
    let shop = seed(&pool).await;

    let txn = pool.db().begin().await.expect("begin");
    let in_txn = Users::repo(&txn, Ctx::new().business(shop))
        .expect("scoped")
        .list()
        .await
        .expect("query inside the transaction");
    assert_eq!(in_txn.len(), 1);

    let outside = spawn_count_users(&pool, shop);
    eventually(BOUND, "a query outside the open transaction waits", || {
        pool.stats().wait_count == 1
    })
    .await;
    assert!(
        !outside.is_finished(),
        "the transaction's connection is still taken"
    );
    txn.commit().await.expect("commit");
    let rows = outside.await.expect("query task").expect("runs after the commit");
    assert_eq!(rows, 1);
    assert_eq!(pool.counters().pending(), 0);
    pool.close().await;
}

/// Whether `table` exists, asked through the gated connection.
async fn table_exists(pool: &Pool, table: &str) -> bool {
    let row = pool
        .db()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT to_regclass('{table}')::text"),
        ))
        .await
        .expect("to_regclass runs")
        .expect("one row");
    row.try_get_by_index::<Option<String>>(0)
        .expect("a text column")
        .is_some()
}

#[tokio::test]
async fn a_transaction_callback_on_pool_db_commits_on_ok_and_rolls_back_on_err() {
    let db = PgTestDb::new().await;
    let pool = pool(&db, 1, Duration::from_secs(10));

    let failed = pool
        .db()
        .transaction::<_, (), DbErr>(|txn| {
            Box::pin(async move {
                txn.execute_unprepared("CREATE TABLE undone (id integer)").await?;
                Err(DbErr::Custom("the callback fails".into()))
            })
        })
        .await;
    assert!(
        matches!(failed, Err(TransactionError::Transaction(_))),
        "{failed:?}"
    );
    assert!(!table_exists(&pool, "undone").await, "rolled back");

    pool.db()
        .transaction_with_config::<_, (), DbErr>(
            |txn| {
                Box::pin(async move {
                    txn.execute_unprepared("CREATE TABLE kept (id integer)").await?;
                    Ok(())
                })
            },
            Some(IsolationLevel::Serializable),
            None,
        )
        .await
        .expect("the callback succeeds");
    assert!(table_exists(&pool, "kept").await, "committed");
    assert_eq!(pool.counters().pending(), 0);
    assert_eq!(pool.stats().wait_count, 0, "each permit was released");
    pool.close().await;
}
