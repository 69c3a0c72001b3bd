//! Scrapes of `/health/detailed` and `/metrics` reuse the migration state (ledger and drift, read with catalog
//! queries) for `MIGRATION_STATE_TTL`, and start-up reads it again right after auto-migrate.

use collex_tests::PgTestDb;

use super::support::{get, pg_config, start_with_runner};

#[tokio::test]
async fn repeated_scrapes_read_the_migration_state_once_after_start_up_migrated() {
    let db = PgTestDb::new().await;
    let mut cfg = pg_config(db.url());
    cfg.auto_migrate = true;
    cfg.migrate_path = collex_tests::migrations_dir();
    // Start-up reads the state again right after migrating.
    let svc = start_with_runner(cfg).await;
    let addr = svc.addr();
    let reads = svc.state().migration_state_reads();

    let first = get(addr, "/health/detailed").await;
    let metrics = get(addr, "/metrics").await;
    let second = get(addr, "/health/detailed").await;
    assert_eq!(
        svc.state().migration_state_reads(),
        reads,
        "scrapes within the TTL must not read the migration state again"
    );

    // What start-up left is the state after auto-migrate, not before it.
    for body in [&first, &second] {
        let m = &body.json()["migrations"];
        assert_eq!(m["state"], "known", "{}", body.body);
        assert_eq!(m["pending"], 0, "{}", body.body);
        assert_eq!(m["drift"], "no", "{}", body.body);
    }
    assert!(
        metrics.body.contains("collex_migration_pending 0"),
        "{}",
        metrics.body
    );

    // A forced read (what start-up does) goes to the runner again.
    svc.state().refresh_migration_state().await;
    assert_eq!(svc.state().migration_state_reads(), reads + 1);
    svc.shutdown().await.expect("shutdown");
}
