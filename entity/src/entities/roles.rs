//! `roles`: named sets of permissions within a business.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A role.
#[crate::behaviour(BaseModel)]
#[behaviour(AuditableEntity)]
#[behaviour(SoftDeletable)]
#[behaviour(BusinessScoped)]
#[behaviour(Versioned)]
#[index(
    name = "idx_roles_category_active",
    columns(category, is_active),
    where = "deleted_at IS NULL"
)]
#[index(name = "uq_roles_business_name", columns(business_id, name), unique)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize, TS)]
#[sea_orm(table_name = "roles")]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Role")]
pub struct Model {
    /// Role name, unique within the business.
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub name: String,
    /// `system`, `staff`, `customer`, ...
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub category: String,
    /// What the role is for.
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    /// Whether the role can be granted.
    #[sea_orm(default_value = true)]
    pub is_active: bool,
}

/// Relations of `roles`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Permission grants.
    #[sea_orm(has_many = "super::role_permissions::Entity")]
    RolePermissions,
    /// Users holding the role.
    #[sea_orm(has_many = "super::user_roles::Entity")]
    UserRoles,
}

impl Related<super::role_permissions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RolePermissions.def()
    }
}

impl Related<super::user_roles::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UserRoles.def()
    }
}
