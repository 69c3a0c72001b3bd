#![doc = include_str!("../README.md")]

extern crate self as entity;

pub mod behaviour;
pub mod context;
pub mod entities;
pub mod error;
pub mod hooks;
pub mod prelude;
pub mod registry;
pub mod repo;

pub use behaviour::{
    AuditableEntity, BaseModel, Behaviours, BusinessScoped, IndexDef, SoftDeletable, StatementCache,
    Versioned,
};
pub use context::{BusinessScope, Ctx};
pub use entities::*;
pub use entity_macros::behaviour;
pub use error::EntityError;
pub use repo::{BulkUpdate, Repo};

/// Re-exports the generated code refers to; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use sea_orm::prelude::{DateTimeUtc, Expr, Uuid};
    pub use sea_orm::{ActiveModelBehavior, ConnectionTrait, DbErr};
}
