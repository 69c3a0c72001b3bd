//! `user_activities`: what users did, for activity feeds and analytics.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// One activity of a user.
#[crate::behaviour(BaseModel)]
#[behaviour(SoftDeletable)]
#[behaviour(BusinessScoped)]
#[index(
    name = "idx_user_activities_user_type",
    columns(user_id, activity_type),
    where = "deleted_at IS NULL"
)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize, TS)]
#[sea_orm(table_name = "user_activities")]
#[serde(rename_all = "camelCase")]
#[ts(rename = "UserActivity")]
pub struct Model {
    /// Who acted.
    pub user_id: Uuid,
    /// `login`, `logout`, `profile_update`, ...
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub activity_type: String,
    /// Human-readable summary.
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    /// Structured details.
    #[sea_orm(column_type = "JsonBinary", default_expr = "Expr::val(\"{}\")")]
    pub metadata: Json,
}

/// Relations of `user_activities`.
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
