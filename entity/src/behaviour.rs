//! The five behaviour traits and the `Behaviours` descriptor that the repository reads.
//!
//! The traits name the fixed behaviour columns of an entity; `#[behaviour(...)]` implements them, so an
//! entity never writes these impls by hand. Generic code bounds on the trait it needs (`E: SoftDeletable`
//! for `soft_delete`), and the `Behaviours` descriptor tells the default read and write paths which
//! filters and stamps apply, without specialization. The statement cache itself lives in [`crate::cache`].

use sea_orm::{DbErr, EntityTrait, IntoActiveModel, QueryResult, RelationDef};

use crate::cache::StatementCache;

/// `id` (UUID v7, generated in Rust), `created_at`, `updated_at` (timestamp with time zone).
pub trait BaseModel: EntityTrait {
    /// The `id` column.
    fn id_column() -> Self::Column;
    /// The `created_at` column.
    fn created_at_column() -> Self::Column;
    /// The `updated_at` column.
    fn updated_at_column() -> Self::Column;
}

/// `created_by`, `updated_by`: the actor of the [`Ctx`](crate::Ctx) that wrote the row.
pub trait AuditableEntity: BaseModel {
    /// The `created_by` column.
    fn created_by_column() -> Self::Column;
    /// The `updated_by` column.
    fn updated_by_column() -> Self::Column;
}

/// `deleted_at`: rows are hidden from default reads once set.
pub trait SoftDeletable: BaseModel {
    /// The `deleted_at` column.
    fn deleted_at_column() -> Self::Column;
}

/// `business_id`: every read and write is confined to the business of the [`Ctx`](crate::Ctx).
pub trait BusinessScoped: BaseModel {
    /// The `business_id` column.
    fn business_id_column() -> Self::Column;
    /// `belongs_to businesses`: `business_id → businesses.id ON DELETE CASCADE`. `#[behaviour]` emits it,
    /// with `Related<businesses::Entity>` and the foreign key of the table, so a scoped entity cannot
    /// forget them.
    fn business_relation() -> RelationDef;
}

/// `version`: optimistic locking, checked and incremented by every update through the crate.
pub trait Versioned: BaseModel {
    /// The `version` column.
    fn version_column() -> Self::Column;
}

/// An index declared next to an entity's fields with `#[index(...)]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexDef {
    /// Index name, unique in the schema.
    pub name: &'static str,
    /// Column names, in index order.
    pub columns: &'static [&'static str],
    /// Whether it is a unique index.
    pub unique: bool,
    /// The `WHERE` predicate of a partial index, as SQL.
    pub predicate: Option<&'static str>,
}

/// The five behaviours, as named in `#[behaviour(...)]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Behaviour {
    /// `id`, `created_at`, `updated_at`.
    BaseModel,
    /// `created_by`, `updated_by`.
    AuditableEntity,
    /// `deleted_at`.
    SoftDeletable,
    /// `business_id`.
    BusinessScoped,
    /// `version`.
    Versioned,
}

impl Behaviour {
    /// The name written in `#[behaviour(...)]`.
    pub fn name(self) -> &'static str {
        match self {
            Self::BaseModel => "BaseModel",
            Self::AuditableEntity => "AuditableEntity",
            Self::SoftDeletable => "SoftDeletable",
            Self::BusinessScoped => "BusinessScoped",
            Self::Versioned => "Versioned",
        }
    }
}

impl std::fmt::Display for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A column a behaviour adds and the repository alone writes (ids, timestamps, actor, business, version).
#[derive(Clone, Copy, Debug)]
pub struct OwnedColumn<C: 'static> {
    /// The column.
    pub column: C,
    /// Its name.
    pub name: &'static str,
    /// The behaviour that adds it.
    pub behaviour: Behaviour,
}

/// Which behaviours an entity has: what the repository filters and stamps.
///
/// Implemented by `#[behaviour(...)]` alongside the behaviour traits, which it mirrors.
pub trait Behaviours:
    BaseModel + EntityTrait<Model: IntoActiveModel<Self::ActiveModel> + Send + Sync, ActiveModel: Send>
{
    /// The table name.
    const TABLE: &'static str;
    /// Indexes declared on the entity with `#[index(...)]`.
    const INDEXES: &'static [IndexDef];
    /// Unique columns declared `#[global_unique(..)]`: unique across every business (the spec's phone and
    /// e-mail). Every other unique key of a business-scoped table is unique per business (`business_id`
    /// leads it), which is what lets the table be distributed by `business_id`.
    const GLOBAL_UNIQUE: &'static [&'static str] = &[];
    /// `(created_by, updated_by)` when the entity is [`AuditableEntity`].
    fn audit_columns() -> Option<(Self::Column, Self::Column)>;
    /// `deleted_at` when the entity is [`SoftDeletable`].
    fn deleted_at_column() -> Option<Self::Column>;
    /// `business_id` when the entity is [`BusinessScoped`].
    fn business_id_column() -> Option<Self::Column>;
    /// `version` when the entity is [`Versioned`].
    fn version_column() -> Option<Self::Column>;
    /// Every column the entity's behaviours add: the one list every write path of the repository checks
    /// (see [`crate::repo`] for the rule).
    fn owned_columns() -> &'static [OwnedColumn<Self::Column>];
    /// The `belongs_to businesses` relation when the entity is [`BusinessScoped`].
    fn business_relation() -> Option<RelationDef>;
    /// The columns [`Behaviours::decode_row`] reads, in position order.
    fn decode_columns() -> &'static [Self::Column];
    /// Decodes a row whose columns are [`Behaviours::decode_columns`], in that order, by position.
    ///
    /// # Errors
    /// A column whose value does not decode into its field.
    fn decode_row(row: &QueryResult) -> Result<Self::Model, DbErr>;
    /// This entity's cache of statements the repository renders once (one `static` per entity).
    fn statement_cache() -> &'static StatementCache;
}
