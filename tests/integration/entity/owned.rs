//! Behaviour-owned columns: no write path of the repository lets the caller write them, and none moves a row
//! to another business.

use entity::prelude::*;
use entity::users;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait, IntoActiveModel};
use uuid::Uuid;

use super::fixtures::{business, ctx, session, user};
use super::on_both;

/// `err` refuses a write of the behaviour column `column`.
fn assert_owned(err: &EntityError, column: &str) {
    assert!(
        matches!(err, EntityError::OwnedColumn { column: c, .. } if *c == column),
        "expected OwnedColumn({column}), got {err:?}"
    );
}

/// The row as stored, read around the repository.
async fn stored(db: &DatabaseConnection, id: Uuid) -> users::Model {
    Users::find_by_id(id)
        .one(db)
        .await
        .expect("raw read")
        .expect("row exists")
}

async fn bulk_col_expr_cannot_move_rows_to_another_business(db: &DatabaseConnection) {
    let (a, b) = (business(db, "a").await, business(db, "b").await);
    let in_a = Users::repo(db, ctx(a.id, Uuid::now_v7())).expect("repo");
    let in_b = Users::repo(db, ctx(b.id, Uuid::now_v7())).expect("repo");
    let row = in_a.insert(user(1)).await.expect("insert");

    let moved = in_a
        .update_many()
        .col_expr(users::Column::BusinessId, Expr::val(b.id))
        .exec()
        .await;
    let err = moved.expect_err("a bulk update may not write business_id");
    assert_owned(&err, "business_id");
    assert!(err.to_string().contains("users.business_id"), "{err}");
    assert_eq!(stored(db, row.id).await, row, "the row did not move");
    assert!(in_b.list().await.expect("list b").is_empty());
}
on_both!(
    bulk_business_move,
    bulk_col_expr_cannot_move_rows_to_another_business
);

async fn bulk_col_expr_of_a_behaviour_column_is_refused(db: &DatabaseConnection) {
    let b = business(db, "a").await;
    let repo = Users::repo(db, ctx(b.id, Uuid::now_v7())).expect("repo");
    let row = repo.insert(user(1)).await.expect("insert");
    let cases: [(users::Column, Expr); 7] = [
        (users::Column::DeletedAt, Expr::val(entity::repo::now())),
        (users::Column::Id, Expr::val(Uuid::now_v7())),
        (users::Column::CreatedBy, Expr::val(Uuid::now_v7())),
        (users::Column::Version, Expr::val(99)),
        (users::Column::UpdatedAt, Expr::val(entity::repo::now())),
        (users::Column::UpdatedBy, Expr::val(Uuid::now_v7())),
        (users::Column::CreatedAt, Expr::val(entity::repo::now())),
    ];
    for (col, expr) in cases {
        let name = sea_orm::IdenStatic::as_str(&col);
        let err = repo
            .update_many()
            .col_expr(users::Column::Status, Expr::val("x"))
            .col_expr(col, expr)
            .exec()
            .await
            .expect_err(name);
        assert_owned(&err, name);
        assert_eq!(stored(db, row.id).await, row, "{name}: nothing was written");
    }
    // `set` follows the same rule as `col_expr`.
    let am = users::ActiveModel {
        deleted_at: Set(Some(entity::repo::now())),
        ..Default::default()
    };
    let err = repo
        .update_many()
        .set(am)
        .exec()
        .await
        .expect_err("set deleted_at");
    assert_owned(&err, "deleted_at");
    assert!(
        err.to_string().contains("soft_delete"),
        "names the call to use: {err}"
    );
    assert_eq!(stored(db, row.id).await, row);
}
on_both!(bulk_owned_columns, bulk_col_expr_of_a_behaviour_column_is_refused);

async fn update_refuses_updated_at_and_updated_by_from_the_caller(db: &DatabaseConnection) {
    let b = business(db, "a").await;
    let repo = Users::repo(db, ctx(b.id, Uuid::now_v7())).expect("repo");
    let row = repo.insert(user(1)).await.expect("insert");

    let mut am = row.clone().into_active_model();
    am.status = Set("blocked".into());
    am.updated_at = Set(entity::repo::now() - chrono::Duration::days(365));
    let err = repo.update(am).await.expect_err("Set(updated_at)");
    assert_owned(&err, "updated_at");

    let mut am = row.clone().into_active_model();
    am.status = Set("blocked".into());
    am.updated_by = Set(Some(Uuid::now_v7()));
    let err = repo.update(am).await.expect_err("Set(updated_by)");
    assert_owned(&err, "updated_by");
    assert_eq!(stored(db, row.id).await, row, "nothing was written");
}
on_both!(
    update_owned_columns,
    update_refuses_updated_at_and_updated_by_from_the_caller
);

async fn insert_refuses_behaviour_columns_but_takes_an_id_and_the_scopes_business(db: &DatabaseConnection) {
    let b = business(db, "a").await;
    let repo = Users::repo(db, ctx(b.id, Uuid::now_v7())).expect("repo");
    let mut am = user(1);
    am.version = Set(7);
    let err = repo.insert(am).await.expect_err("Set(version)");
    assert_owned(&err, "version");
    let mut am = user(1);
    am.deleted_at = Set(Some(entity::repo::now()));
    let err = repo.insert(am).await.expect_err("Set(deleted_at)");
    assert_owned(&err, "deleted_at");
    assert!(repo.list().await.expect("list").is_empty(), "nothing inserted");

    let id = Uuid::now_v7();
    let mut am = user(1);
    am.id = Set(id);
    am.business_id = Set(b.id);
    let row = repo
        .insert(am)
        .await
        .expect("an id and the scope's own business are accepted");
    assert_eq!((row.id, row.business_id, row.version), (id, b.id, 1));
}
on_both!(
    insert_owned_columns,
    insert_refuses_behaviour_columns_but_takes_an_id_and_the_scopes_business
);

async fn a_direct_update_cannot_move_a_row_to_another_business(db: &DatabaseConnection) {
    use sea_orm::ActiveModelTrait;
    let (a, b) = (business(db, "a").await, business(db, "b").await);
    let cx = ctx(a.id, Uuid::now_v7());
    let u = Users::repo(db, cx)
        .expect("repo")
        .insert(user(1))
        .await
        .expect("user");
    let s = UserSessions::repo(db, cx)
        .expect("repo")
        .insert(session(u.id, 1))
        .await
        .expect("session");
    // Around the repository: SeaORM's own ActiveModel update of an unversioned entity.
    let mut am = s.clone().into_active_model();
    am.business_id = Set(b.id);
    let err = am.update(db).await.expect_err("moving a session to business B");
    assert!(err.to_string().contains("user_sessions.business_id"), "{err}");
    let stored = UserSessions::find_by_id(s.id)
        .one(db)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(stored.business_id, a.id);
}
on_both!(
    direct_update_move,
    a_direct_update_cannot_move_a_row_to_another_business
);
