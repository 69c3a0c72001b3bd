//! `businesses`: the tenants every business-scoped row belongs to.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A business (tenant).
#[crate::behaviour(BaseModel)]
#[behaviour(AuditableEntity)]
#[behaviour(SoftDeletable)]
#[behaviour(Versioned)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize, TS)]
#[sea_orm(table_name = "businesses")]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Business")]
pub struct Model {
    /// Display name.
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub name: String,
    /// URL-safe unique handle.
    #[sea_orm(column_type = "String(StringLen::N(60))", unique)]
    pub slug: String,
    /// `active`, `suspended`, ...
    #[sea_orm(column_type = "String(StringLen::N(20))", default_value = "active")]
    pub status: String,
}

/// Relations of `businesses`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Users of the business.
    #[sea_orm(has_many = "super::users::Entity")]
    Users,
    /// Roles of the business.
    #[sea_orm(has_many = "super::roles::Entity")]
    Roles,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Users.def()
    }
}

impl Related<super::roles::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Roles.def()
    }
}
