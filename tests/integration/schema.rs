//! Tests of the schema generator, drift detection, `create --from-entities` and auto-migrate (`migration`
//! crate, `schema` and `auto` modules), on throwaway PostgreSQL databases and in-memory SQLite.

mod auto;
mod fresh;
mod from_entities;
mod lookups;
pub(crate) mod support;
mod variants;
