//! `role_permissions`: which permissions a role grants.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A grant of a permission to a role.
#[crate::behaviour(BaseModel)]
#[behaviour(AuditableEntity)]
#[behaviour(BusinessScoped)]
#[index(
    name = "uq_role_permissions_role_permission",
    columns(role_id, permission_id),
    unique
)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize, TS)]
#[sea_orm(table_name = "role_permissions")]
#[serde(rename_all = "camelCase")]
#[ts(rename = "RolePermission")]
pub struct Model {
    /// The role.
    pub role_id: Uuid,
    /// The permission.
    pub permission_id: Uuid,
}

/// Relations of `role_permissions`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The role.
    #[sea_orm(
        belongs_to = "super::roles::Entity",
        from = "Column::RoleId",
        to = "super::roles::Column::Id",
        on_delete = "Cascade"
    )]
    Role,
    /// The permission.
    #[sea_orm(
        belongs_to = "super::permissions::Entity",
        from = "Column::PermissionId",
        to = "super::permissions::Column::Id",
        on_delete = "Cascade"
    )]
    Permission,
}

impl Related<super::roles::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Role.def()
    }
}

impl Related<super::permissions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Permission.def()
    }
}
