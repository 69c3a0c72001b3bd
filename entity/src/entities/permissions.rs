//! `permissions`: the global catalogue of actions on resources, shared by every business.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A permission: `module`/`resource`/`action`.
#[crate::behaviour(BaseModel)]
#[behaviour(SoftDeletable)]
#[index(
    name = "idx_permissions_module_resource",
    columns(module, resource),
    where = "deleted_at IS NULL"
)]
#[index(
    name = "uq_permissions_module_resource_action",
    columns(module, resource, action),
    unique
)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize, TS)]
#[sea_orm(table_name = "permissions")]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Permission")]
pub struct Model {
    /// Application module, e.g. `inventory`.
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub module: String,
    /// Resource within the module, e.g. `items`.
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub resource: String,
    /// `read`, `write`, `delete`, ...
    #[sea_orm(column_type = "String(StringLen::N(20))")]
    pub action: String,
    /// What the permission allows.
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
}

/// Relations of `permissions`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Grants to roles.
    #[sea_orm(has_many = "super::role_permissions::Entity")]
    RolePermissions,
}

impl Related<super::role_permissions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RolePermissions.def()
    }
}
