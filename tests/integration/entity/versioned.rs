//! Versioned: every update checks and bumps the version; a lost race is a typed error, never a lost write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use entity::prelude::*;
use entity::user_preferences;
use sea_orm::{ActiveValue::Set, DatabaseConnection, IntoActiveModel};
use uuid::Uuid;

use super::fixtures::{business, counter};
use super::on_both;

async fn stale_update_returns_stale_version_with_the_expected_version(db: &DatabaseConnection) {
    let b = business(db, "acme").await;
    let prefs = counter(db, b.id).await;
    let repo = UserPreferences::repo(db, Ctx::new().business(b.id)).expect("repo");
    let mut first = prefs.clone().into_active_model();
    first.preferences = Set(serde_json::json!({ "n": 1 }));
    let saved = repo.update(first).await.expect("first writer wins");
    assert_eq!(saved.version, 2);

    let mut second = prefs.clone().into_active_model();
    second.preferences = Set(serde_json::json!({ "n": 99 }));
    let err = repo.update(second).await.expect_err("second writer is stale");
    match err {
        EntityError::StaleVersion {
            expected, found, id, ..
        } => {
            assert_eq!((expected, found, id), (1, 2, prefs.id));
        }
        other => panic!("expected StaleVersion, got {other:?}"),
    }
    assert_eq!(
        repo.get(prefs.id).await.expect("get").preferences,
        serde_json::json!({ "n": 1 })
    );
}
on_both!(
    stale_version,
    stale_update_returns_stale_version_with_the_expected_version
);

async fn an_update_that_changes_nothing_still_checks_and_bumps_the_version(db: &DatabaseConnection) {
    let b = business(db, "acme").await;
    let prefs = counter(db, b.id).await;
    let repo = UserPreferences::repo(db, Ctx::new().business(b.id)).expect("repo");
    let touched = repo
        .update(prefs.clone().into_active_model())
        .await
        .expect("no-op update runs");
    assert_eq!(touched.version, 2);
    let err = repo
        .update(prefs.into_active_model())
        .await
        .expect_err("stale no-op update");
    assert!(err.is_stale(), "{err:?}");
}
on_both!(
    noop_update,
    an_update_that_changes_nothing_still_checks_and_bumps_the_version
);

async fn update_without_a_version_is_refused(db: &DatabaseConnection) {
    let b = business(db, "acme").await;
    let prefs = counter(db, b.id).await;
    let repo = UserPreferences::repo(db, Ctx::new().business(b.id)).expect("repo");
    let am = user_preferences::ActiveModel {
        id: sea_orm::ActiveValue::Unchanged(prefs.id),
        preferences: Set(serde_json::json!({})),
        ..Default::default()
    };
    assert!(matches!(
        repo.update(am).await,
        Err(EntityError::MissingVersion { .. })
    ));
}
on_both!(missing_version, update_without_a_version_is_refused);

/// Adds one to `{"n": ..}` by read-modify-write; `retry` says whether a lost race is retried.
async fn increment(
    db: &DatabaseConnection,
    business: Uuid,
    id: Uuid,
    retry: bool,
    stale: &AtomicU64,
) -> bool {
    let repo = UserPreferences::repo(db, Ctx::new().business(business)).expect("repo");
    loop {
        let row = repo.get(id).await.expect("get");
        let n = row.preferences["n"].as_i64().expect("n");
        let mut am = row.into_active_model();
        am.preferences = Set(serde_json::json!({ "n": n + 1 }));
        match repo.update(am).await {
            Ok(_) => return true,
            Err(EntityError::StaleVersion { expected, found, .. }) => {
                assert!(
                    found > expected,
                    "a lost race names a newer version: {expected} -> {found}"
                );
                stale.fetch_add(1, Ordering::Relaxed);
                if !retry {
                    return false;
                }
            }
            Err(e) => panic!("update failed: {e}"),
        }
    }
}

async fn run_contention(retry: bool) -> (i64, i32, u64, u64) {
    let (_guard, db) = collex_tests::pg_with_entities().await;
    let db = Arc::new(db);
    let b = business(&db, "acme").await;
    let prefs = counter(&db, b.id).await;
    let stale = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (db, stale, ok) = (db.clone(), stale.clone(), ok.clone());
        let (bid, id) = (b.id, prefs.id);
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                if increment(&db, bid, id, retry, &stale).await {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let repo = UserPreferences::repo(&*db, Ctx::new().business(b.id)).expect("repo");
    let row = repo.get(prefs.id).await.expect("get");
    let n = row.preferences["n"].as_i64().expect("n");
    (
        n,
        row.version,
        ok.load(Ordering::Relaxed),
        stale.load(Ordering::Relaxed),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_tasks_retrying_on_stale_version_count_to_exactly_1600_on_postgres() {
    let (n, version, ok, _stale) = run_contention(true).await;
    assert_eq!(ok, 1600);
    assert_eq!(n, 1600, "no increment lost");
    assert_eq!(version, 1601);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_retry_every_lost_race_surfaces_as_stale_version_on_postgres() {
    let (n, version, ok, stale) = run_contention(false).await;
    assert_eq!(
        ok + stale,
        1600,
        "every attempt either wrote or reported StaleVersion"
    );
    assert_eq!(
        n as u64, ok,
        "every reported success is in the row: no lost update"
    );
    assert_eq!(version as u64, ok + 1);
    assert!(stale > 0, "16 tasks on one row must collide at least once");
}
