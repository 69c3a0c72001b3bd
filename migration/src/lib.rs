//! The `migration` crate: configuration, connection and the Collex migrator.

pub mod config;
pub mod db;
