//! SoftDeletable: deleted rows are invisible by default, in relation loads too; restore and force delete.

use entity::prelude::*;
use entity::users;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait};
use uuid::Uuid;

use super::fixtures::{business, ctx, session, user};
use super::on_both;

async fn soft_deleted_rows_are_hidden_from_default_reads(db: &DatabaseConnection) {
    let b = business(db, "acme").await;
    let repo = Users::repo(db, ctx(b.id, Uuid::now_v7())).expect("repo");
    let kept = repo.insert(user(1)).await.expect("insert");
    let gone = repo.insert(user(2)).await.expect("insert");
    repo.soft_delete(gone.id).await.expect("soft delete");

    assert!(repo.find_by_id(gone.id).await.expect("find").is_none());
    assert!(matches!(
        repo.get(gone.id).await,
        Err(EntityError::NotFound { .. })
    ));
    let live: Vec<_> = repo
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(live, vec![kept.id]);
    let by_phone = repo
        .find()
        .filter(users::Column::PhoneNumber.eq(gone.phone_number.clone()))
        .count();
    assert_eq!(by_phone.await.expect("count"), 0);

    // The row is still there, reachable through the named calls.
    let deleted = repo.only_deleted().list().await.expect("only_deleted");
    assert_eq!(deleted.len(), 1);
    assert!(deleted[0].deleted_at.is_some());
    assert_eq!(deleted[0].version, 2, "soft delete is a change");
    assert_eq!(repo.with_deleted().list().await.expect("with_deleted").len(), 2);
    assert_eq!(Users::find().count(db).await.expect("raw count"), 2);

    // Deleting again finds nothing live.
    assert!(matches!(
        repo.soft_delete(gone.id).await,
        Err(EntityError::NotFound { .. })
    ));
    // Updates do not reach deleted rows.
    let mut am: users::ActiveModel = deleted[0].clone().into();
    am.status = Set("blocked".into());
    assert!(matches!(repo.update(am).await, Err(EntityError::NotFound { .. })));
}
on_both!(hidden_by_default, soft_deleted_rows_are_hidden_from_default_reads);

async fn relation_loads_skip_deleted_rows(db: &DatabaseConnection) {
    let b = business(db, "acme").await;
    let cx = ctx(b.id, Uuid::now_v7());
    let users_repo = Users::repo(db, cx).expect("repo");
    let u1 = users_repo.insert(user(1)).await.expect("insert");
    let u2 = users_repo.insert(user(2)).await.expect("insert");
    let sessions = UserSessions::repo(db, cx).expect("repo");
    let s1 = sessions.insert(session(u1.id, 1)).await.expect("insert");
    let s2 = sessions.insert(session(u1.id, 2)).await.expect("insert");
    let s3 = sessions.insert(session(u2.id, 3)).await.expect("insert");
    sessions.soft_delete(s2.id).await.expect("soft delete");

    let related = users_repo
        .find_related::<UserSessions>(&u1)
        .await
        .expect("find_related");
    assert_eq!(related.iter().map(|s| s.id).collect::<Vec<_>>(), vec![s1.id]);

    let loaded = users_repo
        .load_related::<UserSessions>(&[u1.clone(), u2.clone()])
        .await
        .expect("load");
    assert_eq!(loaded[0].iter().map(|s| s.id).collect::<Vec<_>>(), vec![s1.id]);
    assert_eq!(loaded[1].iter().map(|s| s.id).collect::<Vec<_>>(), vec![s3.id]);
}
on_both!(relation_loads, relation_loads_skip_deleted_rows);

async fn restore_and_force_delete(db: &DatabaseConnection) {
    let b = business(db, "acme").await;
    let repo = Users::repo(db, ctx(b.id, Uuid::now_v7())).expect("repo");
    let u = repo.insert(user(1)).await.expect("insert");
    assert!(
        matches!(repo.restore(u.id).await, Err(EntityError::NotFound { .. })),
        "live rows cannot be restored"
    );
    repo.soft_delete(u.id).await.expect("soft delete");
    let back = repo.restore(u.id).await.expect("restore");
    assert_eq!(back.deleted_at, None);
    assert_eq!(back.version, 3);
    assert_eq!(repo.get(u.id).await.expect("visible again").id, u.id);

    repo.soft_delete(u.id).await.expect("soft delete");
    repo.force_delete(u.id)
        .await
        .expect("force delete reaches deleted rows");
    assert_eq!(Users::find().count(db).await.expect("count"), 0);
    assert!(matches!(
        repo.force_delete(u.id).await,
        Err(EntityError::NotFound { .. })
    ));
}
on_both!(restore_force, restore_and_force_delete);

async fn bulk_delete_is_soft_and_respects_filters(db: &DatabaseConnection) {
    let b = business(db, "acme").await;
    let repo = Users::repo(db, ctx(b.id, Uuid::now_v7())).expect("repo");
    let rows = repo.insert_many((1..=4).map(user)).await.expect("insert");
    let n = repo
        .delete_many(users::Column::Id.is_in([rows[0].id, rows[1].id]))
        .await
        .expect("delete_many");
    assert_eq!(n, 2);
    assert_eq!(repo.list().await.expect("list").len(), 2);
    assert_eq!(
        Users::find().count(db).await.expect("raw"),
        4,
        "bulk delete is soft"
    );
    // Already deleted rows are not deleted again (no second stamp).
    let again = repo
        .delete_many(users::Column::Id.is_in([rows[0].id, rows[1].id]))
        .await
        .expect("again");
    assert_eq!(again, 0);
    // Bulk updates skip deleted rows.
    let touched = repo
        .update_many()
        .col_expr(users::Column::Status, sea_orm::sea_query::Expr::val("x"))
        .exec()
        .await
        .expect("bulk update");
    assert_eq!(touched, 2);
    let n = repo
        .force_delete_many(users::Column::Id.is_in([rows[0].id]))
        .await
        .expect("force many");
    assert_eq!(n, 1);
    assert_eq!(Users::find().count(db).await.expect("raw"), 3);
}
on_both!(bulk_delete, bulk_delete_is_soft_and_respects_filters);
