// A behaviour column written by hand would disagree with the one the behaviour adds.
#[entity::behaviour(BaseModel, SoftDeletable)]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "things")]
pub struct Model {
    pub name: String,
    pub deleted_at: Option<i32>,
}

fn main() {}
