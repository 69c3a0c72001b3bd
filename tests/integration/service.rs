//! The `service` crate: configuration, pool statistics, health and metrics over real HTTP, drills against a
//! PostgreSQL reached through a proxy the test controls, and secrets.

mod config;
mod dashboard;
mod drills;
mod endpoints;
mod health_reads;
mod http_limits;
mod orm_gate;
mod pool_stats;
mod process;
mod query_timing;
mod scrapes;
mod startup;
pub(crate) mod support;
