//! `users`: people who sign in, each belonging to one business.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A user.
#[crate::behaviour(BaseModel)]
#[behaviour(AuditableEntity)]
#[behaviour(SoftDeletable)]
#[behaviour(BusinessScoped)]
#[behaviour(Versioned)]
// The spec's uniqueness is global: one account per phone number and e-mail across every business.
#[global_unique(phone_number, email)]
#[index(
    name = "idx_users_phone_status",
    columns(phone_number, status),
    where = "deleted_at IS NULL"
)]
#[index(
    name = "idx_users_email_status",
    columns(email, status),
    where = "deleted_at IS NULL AND email IS NOT NULL"
)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize, TS)]
#[sea_orm(table_name = "users")]
#[serde(rename_all = "camelCase")]
#[ts(rename = "User")]
pub struct Model {
    /// Phone number in E.164, unique among live users.
    #[sea_orm(column_type = "String(StringLen::N(20))", unique)]
    pub phone_number: String,
    /// E-mail address, unique among live users.
    #[sea_orm(column_type = "String(StringLen::N(100))", unique, nullable)]
    pub email: Option<String>,
    /// Name shown to others.
    #[sea_orm(column_type = "String(StringLen::N(100))", nullable)]
    pub display_name: Option<String>,
    /// `active`, `inactive`, `blocked`, ...
    #[sea_orm(column_type = "String(StringLen::N(20))", default_value = "active")]
    pub status: String,
}

/// Relations of `users`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The user's sessions.
    #[sea_orm(has_many = "super::user_sessions::Entity")]
    Sessions,
    /// The user's activities.
    #[sea_orm(has_many = "super::user_activities::Entity")]
    Activities,
    /// The user's preferences.
    #[sea_orm(has_one = "super::user_preferences::Entity")]
    Preferences,
}

impl Related<super::user_sessions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Sessions.def()
    }
}

impl Related<super::user_activities::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Activities.def()
    }
}

impl Related<super::user_preferences::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Preferences.def()
    }
}
