//! `user_roles`: which roles a user holds.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A role held by a user.
#[crate::behaviour(BaseModel)]
#[behaviour(AuditableEntity)]
#[behaviour(BusinessScoped)]
#[index(name = "uq_user_roles_user_role", columns(user_id, role_id), unique)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize, TS)]
#[sea_orm(table_name = "user_roles")]
#[serde(rename_all = "camelCase")]
#[ts(rename = "UserRole")]
pub struct Model {
    /// The user.
    pub user_id: Uuid,
    /// The role.
    pub role_id: Uuid,
}

/// Relations of `user_roles`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The user.
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_delete = "Cascade"
    )]
    User,
    /// The role.
    #[sea_orm(
        belongs_to = "super::roles::Entity",
        from = "Column::RoleId",
        to = "super::roles::Column::Id",
        on_delete = "Cascade"
    )]
    Role,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::roles::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Role.def()
    }
}
