//! Relation loads from a repository's query: the related side is confined to the scope and skips deleted rows.

use entity::prelude::*;
use entity::{user_sessions, users};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::fixtures::{business, ctx, session, user};
use super::on_both;

async fn related_loads_from_a_query_stay_in_scope_and_skip_deleted_rows(db: &DatabaseConnection) {
    let (a, b) = (business(db, "a").await, business(db, "b").await);
    let users_a = Users::repo(db, ctx(a.id, Uuid::now_v7())).expect("repo");
    let sessions_a = UserSessions::repo(db, ctx(a.id, Uuid::now_v7())).expect("repo");
    let sessions_b = UserSessions::repo(db, ctx(b.id, Uuid::now_v7())).expect("repo");
    let u = users_a.insert(user(1)).await.expect("user");
    let live = sessions_a.insert(session(u.id, 1)).await.expect("live session");
    let gone = sessions_a
        .insert(session(u.id, 2))
        .await
        .expect("deleted session");
    sessions_a.soft_delete(gone.id).await.expect("soft delete");
    // Business B's row that points at A's user (the foreign key is on `id` alone).
    let foreign = sessions_b.insert(session(u.id, 3)).await.expect("B's session");

    let with: Vec<(users::Model, Vec<user_sessions::Model>)> = users_a
        .find()
        .find_with_related::<UserSessions>()
        .all()
        .await
        .expect("find_with_related");
    assert_eq!(with.len(), 1);
    assert_eq!(
        with[0].1.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![live.id],
        "neither the deleted session nor business B's"
    );

    let also: Vec<(user_sessions::Model, Option<users::Model>)> = sessions_b
        .find()
        .find_also_related::<Users>()
        .all()
        .await
        .expect("find_also_related");
    assert_eq!(also.len(), 1);
    assert_eq!(also[0].0.id, foreign.id);
    assert!(also[0].1.is_none(), "A's user is not visible from business B");
}
on_both!(
    scoped_related,
    related_loads_from_a_query_stay_in_scope_and_skip_deleted_rows
);
