// Behaviours add fields: the attribute applies to a struct with named fields.
#[entity::behaviour(BaseModel)]
#[sea_orm(table_name = "things")]
pub enum Model {
    A,
}

fn main() {}
