//! `user_preferences`: one JSON document of settings per user.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A user's preferences.
#[crate::behaviour(BaseModel)]
#[behaviour(BusinessScoped)]
#[behaviour(Versioned)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize, TS)]
#[sea_orm(table_name = "user_preferences")]
#[serde(rename_all = "camelCase")]
#[ts(rename = "UserPreferences")]
pub struct Model {
    /// The user; one row per user.
    #[sea_orm(unique)]
    pub user_id: Uuid,
    /// Free-form settings, `{}` by default.
    #[sea_orm(column_type = "JsonBinary", default_expr = "Expr::val(\"{}\")")]
    pub preferences: Json,
}

/// Relations of `user_preferences`.
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
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}
