//! The repository's reads beyond `find_by_id`: `list_by`/`find_by` (cached per column) and the `Query`
//! builder, all confined to the scope and to live rows.

use entity::prelude::*;
use entity::users;
use sea_orm::{ColumnTrait, DatabaseConnection};
use uuid::Uuid;

use super::fixtures::{business, ctx, user};
use super::on_both;

async fn list_by_reads_the_scopes_live_rows_by_one_column_oldest_first(db: &DatabaseConnection) {
    let (a, b) = (business(db, "a").await, business(db, "b").await);
    let in_a = Users::repo(db, ctx(a.id, Uuid::now_v7())).expect("repo");
    let in_b = Users::repo(db, ctx(b.id, Uuid::now_v7())).expect("repo");
    let rows = in_a.insert_many((1..=4).map(user)).await.expect("insert");
    in_b.insert(user(9)).await.expect("b's user, also active");
    in_a.soft_delete(rows[1].id).await.expect("soft delete");

    let active = in_a
        .list_by(users::Column::Status, "active", 10)
        .await
        .expect("list_by");
    let ids: Vec<Uuid> = active.iter().map(|u| u.id).collect();
    assert_eq!(
        ids,
        vec![rows[0].id, rows[2].id, rows[3].id],
        "live, in scope, by id"
    );
    let two = in_a
        .list_by(users::Column::Status, "active", 2)
        .await
        .expect("limit");
    assert_eq!(two.len(), 2);
    // The same cached shape, bound for another business and another value.
    assert_eq!(
        in_b.list_by(users::Column::Status, "active", 10)
            .await
            .expect("b")
            .len(),
        1
    );
    assert!(
        in_a.list_by(users::Column::Status, "blocked", 10)
            .await
            .expect("none")
            .is_empty()
    );

    let by_phone = in_a
        .find_by(users::Column::PhoneNumber, rows[3].phone_number.clone())
        .await
        .expect("find_by");
    assert_eq!(by_phone.map(|u| u.id), Some(rows[3].id));
    let other = in_b
        .find_by(users::Column::PhoneNumber, rows[3].phone_number.clone())
        .await
        .expect("find_by");
    assert!(other.is_none(), "another business's phone number is not found");
    let only_deleted = in_a
        .only_deleted()
        .list_by(users::Column::Status, "active", 10)
        .await
        .expect("only deleted");
    assert_eq!(
        only_deleted.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![rows[1].id]
    );
}
on_both!(
    list_by,
    list_by_reads_the_scopes_live_rows_by_one_column_oldest_first
);

async fn queries_filter_order_page_and_count_within_the_scope(db: &DatabaseConnection) {
    let (a, b) = (business(db, "a").await, business(db, "b").await);
    let in_a = Users::repo(db, ctx(a.id, Uuid::now_v7())).expect("repo");
    let rows = in_a.insert_many((1..=5).map(user)).await.expect("insert");
    Users::repo(db, ctx(b.id, Uuid::now_v7()))
        .expect("repo")
        .insert_many((6..=8).map(user))
        .await
        .expect("insert b");
    in_a.soft_delete(rows[4].id).await.expect("soft delete");

    assert_eq!(in_a.find().count().await.expect("count"), 4);
    let page = in_a
        .find()
        .filter(users::Column::Status.eq("active"))
        .order_by_desc(users::Column::PhoneNumber)
        .offset(1)
        .limit(2)
        .all()
        .await
        .expect("page");
    assert_eq!(
        page.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![rows[2].id, rows[1].id]
    );
    let first = in_a
        .find()
        .order_by_asc(users::Column::Id)
        .one()
        .await
        .expect("one");
    assert_eq!(first.map(|u| u.id), Some(rows[0].id));
    assert_eq!(in_a.with_deleted().find().count().await.expect("with deleted"), 5);
}
on_both!(
    query_builder,
    queries_filter_order_page_and_count_within_the_scope
);
