//! Which backend serves a SeaORM connection: the one place that asks which database it is.

use sea_orm::DatabaseConnection;

use super::Backend;
use super::postgres::Pg;
use super::sqlite::Lite;
use crate::error::MigrateError;

/// The backend of `db` for one run.
///
/// # Errors
/// [`MigrateError::UnsupportedBackend`] for MySQL.
pub(crate) fn for_connection(db: &DatabaseConnection) -> Result<Box<dyn Backend>, MigrateError> {
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => Ok(Box::new(Pg::new(db.get_postgres_connection_pool().clone()))),
        sea_orm::DbBackend::Sqlite => Ok(Box::new(Lite::new(db.get_sqlite_connection_pool().clone()))),
        other => Err(MigrateError::UnsupportedBackend(other)),
    }
}
