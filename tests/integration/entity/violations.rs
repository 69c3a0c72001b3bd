//! Unique and foreign-key violations come back as variants that name the constraint and the columns, on the
//! migrated schema of each backend.

use entity::prelude::*;
use entity::{roles, user_sessions};
use sea_orm::{ActiveValue::Set, DatabaseConnection};
use uuid::Uuid;

use super::fixtures::{business, ctx, user};

fn role(name: &str) -> roles::ActiveModel {
    roles::ActiveModel {
        name: Set(name.to_owned()),
        category: Set("staff".into()),
        is_active: Set(true),
        ..Default::default()
    }
}

async fn violations_are_typed(db: &DatabaseConnection) {
    let b = business(db, "a").await;
    let users = Users::repo(db, ctx(b.id, Uuid::now_v7())).expect("repo");
    users.insert(user(1)).await.expect("first");
    let mut dup = user(2);
    dup.phone_number = Set(format!("+1555{:07}", 1));
    // App code matches on the variant, as it would to answer "this phone number is taken".
    match users.insert(dup).await {
        Err(EntityError::UniqueViolation {
            entity,
            constraint,
            columns,
            ..
        }) => {
            assert_eq!(entity, "users");
            assert_eq!(constraint, "uq_users_phone_number");
            assert_eq!(columns, ["phone_number"]);
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }

    let roles = Roles::repo(db, ctx(b.id, Uuid::now_v7())).expect("repo");
    roles.insert(role("cashier")).await.expect("role");
    let err = roles.insert(role("cashier")).await.expect_err("same name twice");
    assert!(
        matches!(&err, EntityError::UniqueViolation { constraint, columns, .. }
            if constraint == "uq_roles_business_name" && columns == &["business_id", "name"]),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "roles: another row already has this business_id, name (unique constraint uq_roles_business_name)"
    );

    let err = UserSessions::repo(db, ctx(b.id, Uuid::now_v7()))
        .expect("repo")
        .insert(user_sessions::ActiveModel {
            user_id: Set(Uuid::now_v7()),
            token_hash: Set("f".repeat(64)),
            is_active: Set(true),
            expires_at: Set(entity::repo::now()),
            ..Default::default()
        })
        .await
        .expect_err("session of no user");
    match &err {
        EntityError::ForeignKeyViolation {
            constraint,
            table,
            columns,
            references,
            ..
        } => {
            assert_eq!(constraint, "fk_user_sessions_user_id");
            assert_eq!(table, "user_sessions");
            // The tenant key: the user must exist in the session's business.
            assert_eq!(columns, &["business_id", "user_id"]);
            assert_eq!(references, "users");
        }
        other => panic!("expected a foreign-key violation, got {other:?}"),
    }
    assert!(
        std::error::Error::source(&err).is_some(),
        "the driver's error is kept"
    );
}

#[tokio::test]
async fn violations_are_typed_on_postgres() {
    let test_db = collex_tests::PgTestDb::migrated().await;
    violations_are_typed(&test_db.connect().await).await;
}

#[tokio::test]
async fn violations_are_typed_on_sqlite() {
    let db = collex_tests::sqlite_memory().await;
    collex_tests::apply_repo_migrations(&db).await.expect("migrate");
    violations_are_typed(&db).await;
}
