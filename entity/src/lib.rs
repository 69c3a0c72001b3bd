#![doc = include_str!("../README.md")]

extern crate self as entity;

pub mod behaviour;
pub mod cache;
pub mod context;
pub mod entities;
pub mod error;
pub mod exec;
pub mod hooks;
pub mod prelude;
pub mod registry;
pub mod repo;
pub mod scoped;
mod violation;

/// The repository README's Rust examples, compiled by `cargo test -p entity --doc` so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;

pub use behaviour::{
    AuditableEntity, BaseModel, Behaviour, Behaviours, BusinessScoped, IndexDef, OwnedColumn, SoftDeletable,
    Versioned,
};
pub use cache::StatementCache;
pub use context::{BadWriteToken, BusinessScope, Ctx, ReadFrom, WriteToken};
pub use entities::*;
pub use entity_macros::behaviour;
pub use error::EntityError;
pub use exec::{Direct, Executor, Observation, Observer, Op, OpKind, Outcome, Output, Want};
pub use repo::{AlsoRelated, BulkUpdate, Query, Repo, WithRelated};
pub use scoped::Scoped;

/// Re-exports the generated code refers to; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use sea_orm::prelude::{DateTimeUtc, Expr, Uuid};
    pub use sea_orm::{
        ActiveModelBehavior, ConnectionTrait, DbErr, EntityTrait, ForeignKeyAction, QueryResult, Related,
        RelationDef, TryGetable,
    };
}
