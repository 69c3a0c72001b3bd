//! Read replicas and PgBouncer (issue 13): the pooler modes at start-up and migrations over a direct
//! connection (`DB_MIGRATION_URL`).

mod pooler;
