// A business-scoped entity that declares no relation still belongs to its business: the attribute emits
// `Related<businesses::Entity>` and the table's foreign key.
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
}

use entity::Behaviours;
use sea_orm::{DbBackend, ForeignKeyAction, Related, Schema};

fn main() {
    let rel = <things::Entity as Related<entity::businesses::Entity>>::to();
    assert!(!rel.is_owner, "belongs_to");
    assert!(matches!(rel.on_delete, Some(ForeignKeyAction::Cascade)));
    let names = |id: &sea_orm::Identity| id.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    assert_eq!(names(&rel.from_col), ["business_id"]);
    assert_eq!(names(&rel.to_col), ["id"]);

    let meta = entity::registry::EntityMeta::of::<things::Entity>();
    let ddl = DbBackend::Postgres.build(&(meta.create_table)(&Schema::new(DbBackend::Postgres)));
    assert!(
        ddl.sql.contains(
            r#"CONSTRAINT "fk-things-business_id" FOREIGN KEY ("business_id") REFERENCES "businesses" ("id") ON DELETE CASCADE"#
        ),
        "{}",
        ddl.sql
    );
    let owned: Vec<&str> = things::Entity::owned_columns().iter().map(|o| o.name).collect();
    assert_eq!(owned, ["id", "created_at", "updated_at", "business_id"]);
}
