// Stacked `#[behaviour]` lines fold into one expansion; indexes keep their predicate; the positional decoder
// reads the columns in `Column::iter()` order.
mod things {
    use sea_orm::entity::prelude::*;

    #[entity::behaviour(BaseModel)]
    #[behaviour(Versioned)]
    #[entity::behaviour(SoftDeletable)]
    #[index(name = "uq_things_name", columns(name), unique, where = "deleted_at IS NULL")]
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "things")]
    pub struct Model {
        pub name: String,
        #[sea_orm(ignore)]
        pub scratch: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

use entity::{Behaviour, Behaviours};
use sea_orm::{IdenStatic, Iterable};

fn main() {
    assert!(<things::Entity as Behaviours>::deleted_at_column().is_some());
    assert!(<things::Entity as Behaviours>::version_column().is_some());
    assert!(<things::Entity as Behaviours>::business_id_column().is_none());
    assert!(<things::Entity as Behaviours>::business_relation().is_none());
    let idx = things::Entity::INDEXES[0];
    assert_eq!((idx.name, idx.unique, idx.predicate), ("uq_things_name", true, Some("deleted_at IS NULL")));
    let owned: Vec<(&str, Behaviour)> = things::Entity::owned_columns().iter().map(|o| (o.name, o.behaviour)).collect();
    assert_eq!(owned[3], ("deleted_at", Behaviour::SoftDeletable));
    assert_eq!(owned[4], ("version", Behaviour::Versioned));
    let decoded: Vec<&str> = things::Entity::decode_columns().iter().map(|c| c.as_str()).collect();
    let selected: Vec<&str> = things::Column::iter().map(|c| c.as_str()).collect();
    assert_eq!(decoded, selected);
}
