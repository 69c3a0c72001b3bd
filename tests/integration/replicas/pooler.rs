//! `DB_POOLER_MODE` and `DB_MIGRATION_URL`: transaction pooling is refused at start-up by both binaries with
//! the measured reason; migrations and their lock take `DB_MIGRATION_URL` when it is set; the repository's
//! smoke set passes through session-mode PgBouncer.

use collex_tests::PgTestDb;
use entity::prelude::*;
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, Statement};
use service::Migrations as _;

use crate::edges::support::{migration, service, workdir};

/// Where nothing listens: a service URL that cannot be what migrations used.
const NOWHERE: &str = "postgres://postgres:Pw-nowhere-1@127.0.0.1:1/collex";

#[tokio::test]
async fn the_service_refuses_transaction_pooling_with_exit_2_and_the_reason() {
    let dir = workdir();
    let (code, output) = service(
        dir.path(),
        &[
            ("DATABASE_URL", NOWHERE),
            ("DB_POOLER_MODE", "transaction"),
            ("SERVER_ADDR", "127.0.0.1:0"),
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("DB_POOLER_MODE: transaction pooling is not supported"),
        "{output}"
    );
    assert!(output.contains("another statement's result"), "{output}");
    assert!(!output.contains("Pw-nowhere-1"), "{output}");
}

#[test]
fn the_migration_cli_refuses_transaction_pooling_with_exit_2() {
    let dir = workdir();
    let (code, _, stderr) = migration(
        dir.path(),
        &[("DATABASE_URL", NOWHERE), ("DB_POOLER_MODE", "transaction")],
        &["status"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("DB_POOLER_MODE: transaction pooling is not supported"),
        "{stderr}"
    );
}

async fn tables_in(db: &PgTestDb) -> i64 {
    let conn = db.connect().await;
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT count(*)::bigint AS n FROM information_schema.tables WHERE table_schema = 'public'",
        ))
        .await
        .expect("count tables")
        .expect("a row");
    let _ = conn.close().await;
    row.try_get("", "n").expect("n")
}

#[test]
fn the_migration_cli_migrates_through_db_migration_url() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let db = rt.block_on(PgTestDb::new());
    let dir = collex_tests::TempDir::with_repo_migrations();
    let path = dir.path().display().to_string();
    let (code, stdout, stderr) = migration(
        dir.path(),
        &[
            ("DB_MIGRATE_PATH", &path),
            ("DATABASE_URL", NOWHERE),
            ("DB_MIGRATION_URL", db.url()),
            ("DB_POOLER_MODE", "session"),
        ],
        &["up"],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        rt.block_on(tables_in(&db)) > 0,
        "the migration URL's database got the tables"
    );
    rt.block_on(async move { drop(db) });
}

#[tokio::test]
async fn auto_migrate_uses_db_migration_url_not_the_pool() {
    let db = PgTestDb::new().await;
    let mut cfg = config::DbConfig::try_from_url(NOWHERE).expect("url");
    cfg.migration_target = Some(config::DbConfig::try_from_url(db.url()).expect("url").target);
    cfg.migrate_path = collex_tests::migrations_dir();
    // The pool points nowhere (it is lazy): only the direct connection can have migrated.
    let pool = service::Pool::new(&cfg).expect("pool");
    let applied = service::Runner::new(&cfg)
        .apply_pending(pool.db())
        .await
        .expect("auto-migrate over DB_MIGRATION_URL");
    assert!(applied > 0);
    assert!(tables_in(&db).await > 0);
}

/// `url` (a PgBouncer's, whose `*` entry forwards every database to the primary) for `db`'s database.
fn through(url: &str, db: &super::support::PairDb) -> String {
    collex_tests::with_database(url, db.name())
}

#[tokio::test]
async fn the_repository_smoke_set_passes_through_session_mode_pgbouncer() {
    let db = super::support::PairDb::new().await;
    let url = through(
        &super::support::pair_var("COLLEX_TEST_PGBOUNCER_SESSION_URL"),
        &db,
    );
    // The tour example: every behaviour through SeaORM's own connection.
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || crate::entity::example::tour(&url)
    })
    .await
    .expect("tour");
    // The tables were created from the entities (SeaORM names the unique constraint), not by the migrations.
    crate::entity::example::assert_each_behaviour_shows(&out, "users_phone_number_key");

    // The service's pool on the repository's direct sqlx path (named prepared statements): concurrent reads
    // each get their own row back, which transaction pooling did not guarantee.
    let mut cfg = config::DbConfig::try_from_url(&url).expect("url");
    cfg.pooler = config::PoolerMode::Session;
    let pool = service::Pool::new(&cfg).expect("pool");
    let repo = || Businesses::repo(pool.db(), Ctx::new()).expect("repo");
    let mut ids = Vec::new();
    for n in 0..20 {
        let b = repo()
            .insert(entity::businesses::ActiveModel {
                name: Set(format!("Bouncer {n}")),
                slug: Set(format!("bouncer-{n}")),
                status: Set("active".into()),
                ..Default::default()
            })
            .await
            .expect("insert through the bouncer");
        ids.push(b.id);
    }
    let reads = ids.iter().cycle().take(400).map(|id| {
        let repo = repo();
        async move { (*id, repo.get(*id).await.expect("read through the bouncer").id) }
    });
    for (asked, got) in futures::future::join_all(reads).await {
        assert_eq!(asked, got);
    }
    pool.close().await;
}
