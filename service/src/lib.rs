#![doc = include_str!("../README.md")]

pub mod app;
pub mod boot;
pub mod dashboard;
pub mod health;
pub mod histogram;
pub mod metrics;
pub mod migrations;
pub mod pool;
pub mod server;
pub mod system;
pub mod tenancy;

pub use app::{AppState, Running, StartError, start};
pub use migrations::{FailureKind, MigrateFailure, MigrationState, Migrations, NotWired, Runner};
pub use pool::{
    Db, DbTransaction, Pool, PoolError, PoolStats, PooledConn, ReplicaStatus, RouteStats, Session,
};
