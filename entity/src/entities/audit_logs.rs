//! `audit_logs`: an append-only record of who changed what, written by application code.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// One audited change.
#[crate::behaviour(BaseModel)]
#[behaviour(BusinessScoped)]
#[index(name = "idx_audit_logs_table_record", columns(table_name, record_id))]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize, TS)]
#[sea_orm(table_name = "audit_logs")]
#[serde(rename_all = "camelCase")]
#[ts(rename = "AuditLog")]
pub struct Model {
    /// Who made the change; `null` for the system.
    #[sea_orm(nullable)]
    pub actor_id: Option<Uuid>,
    /// `insert`, `update`, `delete`, ...
    #[sea_orm(column_type = "String(StringLen::N(20))")]
    pub action: String,
    /// The table changed.
    #[sea_orm(column_type = "String(StringLen::N(63))")]
    pub table_name: String,
    /// The row changed.
    pub record_id: Uuid,
    /// Old and new values.
    #[sea_orm(column_type = "JsonBinary", default_expr = "Expr::val(\"{}\")")]
    pub changes: Json,
}

/// Relations of `audit_logs`: only the business, which `#[behaviour(BusinessScoped)]` adds.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}
