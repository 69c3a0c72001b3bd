//! Query timing (issue 14, points 1 and 2) on real PostgreSQL: every statement on the service's connection,
//! through `entity::Repo` and through SeaORM, lands exactly once in `db_client_operation_duration_seconds`
//! under its table, operation and outcome; invented tables and SQL add no series; a statement at or above
//! `DB_SLOW_QUERY_THRESHOLD` logs one line with its normalized SQL and never its bound values; and
//! `collex_database_up`, the database-down alert's series.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use collex_tests::PgTestDb;
use entity::prelude::*;
use entity::{OpKind, Outcome, businesses, users};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel, Statement,
    TransactionSession, TransactionTrait,
};
use service::Pool;

use super::support::{get, pg_config, start};

/// The value of one sample line of `/metrics` (`name{labels} value`), or `None` when absent.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn count_series(collection: &str, op: &str, outcome: &str) -> String {
    format!(
        "db_client_operation_duration_seconds_count{{db_collection_name=\"{collection}\",db_operation_name=\"{op}\",outcome=\"{outcome}\"}}"
    )
}

async fn shop(pool: &Pool) -> businesses::Model {
    Businesses::repo(pool.db(), Ctx::new())
        .expect("businesses are not scoped")
        .insert(businesses::ActiveModel {
            name: Set("Timing Shop".into()),
            slug: Set("timing-shop".into()),
            status: Set("active".into()),
            ..Default::default()
        })
        .await
        .expect("insert business")
}

fn user(n: usize) -> users::ActiveModel {
    users::ActiveModel {
        phone_number: Set(format!("+1555000{n:04}")),
        status: Set("active".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_known_number_of_inserts_on_users_shows_up_as_exactly_that_count() {
    let db = PgTestDb::migrated().await;
    let svc = start(pg_config(db.url())).await;
    let pool = svc.pool().clone();
    let shop = shop(&pool).await;
    let repo = Users::repo(pool.db(), Ctx::new().business(shop.id)).expect("scoped");
    const N: usize = 7;
    let mut last = None;
    for n in 0..N {
        last = Some(repo.insert(user(n)).await.expect("insert user"));
    }
    // A stale update: its outcome is stale_version, not ok.
    let ada = last.expect("inserted");
    let mut first = ada.clone().into_active_model();
    first.status = Set("blocked".into());
    repo.update(first).await.expect("first writer wins");
    let mut second = ada.into_active_model();
    second.status = Set("inactive".into());
    assert!(
        repo.update(second)
            .await
            .expect_err("second writer is stale")
            .is_stale()
    );
    // SeaORM's own statements on the service's connection count too, read from their SQL.
    let all = users::Entity::find().all(pool.db()).await.expect("SeaORM select");
    assert_eq!(all.len(), N);
    // A repository statement inside a transaction is counted once, not once more by the transaction.
    let txn = pool.db().begin().await.expect("begin");
    Users::repo(&txn, Ctx::new().business(shop.id))
        .expect("scoped")
        .insert(user(N))
        .await
        .expect("insert in a transaction");
    txn.commit().await.expect("commit");

    let m = get(svc.addr(), "/metrics").await.body;
    assert_eq!(
        sample(&m, &count_series("users", "insert", "ok")),
        Some((N + 1) as f64),
        "{m}"
    );
    assert_eq!(
        sample(&m, &count_series("businesses", "insert", "ok")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, &count_series("users", "update", "ok")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, &count_series("users", "update", "stale_version")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, &count_series("users", "select", "ok")),
        Some(1.0),
        "{m}"
    );
    let inf = "db_client_operation_duration_seconds_bucket{db_collection_name=\"users\",db_operation_name=\"insert\",outcome=\"ok\",le=\"+Inf\"}";
    assert_eq!(sample(&m, inf), Some((N + 1) as f64), "{m}");
    // The same numbers from the series table itself.
    let q = pool.queries();
    assert_eq!(
        q.histogram("users", OpKind::Insert, Outcome::Ok).count(),
        (N + 1) as u64
    );
    svc.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn invented_tables_and_sql_keep_the_label_set_bounded() {
    let db = PgTestDb::migrated().await;
    let svc = start(pg_config(db.url())).await;
    let pool = svc.pool().clone();
    for i in 0..40 {
        pool.db()
            .execute_unprepared(&format!("CREATE TABLE invented_{i} (secret_{i} int)"))
            .await
            .expect("create");
        pool.db()
            .execute_unprepared(&format!("INSERT INTO invented_{i} VALUES ({i})"))
            .await
            .expect("insert");
        pool.db()
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT secret_{i} FROM \"invented_{i}\" WHERE secret_{i} = {i}"),
            ))
            .await
            .expect("select");
        let _ = pool
            .db()
            .execute_unprepared(&format!("SELECT * FROM no_such_table_{i}"))
            .await
            .expect_err("no such table");
    }
    let m = get(svc.addr(), "/metrics").await.body;
    let series: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("db_client_operation_duration_seconds_count"))
        .collect();
    assert!(
        !m.contains("invented") && !m.contains("secret") && !m.contains("no_such"),
        "{m}"
    );
    assert_eq!(
        sample(&m, &count_series("other", "other", "ok")),
        Some(40.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, &count_series("other", "insert", "ok")),
        Some(40.0),
        "{m}"
    );
    // Start-up's own reads (the row-level-security check) may add to select/ok.
    assert!(
        sample(&m, &count_series("other", "select", "ok")).is_some_and(|n| n >= 40.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, &count_series("other", "select", "error")),
        Some(40.0),
        "{m}"
    );
    // 160 statements on 80 invented names: four series, plus at most start-up's own.
    assert!(series.len() <= 5, "{series:#?}");
    svc.shutdown().await.expect("shutdown");
}

/// A tracing subscriber that keeps every JSON line, installed for this thread (the tests run on a
/// current-thread runtime, so the statements' tasks log here).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn slow_lines(&self) -> Vec<serde_json::Value> {
        let text = self
            .0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "collex::slow_query")
            .collect()
    }
}

#[tokio::test]
async fn a_statement_over_the_threshold_logs_one_line_without_its_bound_values() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let db = PgTestDb::migrated().await;
    let mut cfg = pg_config(db.url());
    cfg.pool.max_open = 4;
    let pool = Pool::new(&cfg).expect("pool");
    pool.queries().set_slow_threshold(Duration::from_millis(150));
    let sleep = |secs: f64| {
        Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_sleep($1::float8), $2::text AS card",
            [secs.into(), "4111-1111-1111-1111".into()],
        )
    };

    // Below the threshold: nothing.
    pool.db().query_all_raw(sleep(0.01)).await.expect("fast");
    assert!(captured.slow_lines().is_empty(), "{:?}", captured.slow_lines());

    // Above: one line, with the placeholders and without the values.
    pool.db().query_all_raw(sleep(0.3)).await.expect("slow");
    let lines = captured.slow_lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let f = &lines[0]["fields"];
    assert_eq!(f["message"], "slow query");
    assert_eq!(f["sql"], "SELECT pg_sleep($1::float8), $2::text AS card");
    assert_eq!(f["entity"], "other");
    assert_eq!(f["operation"], "select");
    assert_eq!(f["rows"], 1);
    assert!(f["duration_ms"].as_f64().is_some_and(|d| d >= 300.0), "{f}");
    assert!(!lines[0].to_string().contains("4111"), "{}", lines[0]);

    // A literal written into the SQL text is hidden too.
    pool.db()
        .execute_unprepared("SELECT pg_sleep(0.2), 'jane@example.com'")
        .await
        .expect("slow literal");
    let lines = captured.slow_lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[1]["fields"]["sql"], "SELECT pg_sleep(?), '?'");

    // A repository update held behind a row lock: the entity and operation come from the repository, and the
    // value it writes is not in the line.
    let shop = shop(&pool).await;
    let repo = Users::repo(pool.db(), Ctx::new().business(shop.id)).expect("scoped");
    let ada = repo.insert(user(1)).await.expect("insert");
    let locker = db.connect().await;
    let txn = locker.begin().await.expect("begin");
    txn.execute_unprepared(&format!("SELECT 1 FROM users WHERE id = '{}' FOR UPDATE", ada.id))
        .await
        .expect("lock the row");
    let mut edit = ada.into_active_model();
    edit.status = Set("secret-status-value".into());
    let update = repo.update(edit);
    let release = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        txn.commit().await.expect("release the row");
    };
    let (updated, ()) = tokio::join!(update, release);
    updated.expect("update after the lock");
    let lines = captured.slow_lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let f = &lines[2]["fields"];
    assert_eq!(
        (f["entity"].as_str(), f["operation"].as_str()),
        (Some("users"), Some("update")),
        "{f}"
    );
    assert_eq!(f["rows"], 1);
    assert!(
        !lines[2].to_string().contains("secret-status-value"),
        "{}",
        lines[2]
    );
    assert_eq!(pool.queries().slow_total(), 3);

    // Zero turns the log off.
    pool.queries().set_slow_threshold(Duration::ZERO);
    pool.db().query_all_raw(sleep(0.2)).await.expect("slow, unlogged");
    assert_eq!(captured.slow_lines().len(), 3);
    pool.close().await;
}

/// `collex_database_up`, which the `CollexDatabaseDown` alert of `deploy/prometheus/alerts.yml` watches: 0
/// while the last connection attempt failed and none opened since, 1 again once one opens.
#[tokio::test]
async fn database_up_follows_the_last_connection_attempt() {
    let db = PgTestDb::new().await;
    let proxy = super::support::Proxy::start(super::support::upstream(db.url())).await;
    proxy.cut();
    let svc = start(super::support::via(pg_config(db.url()), &proxy)).await;
    let addr = svc.addr();
    super::support::wait_for_status(addr, "/ready", 503, Duration::from_secs(15)).await;
    let m = get(addr, "/metrics").await.body;
    assert_eq!(sample(&m, "collex_database_up"), Some(0.0), "{m}");
    proxy.restore();
    super::support::wait_for_status(addr, "/ready", 200, Duration::from_secs(30)).await;
    let m = get(addr, "/metrics").await.body;
    assert_eq!(sample(&m, "collex_database_up"), Some(1.0), "{m}");
    svc.shutdown().await.expect("shutdown");
}
