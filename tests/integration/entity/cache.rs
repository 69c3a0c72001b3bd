//! The cached `find_by_id` statement: whatever the first caller passes, every later lookup of every business
//! binds its own business and id.

use entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseConnection, Schema};

use super::fixtures::business;
use super::on_both;

/// An entity only this test reads, so its statement cache is empty when the test starts: the first
/// `find_by_id` below is the one that renders the statement.
mod probes {
    use sea_orm::entity::prelude::*;

    /// A probe.
    #[entity::behaviour(BaseModel, SoftDeletable, BusinessScoped)]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "cache_probes")]
    pub struct Model {
        /// A label.
        pub label: String,
    }

    /// None but the business's, which `BusinessScoped` adds.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

async fn a_first_lookup_of_the_business_id_does_not_poison_later_lookups(db: &DatabaseConnection) {
    let meta = entity::registry::EntityMeta::of::<probes::Entity>();
    let stmt = (meta.create_table)(&Schema::new(db.get_database_backend()));
    db.execute(&stmt).await.expect("create cache_probes");
    let (a, b) = (business(db, "a").await, business(db, "b").await);
    let in_a = probes::Entity::repo(db, Ctx::new().business(a.id)).expect("repo");
    let in_b = probes::Entity::repo(db, Ctx::new().business(b.id)).expect("repo");
    let probe = |label: &str| probes::ActiveModel {
        label: Set(label.to_owned()),
        ..Default::default()
    };
    let pa = in_a.insert(probe("a")).await.expect("insert a");
    let pb = in_b.insert(probe("b")).await.expect("insert b");

    // A client asks for `/probes/{its own business id}`: the first lookup since the process started.
    assert!(in_a.find_by_id(a.id).await.expect("lookup").is_none());

    assert_eq!(
        in_a.find_by_id(pa.id).await.expect("a").map(|p| p.id),
        Some(pa.id)
    );
    assert_eq!(
        in_b.find_by_id(pb.id).await.expect("b").map(|p| p.id),
        Some(pb.id)
    );
    assert_eq!(in_a.get(pa.id).await.expect("get a").label, "a");
    assert!(
        in_a.find_by_id(pb.id).await.expect("b from a").is_none(),
        "still scoped"
    );
}
on_both!(
    first_render,
    a_first_lookup_of_the_business_id_does_not_poison_later_lookups
);
