//! Opening a SeaORM connection from a [`DbConfig`](crate::config::DbConfig).

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::config::DbConfig;

/// Opens a plain pooled connection, as the CLI needs.
///
/// # Errors
/// Returns the driver's error when the database cannot be reached.
pub async fn connect(cfg: &DbConfig) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(cfg.url().to_owned());
    opts.sqlx_logging(false);
    Database::connect(opts).await
}
