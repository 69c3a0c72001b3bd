#![doc = include_str!("../README.md")]

pub mod app;
pub mod connect;
pub mod db;
pub mod error;
pub mod health;
pub mod http;
mod read;
pub mod url;
pub mod vars;

pub use app::{AppConfig, LogConfig, LogFormat, ServerAddr, ServerAddrError};
pub use connect::{connect, connect_read_only, pg_connect_options, sqlite_connect_options};
pub use db::{
    BackupConfig, DEFAULT_SQLITE_PATH, DbConfig, DbTarget, PgTarget, PoolConfig, PoolerMode, ReplicaConfig,
    SqliteTarget, SslMode, TRANSACTION_POOLING_REFUSED, TargetSource,
};
pub use error::{ConfigError, ConfigProblem, ConfigWarning, ConnectError};
pub use health::HealthConfig;
pub use http::HttpConfig;
pub use url::{redact_url, with_database};
