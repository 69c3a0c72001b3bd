//! The list of the app's entities in foreign-key order, with what the schema generator needs of each.

use sea_orm::Schema;
use sea_orm::sea_query::{ForeignKeyCreateStatement, IndexCreateStatement, TableCreateStatement};

use crate::behaviour::{Behaviours, IndexDef};
use crate::entities::*;

/// What the schema generator knows of one entity.
#[derive(Clone, Copy)]
pub struct EntityMeta {
    /// Table name.
    pub table: &'static str,
    /// Indexes declared with `#[index(...)]`.
    pub indexes: &'static [IndexDef],
    /// Unique columns declared `#[global_unique(..)]` (unique across businesses; every other unique key of a
    /// business-scoped table is per business).
    pub global_unique: &'static [&'static str],
    /// Whether rows are soft-deleted (unique constraints then become partial: `WHERE deleted_at IS NULL`).
    pub soft_deletable: bool,
    /// Whether rows carry `business_id` (then indexed).
    pub business_scoped: bool,
    /// Whether rows carry `version`.
    pub versioned: bool,
    /// Whether rows carry `created_by`/`updated_by`.
    pub auditable: bool,
    /// SeaORM's `CREATE TABLE` for the entity (columns, primary key, foreign keys).
    pub create_table: fn(&Schema) -> TableCreateStatement,
    /// SeaORM's indexes for `#[sea_orm(indexed)]` and `#[sea_orm(unique_key = "..")]` columns.
    pub create_indexes: fn(&Schema) -> Vec<IndexCreateStatement>,
}

impl std::fmt::Debug for EntityMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityMeta")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl EntityMeta {
    /// The metadata of `E`.
    pub fn of<E: Behaviours>() -> Self {
        Self {
            table: E::TABLE,
            indexes: E::INDEXES,
            global_unique: E::GLOBAL_UNIQUE,
            soft_deletable: E::deleted_at_column().is_some(),
            business_scoped: E::business_id_column().is_some(),
            versioned: E::version_column().is_some(),
            auditable: E::audit_columns().is_some(),
            create_table: create_table::<E>,
            create_indexes: |schema| schema.create_index_from_entity(E::default()),
        }
    }
}

/// SeaORM's `CREATE TABLE` for `E` with the foreign key of the `belongs_to businesses` relation that
/// `#[behaviour(BusinessScoped)]` emits, first among the foreign keys. SeaORM takes foreign keys from the
/// `Relation` enum only; an entity that declares the relation there too (to choose another `ON DELETE`)
/// keeps its own.
fn create_table<E: Behaviours>(schema: &Schema) -> TableCreateStatement {
    let declared = schema.create_table_from_entity(E::default());
    let Some(rel) = E::business_relation() else {
        return declared;
    };
    let business_fk: ForeignKeyCreateStatement = rel.into();
    let already = declared
        .get_foreign_key_create_stmts()
        .iter()
        .any(|fk| fk.get_foreign_key().get_columns() == business_fk.get_foreign_key().get_columns());
    if already {
        return declared;
    }
    // sea-query can only append foreign keys: rebuild the statement to list the business's first.
    let mut stmt = TableCreateStatement::new();
    stmt.table(E::default());
    for col in declared.get_columns() {
        stmt.col(col.clone());
    }
    for index in declared.get_indexes() {
        stmt.index(&mut index.clone());
    }
    if let Some(comment) = declared.get_comment() {
        stmt.comment(comment);
    }
    for fk in std::iter::once(&business_fk).chain(declared.get_foreign_key_create_stmts()) {
        stmt.foreign_key(&mut fk.clone());
    }
    stmt
}

/// Every entity of the app, parents before children.
pub fn all() -> Vec<EntityMeta> {
    vec![
        EntityMeta::of::<businesses::Entity>(),
        EntityMeta::of::<users::Entity>(),
        EntityMeta::of::<user_sessions::Entity>(),
        EntityMeta::of::<user_activities::Entity>(),
        EntityMeta::of::<roles::Entity>(),
        EntityMeta::of::<permissions::Entity>(),
        EntityMeta::of::<role_permissions::Entity>(),
        EntityMeta::of::<user_roles::Entity>(),
        EntityMeta::of::<user_preferences::Entity>(),
        EntityMeta::of::<audit_logs::Entity>(),
    ]
}
