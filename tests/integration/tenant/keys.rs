//! Composite tenant keys: a row of one business cannot name a row of another, whatever the caller does, on
//! the migrated schema of PostgreSQL and SQLite. The foreign keys are `(business_id, x_id) → (business_id,
//! id)`, so the database itself refuses the link, and the repository's error says why.

use entity::prelude::*;
use entity::{roles, user_roles};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseConnection};
use uuid::Uuid;

use crate::entity::fixtures::{business, ctx, session, user};

fn role(name: &str) -> roles::ActiveModel {
    roles::ActiveModel {
        name: Set(name.to_owned()),
        category: Set("staff".into()),
        is_active: Set(true),
        ..Default::default()
    }
}

async fn a_link_across_businesses_is_refused_by_the_database(db: &DatabaseConnection) {
    let (a, b) = (business(db, "a").await, business(db, "b").await);
    let actor = Uuid::now_v7();
    let ua = Users::repo(db, ctx(a.id, actor))
        .expect("scoped")
        .insert(user(1))
        .await
        .expect("A's user");
    let ub = Users::repo(db, ctx(b.id, actor))
        .expect("scoped")
        .insert(user(2))
        .await
        .expect("B's user");
    let ra = Roles::repo(db, ctx(a.id, actor))
        .expect("scoped")
        .insert(role("cashier"))
        .await
        .expect("A's role");
    let rb = Roles::repo(db, ctx(b.id, actor))
        .expect("scoped")
        .insert(role("cashier"))
        .await
        .expect("B's role");

    let in_a = UserRoles::repo(db, ctx(a.id, actor)).expect("scoped");
    let link = |user_id, role_id| user_roles::ActiveModel {
        user_id: Set(user_id),
        role_id: Set(role_id),
        ..Default::default()
    };
    in_a.insert(link(ua.id, ra.id))
        .await
        .expect("A's user with A's role");
    let err = in_a
        .insert(link(ua.id, rb.id))
        .await
        .expect_err("A's user with B's role");
    match &err {
        EntityError::ForeignKeyViolation {
            constraint,
            columns,
            references,
            ..
        } => {
            assert_eq!(constraint, "fk_user_roles_role_id");
            assert_eq!(columns, &["business_id", "role_id"]);
            assert_eq!(references, "roles");
        }
        other => panic!("expected a foreign-key violation, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "user_roles: foreign key fk_user_roles_role_id is violated: user_roles(business_id, role_id) must name \
         an existing row of roles of the same business (a row may not link two businesses)"
    );

    let err = UserSessions::repo(db, ctx(a.id, actor))
        .expect("scoped")
        .insert(session(ub.id, 1))
        .await
        .expect_err("a session of A pointing at B's user");
    assert!(
        matches!(&err, EntityError::ForeignKeyViolation { constraint, columns, .. }
            if constraint == "fk_user_sessions_user_id" && columns == &["business_id", "user_id"]),
        "{err:?}"
    );

    // Raw SQL, below the repository, is refused the same way.
    let backend = db.get_database_backend();
    let raw = sea_orm::Statement::from_sql_and_values(
        backend,
        match backend {
            sea_orm::DbBackend::Postgres => {
                "INSERT INTO user_roles (id, business_id, user_id, role_id) VALUES ($1, $2, $3, $4)"
            }
            _ => "INSERT INTO user_roles (id, business_id, user_id, role_id) VALUES (?, ?, ?, ?)",
        },
        [Uuid::now_v7().into(), b.id.into(), ub.id.into(), ra.id.into()],
    );
    let err = db.execute_raw(raw).await.expect_err("B's row naming A's role");
    assert!(err.to_string().to_lowercase().contains("foreign key"), "{err}");
    let count = UserRoles::repo(db, Ctx::new().all_businesses())
        .expect("all")
        .list()
        .await
        .expect("list")
        .len();
    assert_eq!(count, 1, "only the link inside A was written");
}

#[tokio::test]
async fn a_link_across_businesses_is_refused_on_postgres() {
    let test_db = collex_tests::PgTestDb::migrated().await;
    a_link_across_businesses_is_refused_by_the_database(&test_db.connect().await).await;
}

#[tokio::test]
async fn a_link_across_businesses_is_refused_on_sqlite() {
    let db = collex_tests::sqlite_memory().await;
    collex_tests::apply_repo_migrations(&db).await.expect("migrate");
    a_link_across_businesses_is_refused_by_the_database(&db).await;
}
