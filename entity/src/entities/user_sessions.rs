//! `user_sessions`: sign-in sessions of users.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A sign-in session.
#[crate::behaviour(BaseModel)]
#[behaviour(SoftDeletable)]
#[behaviour(BusinessScoped)]
// A session is found by its token before its business is known: the hash is unique everywhere.
#[global_unique(token_hash)]
#[index(
    name = "idx_user_sessions_user_active",
    columns(user_id, is_active),
    where = "deleted_at IS NULL"
)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize, TS)]
#[sea_orm(table_name = "user_sessions")]
#[serde(rename_all = "camelCase")]
#[ts(rename = "UserSession")]
pub struct Model {
    /// The signed-in user.
    pub user_id: Uuid,
    /// SHA-256 of the session token; the token itself is never stored.
    #[sea_orm(column_type = "String(StringLen::N(64))", unique)]
    pub token_hash: String,
    /// Whether the session may still be used.
    #[sea_orm(default_value = true)]
    pub is_active: bool,
    /// When the session stops being valid.
    pub expires_at: DateTimeUtc,
    /// Client address at sign-in.
    #[sea_orm(column_type = "String(StringLen::N(45))", nullable)]
    pub ip_address: Option<String>,
    /// Client user agent at sign-in.
    #[sea_orm(column_type = "String(StringLen::N(255))", nullable)]
    pub user_agent: Option<String>,
}

/// Relations of `user_sessions`.
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
