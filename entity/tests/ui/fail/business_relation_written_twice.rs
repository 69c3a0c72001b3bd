// `#[behaviour(BusinessScoped)]` emits `Related<businesses::Entity>` itself: a second one is refused.
mod things {
    use sea_orm::entity::prelude::*;

    #[entity::behaviour(BaseModel, BusinessScoped)]
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "things")]
    pub struct Model {
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl Related<entity::businesses::Entity> for Entity {
        fn to() -> RelationDef {
            Entity::belongs_to(entity::businesses::Entity)
                .from(Column::BusinessId)
                .to(entity::businesses::Column::Id)
                .into()
        }
    }
}

fn main() {}
