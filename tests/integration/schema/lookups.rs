//! The partial indexes at work: the crate's default lookups of live users use them, and a soft-deleted
//! user's phone or e-mail can be registered again while two live users cannot share one.

use entity::prelude::*;
use entity::users;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection};

use super::support::text;

/// 20 businesses × 1,500 users; one in ten soft-deleted, one in five without e-mail.
async fn realistic_users(db: &DatabaseConnection) -> uuid::Uuid {
    db.execute_unprepared(
        "INSERT INTO businesses (name, slug) SELECT 'Business ' || b, 'b' || b FROM generate_series(1, 20) b;
         INSERT INTO users (phone_number, email, display_name, status, business_id, deleted_at)
         SELECT '+1555' || lpad(n::text, 7, '0'),
                CASE WHEN n % 5 = 0 THEN NULL ELSE 'user' || n || '@example.com' END,
                'User ' || n,
                CASE WHEN n % 7 = 0 THEN 'inactive' ELSE 'active' END,
                (SELECT id FROM businesses ORDER BY slug OFFSET (n % 20) LIMIT 1),
                CASE WHEN n % 10 = 0 THEN now() ELSE NULL END
         FROM generate_series(1, 30000) n;
         ANALYZE businesses;
         ANALYZE users;",
    )
    .await
    .expect("seed users");
    let b = text(
        db,
        "SELECT business_id::text FROM users WHERE phone_number = '+15550000001'",
    )
    .await
    .expect("a seeded user");
    b.parse().expect("uuid")
}

/// The index names the plan of `stmt` scans.
async fn plan_indexes(db: &DatabaseConnection, stmt: sea_orm::Statement) -> (Vec<String>, String) {
    let explain = sea_orm::Statement {
        sql: format!("EXPLAIN (FORMAT JSON) {}", stmt.sql),
        ..stmt
    };
    let row = db.query_one_raw(explain).await.expect("explain").expect("a plan");
    let plan: serde_json::Value = row.try_get_by_index(0).expect("json plan");
    let mut names = Vec::new();
    collect(&plan, &mut names);
    (names, plan.to_string())
}

fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::String(n)) = m.get("Index Name") {
                out.push(n.clone());
            }
            m.values().for_each(|x| collect(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn default_lookups_of_live_users_by_phone_and_email_use_the_partial_indexes() {
    let test_db = collex_tests::PgTestDb::migrated().await;
    let db = test_db.connect().await;
    let business = realistic_users(&db).await;
    let repo = Users::repo(&db, Ctx::new().business(business)).expect("scoped repo");

    let by_phone = repo
        .find()
        .filter(users::Column::PhoneNumber.eq("+15550000001"))
        .statement();
    assert!(
        by_phone.sql.contains("\"deleted_at\" IS NULL"),
        "{}",
        by_phone.sql
    );
    let (names, plan) = plan_indexes(&db, by_phone).await;
    assert!(
        names
            .iter()
            .any(|n| n == "idx_users_phone_status" || n == "uq_users_phone_number"),
        "the phone lookup should scan a partial index on phone_number: {plan}"
    );

    let by_email = repo
        .find()
        .filter(users::Column::Email.eq("user1@example.com"))
        .statement();
    let (names, plan) = plan_indexes(&db, by_email).await;
    assert!(
        names
            .iter()
            .any(|n| n == "idx_users_email_status" || n == "uq_users_email"),
        "the e-mail lookup should scan a partial index on email: {plan}"
    );
    // Both candidate indexes are partial: a plan that uses them cannot see deleted rows.
    let partial = text(
        &db,
        "SELECT count(*)::text FROM pg_indexes WHERE tablename = 'users' AND indexdef LIKE '%WHERE%deleted_at IS NULL%' \
         AND indexname IN ('idx_users_phone_status', 'uq_users_phone_number', 'idx_users_email_status', 'uq_users_email')",
    )
    .await;
    assert_eq!(partial.as_deref(), Some("4"));
}

async fn email_is_reusable_after_soft_delete(db: &DatabaseConnection) {
    let biz = Businesses::repo(db, Ctx::new())
        .expect("unscoped")
        .insert(entity::businesses::ActiveModel {
            name: Set("B".into()),
            slug: Set("b".into()),
            status: Set("active".into()),
            ..Default::default()
        })
        .await
        .expect("business");
    let repo = Users::repo(db, Ctx::new().business(biz.id)).expect("scoped");
    let user = |phone: &str| users::ActiveModel {
        phone_number: Set(phone.to_owned()),
        email: Set(Some("same@example.com".to_owned())),
        status: Set("active".into()),
        ..Default::default()
    };
    let first = repo.insert(user("+15550000001")).await.expect("first user");
    let clash = repo.insert(user("+15550000002")).await;
    assert!(
        clash.is_err(),
        "a second live user with the same e-mail is rejected"
    );
    repo.soft_delete(first.id).await.expect("soft delete");
    repo.insert(user("+15550000003"))
        .await
        .expect("the e-mail of a soft-deleted user can be registered again");
    let again = repo.insert(user("+15550000004")).await;
    assert!(again.is_err(), "still only one live user per e-mail");
    // The phone number is freed the same way.
    repo.soft_delete(repo.find().one().await.expect("read").expect("live user").id)
        .await
        .expect("soft delete");
    repo.insert(user("+15550000001"))
        .await
        .expect("phone number reused");
}

#[tokio::test]
async fn a_soft_deleted_users_email_can_be_registered_again_on_postgres() {
    let test_db = collex_tests::PgTestDb::migrated().await;
    let db = test_db.connect().await;
    email_is_reusable_after_soft_delete(&db).await;
}

#[tokio::test]
async fn a_soft_deleted_users_email_can_be_registered_again_on_sqlite() {
    let db = super::support::sqlite().await;
    collex_tests::apply_repo_migrations(&db)
        .await
        .expect("up on SQLite");
    email_is_reusable_after_soft_delete(&db).await;
}
