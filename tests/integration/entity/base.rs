//! BaseModel and AuditableEntity: ids, timestamps and actor stamps, on single and bulk writes.

use entity::prelude::*;
use entity::users;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, IntoActiveModel};
use uuid::Uuid;

use super::fixtures::{business, ctx, user};
use super::on_both;

async fn insert_stamps_id_timestamps_actor_and_version(db: &DatabaseConnection) {
    let b = business(db, "acme").await;
    let actor = Uuid::now_v7();
    let before = entity::repo::now();
    let u = Users::repo(db, ctx(b.id, actor))
        .expect("repo")
        .insert(user(1))
        .await
        .expect("insert");
    assert_eq!(u.id.get_version_num(), 7, "ids are UUID v7");
    assert!(u.created_at >= before && u.created_at == u.updated_at);
    assert_eq!(u.created_by, Some(actor));
    assert_eq!(u.updated_by, Some(actor));
    assert_eq!(u.business_id, b.id);
    assert_eq!(u.version, 1);
    assert_eq!(u.deleted_at, None);
}
on_both!(insert_stamps, insert_stamps_id_timestamps_actor_and_version);

async fn update_stamps_updated_at_and_updated_by_but_keeps_created(db: &DatabaseConnection) {
    let b = business(db, "acme").await;
    let (creator, editor) = (Uuid::now_v7(), Uuid::now_v7());
    let u = Users::repo(db, ctx(b.id, creator))
        .expect("repo")
        .insert(user(1))
        .await
        .expect("insert");
    let editing = Users::repo(db, ctx(b.id, editor)).expect("repo");
    let mut am = u.clone().into_active_model();
    am.display_name = Set(Some("Renamed".into()));
    am.created_by = Set(Some(editor));
    let err = editing
        .update(am)
        .await
        .expect_err("created_by is the repository's");
    assert!(
        matches!(
            err,
            EntityError::OwnedColumn {
                column: "created_by",
                ..
            }
        ),
        "{err:?}"
    );
    let mut am = u.clone().into_active_model();
    am.display_name = Set(Some("Renamed".into()));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let v = editing.update(am).await.expect("update");
    assert_eq!(v.display_name.as_deref(), Some("Renamed"));
    assert!(v.updated_at > u.updated_at, "updated_at moves on update");
    assert_eq!(v.created_at, u.created_at);
    assert_eq!(v.created_by, Some(creator));
    assert_eq!(v.updated_by, Some(editor));
}
on_both!(
    update_stamps,
    update_stamps_updated_at_and_updated_by_but_keeps_created
);

async fn bulk_update_stamps_every_changed_row(db: &DatabaseConnection) {
    let b = business(db, "acme").await;
    let (creator, editor) = (Uuid::now_v7(), Uuid::now_v7());
    let repo = Users::repo(db, ctx(b.id, creator)).expect("repo");
    let rows = repo.insert_many((1..=3).map(user)).await.expect("insert_many");
    assert_eq!(rows.len(), 3);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let n = Users::repo(db, ctx(b.id, editor))
        .expect("repo")
        .update_many()
        .col_expr(users::Column::Status, sea_orm::sea_query::Expr::val("inactive"))
        .filter(users::Column::PhoneNumber.ne(rows[2].phone_number.clone()))
        .exec()
        .await
        .expect("bulk update");
    assert_eq!(n, 2);
    for r in &rows[..2] {
        let now = repo.get(r.id).await.expect("get");
        assert_eq!(now.status, "inactive");
        assert!(now.updated_at > r.updated_at);
        assert_eq!(now.updated_by, Some(editor));
        assert_eq!(now.version, 2, "bulk updates bump the version");
    }
    let untouched = repo.get(rows[2].id).await.expect("get");
    assert_eq!(untouched, rows[2]);
}
on_both!(bulk_update_stamps, bulk_update_stamps_every_changed_row);

async fn direct_activemodel_writes_are_stamped_and_versioned_updates_refused(db: &DatabaseConnection) {
    let b = business(db, "acme").await;
    let mut am = user(1);
    am.business_id = Set(b.id);
    let u = am.insert(db).await.expect("direct insert");
    assert_eq!(u.id.get_version_num(), 7);
    assert_eq!(u.version, 1);
    let mut am = u.into_active_model();
    am.status = Set("blocked".into());
    let err = am
        .update(db)
        .await
        .expect_err("direct update of a versioned entity");
    assert!(
        err.to_string().contains("update it through entity::Repo::update"),
        "{err}"
    );
}
on_both!(
    direct_writes,
    direct_activemodel_writes_are_stamped_and_versioned_updates_refused
);
