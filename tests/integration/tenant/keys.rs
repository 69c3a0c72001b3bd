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

/// Migrations 004-006 roll back to the single-column keys without losing rows, and apply again, leaving the
/// schema the entities declare.
async fn the_tenant_migrations_roll_back_and_apply_again_with_rows(db: &DatabaseConnection) {
    use migration::{DownTarget, MigrationSet, Migrator};
    let (a, b) = (business(db, "a").await, business(db, "b").await);
    let actor = Uuid::now_v7();
    for (n, biz) in [(1, a.id), (2, b.id)] {
        let u = Users::repo(db, ctx(biz, actor))
            .expect("scoped")
            .insert(user(n))
            .await
            .expect("user");
        UserSessions::repo(db, ctx(biz, actor))
            .expect("scoped")
            .insert(session(u.id, n))
            .await
            .expect("session");
    }
    let load = || {
        MigrationSet::load_for(
            &collex_tests::migrations_dir(),
            migration::rust_migrations(),
            db.get_database_backend(),
        )
        .expect("the committed migrations load")
    };
    let down = Migrator::new(load())
        .down(db, DownTarget::To(3))
        .await
        .expect("roll back to 003");
    assert_eq!(down.steps.len(), 3);
    let all = Ctx::new().all_businesses();
    let sessions = UserSessions::repo(db, all)
        .expect("all")
        .list()
        .await
        .expect("list");
    assert_eq!(sessions.len(), 2, "no row lost by the rollback");
    Migrator::new(load()).up(db, None).await.expect("apply again");
    let sessions = UserSessions::repo(db, all)
        .expect("all")
        .list()
        .await
        .expect("list");
    assert_eq!(sessions.len(), 2, "no row lost by the rebuild");
    let drift = migration::drift_of(db, &collex_tests::migrations_dir(), &entity::registry::all())
        .await
        .expect("drift");
    assert!(drift.is_empty(), "{:#?}", drift.lines());
}

#[tokio::test]
async fn the_tenant_migrations_roll_back_and_apply_again_on_postgres() {
    let test_db = collex_tests::PgTestDb::migrated().await;
    the_tenant_migrations_roll_back_and_apply_again_with_rows(&test_db.connect().await).await;
}

#[tokio::test]
async fn the_tenant_migrations_roll_back_and_apply_again_on_sqlite() {
    let db = collex_tests::sqlite_memory().await;
    collex_tests::apply_repo_migrations(&db).await.expect("migrate");
    the_tenant_migrations_roll_back_and_apply_again_with_rows(&db).await;
}
