//! The five behaviour traits and the `Behaviours` descriptor that the repository reads.
//!
//! The traits name the fixed behaviour columns of an entity; `#[behaviour(...)]` implements them, so an
//! entity never writes these impls by hand. Generic code bounds on the trait it needs (`E: SoftDeletable`
//! for `soft_delete`), and the `Behaviours` descriptor tells the default read and write paths which
//! filters and stamps apply, without specialization.

use std::sync::OnceLock;

use sea_orm::{EntityTrait, IntoActiveModel, Value};

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
    /// `(created_by, updated_by)` when the entity is [`AuditableEntity`].
    fn audit_columns() -> Option<(Self::Column, Self::Column)>;
    /// `deleted_at` when the entity is [`SoftDeletable`].
    fn deleted_at_column() -> Option<Self::Column>;
    /// `business_id` when the entity is [`BusinessScoped`].
    fn business_id_column() -> Option<Self::Column>;
    /// `version` when the entity is [`Versioned`].
    fn version_column() -> Option<Self::Column>;
    /// This entity's cache of statements the repository renders once (one `static` per entity).
    fn statement_cache() -> &'static StatementCache;
}

/// Where a bound value of a cached statement comes from.
#[derive(Clone, Debug)]
pub(crate) enum Param {
    /// The scope's business.
    Business,
    /// The id looked up.
    Id,
    /// A value fixed by the query's shape (e.g. `LIMIT 1`).
    Const(Value),
}

/// A statement rendered once: its SQL and where each bound value comes from.
#[derive(Debug)]
pub(crate) struct CachedStatement {
    pub(crate) sql: String,
    pub(crate) params: Vec<Param>,
}

/// Statements the repository renders once per entity, backend and read mode instead of on every call:
/// building and rendering a sea-query statement costs about as much client CPU as the rest of a
/// primary-key read (BENCHMARKS.md), which shows once the cores are saturated.
#[derive(Debug)]
pub struct StatementCache {
    find_by_id: [OnceLock<CachedStatement>; 18],
}

impl StatementCache {
    /// An empty cache, for the `static` that `#[behaviour]` generates.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self {
            find_by_id: [const { OnceLock::new() }; 18],
        }
    }

    pub(crate) fn find_by_id(&self, slot: usize) -> Option<&OnceLock<CachedStatement>> {
        self.find_by_id.get(slot)
    }
}
