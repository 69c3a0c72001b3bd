// A misspelt behaviour names the accepted ones.
#[entity::behaviour(SoftDelete)]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "things")]
pub struct Model {
    pub name: String,
}

fn main() {}
