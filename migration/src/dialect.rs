//! The two SQL dialects: which backend a connection or a per-backend migration file is for.
//!
//! It sits below the file loader, the runner and the schema tree, which all need it, and imports none of them.

use serde::Serialize;

use crate::error::MigrateError;

/// The two SQL dialects the runner and the schema generator speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// PostgreSQL (production).
    Postgres,
    /// SQLite (the embedded default).
    Sqlite,
}

impl Dialect {
    /// `postgres` or `sqlite`: the infix of per-backend migration files (`001_x.postgres.sql`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }

    /// The dialect of a SeaORM backend.
    ///
    /// # Errors
    /// [`MigrateError::UnsupportedBackend`] for MySQL.
    pub fn of(backend: sea_orm::DbBackend) -> Result<Self, MigrateError> {
        match backend {
            sea_orm::DbBackend::Postgres => Ok(Self::Postgres),
            sea_orm::DbBackend::Sqlite => Ok(Self::Sqlite),
            other => Err(MigrateError::UnsupportedBackend(other)),
        }
    }

    /// Both dialects, PostgreSQL first.
    pub const ALL: [Dialect; 2] = [Dialect::Postgres, Dialect::Sqlite];
}
