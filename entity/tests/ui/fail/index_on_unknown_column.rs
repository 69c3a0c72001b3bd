// An index may only name the model's fields and the columns its behaviours add.
#[entity::behaviour(BaseModel)]
#[index(name = "idx_things_deleted", columns(name, deleted_at))]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "things")]
pub struct Model {
    pub name: String,
}

fn main() {}
