//! Read replicas and PgBouncer (issue 13), on the primary/replica pair and the poolers of `make test`: the
//! pooler modes at start-up, migrations over a direct connection (`DB_MIGRATION_URL`), and routing by intent.

mod pooler;
mod routing;
mod support;
