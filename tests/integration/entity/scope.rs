//! BusinessScoped: a scope confines reads, updates and deletes to one business; inserts take the scope's
//! business; naming another business is an error.

use entity::prelude::*;
use entity::users;
use sea_orm::{ActiveValue::Set, DatabaseConnection, IntoActiveModel};
use uuid::Uuid;

use super::fixtures::{business, ctx, user};
use super::on_both;

async fn scoped_entities_refuse_a_context_without_business(db: &DatabaseConnection) {
    let err = Users::repo(db, Ctx::new()).err().expect("no scope");
    assert!(matches!(err, EntityError::MissingScope { entity: "users" }));
    assert!(err.to_string().contains("Ctx::business"), "{err}");
    // Unscoped entities need no business.
    assert!(Permissions::repo(db, Ctx::new()).is_ok());
}
on_both!(missing_scope, scoped_entities_refuse_a_context_without_business);

async fn a_scope_neither_reads_nor_writes_another_business(db: &DatabaseConnection) {
    let (a, b) = (business(db, "a").await, business(db, "b").await);
    let actor = Uuid::now_v7();
    let in_a = Users::repo(db, ctx(a.id, actor)).expect("repo");
    let in_b = Users::repo(db, ctx(b.id, actor)).expect("repo");
    let ua = in_a.insert(user(1)).await.expect("insert a");
    let ub = in_b.insert(user(2)).await.expect("insert b");
    assert_eq!(ua.business_id, a.id, "insert takes the scope's business");

    assert!(in_b.find_by_id(ua.id).await.expect("find").is_none());
    assert_eq!(
        in_b.list()
            .await
            .expect("list")
            .iter()
            .map(|u| u.id)
            .collect::<Vec<_>>(),
        vec![ub.id]
    );

    let mut am = ua.clone().into_active_model();
    am.status = Set("blocked".into());
    assert!(matches!(in_b.update(am).await, Err(EntityError::NotFound { .. })));
    assert!(matches!(
        in_b.delete(ua.id).await,
        Err(EntityError::NotFound { .. })
    ));
    assert!(matches!(
        in_b.force_delete(ua.id).await,
        Err(EntityError::NotFound { .. })
    ));
    let n = in_b
        .update_many()
        .col_expr(users::Column::Status, sea_orm::sea_query::Expr::val("x"))
        .exec()
        .await
        .expect("bulk");
    assert_eq!(n, 1, "bulk update reaches only the scope's rows");
    assert_eq!(in_a.get(ua.id).await.expect("unchanged"), ua);
}
on_both!(confined, a_scope_neither_reads_nor_writes_another_business);

async fn naming_another_business_is_an_error(db: &DatabaseConnection) {
    let (a, b) = (business(db, "a").await, business(db, "b").await);
    let in_a = Users::repo(db, Ctx::new().business(a.id)).expect("repo");
    let mut am = user(1);
    am.business_id = Set(b.id);
    let err = in_a.insert(am).await.expect_err("cross-business insert");
    assert!(matches!(err, EntityError::CrossBusiness { scope, found, .. } if scope == a.id && found == b.id));

    let u = in_a.insert(user(2)).await.expect("insert");
    let mut am = u.into_active_model();
    am.business_id = Set(b.id);
    let err = in_a
        .update(am)
        .await
        .expect_err("moving a row to another business");
    assert!(matches!(err, EntityError::CrossBusiness { .. }));

    // The visible escape reaches every business, and inserts must then say which one.
    let all = Users::repo(db, Ctx::new().all_businesses()).expect("repo");
    assert_eq!(all.list().await.expect("list").len(), 1);
    assert!(matches!(
        all.insert(user(3)).await,
        Err(EntityError::MissingBusiness { .. })
    ));
    let mut am = user(3);
    am.business_id = Set(b.id);
    assert_eq!(all.insert(am).await.expect("insert").business_id, b.id);
}
on_both!(cross_business, naming_another_business_is_an_error);
