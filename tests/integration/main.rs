//! The one integration-test binary: modules grouped by subject.

mod backup;
mod database;
mod edges;
mod entity;
mod harness;
mod migrate;
mod replicas;
mod schema;
mod service;
mod tenant;
mod typescript;
