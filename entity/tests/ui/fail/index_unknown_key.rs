// `#[index]` takes name, columns, unique and where.
#[entity::behaviour(BaseModel)]
#[index(name = "idx_things_name", columns(name), partial = "x")]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "things")]
pub struct Model {
    pub name: String,
}

fn main() {}
