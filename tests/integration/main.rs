//! The one integration-test binary: modules grouped by subject.

mod entity;
mod harness;
mod migrate;
mod schema;
mod service;
mod typescript;
