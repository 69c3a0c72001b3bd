//! Database configuration from the environment: the one loader shared by the migration CLI and the service.
//!
//! PROVISIONAL: minimal version (DATABASE_URL, else SQLite `./collex.db`). The service issue replaces it with
//! the full `DB_*` loader; the public names below are the contract other modules use.

use std::fmt;

/// Which database the process talks to and how; never prints a password.
#[derive(Clone)]
pub struct DbConfig {
    /// Connection URL. Private: it may carry a password.
    url: String,
    /// Directory of hand-written SQL migrations (`DB_MIGRATE_PATH`).
    pub migrate_path: std::path::PathBuf,
    /// Whether the service migrates on start (`DB_AUTO_MIGRATE`).
    pub auto_migrate: bool,
}

/// A configuration problem, naming the variable and what is expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// One or more variables are invalid.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl DbConfig {
    /// Reads the process environment.
    ///
    /// # Errors
    /// Returns [`ConfigError`] naming every invalid variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `get`, so tests need not touch the process environment.
    ///
    /// # Errors
    /// Returns [`ConfigError`] naming every invalid variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let url = get("DATABASE_URL").unwrap_or_else(|| "sqlite://collex.db?mode=rwc".to_owned());
        Ok(Self {
            url,
            migrate_path: get("DB_MIGRATE_PATH")
                .unwrap_or_else(|| "migrations".into())
                .into(),
            auto_migrate: get("DB_AUTO_MIGRATE").is_none_or(|v| v != "false"),
        })
    }

    /// A configuration for an explicit URL (tests, tools).
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            migrate_path: "migrations".into(),
            auto_migrate: true,
        }
    }

    /// The URL, for building connect options. Never log it.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("migrate_path", &self.migrate_path)
            .finish_non_exhaustive()
    }
}
