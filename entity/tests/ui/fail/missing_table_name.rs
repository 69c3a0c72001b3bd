// The behaviours need the table's name (the repository's errors and the schema use it).
#[entity::behaviour(BaseModel)]
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub name: String,
}

fn main() {}
