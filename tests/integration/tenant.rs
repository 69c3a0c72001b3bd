//! Tenant isolation enforced by the database (issue 18): composite tenant keys, row-level security, scoped
//! transactions, the application role, and the readiness of the schema for distribution by `business_id`.

mod citus;
mod keys;
mod rls;
