//! Auto-migrate: pending migrations, then the entities' additive changes, never a drop or a rewrite.

use entity::registry::EntityMeta;
use migration::{Options, auto_migrate_with};
use sea_orm::ConnectionTrait;

use super::support::test_entities::gadgets;
use super::support::{TempDir, text};

fn with_gadgets() -> Vec<EntityMeta> {
    let mut all = entity::registry::all();
    all.push(EntityMeta::of::<gadgets::Entity>());
    all
}

#[tokio::test]
async fn a_new_entity_gets_its_table_and_indexes_without_a_migration_file_and_a_warning_names_it() {
    let test_db = collex_tests::PgTestDb::new().await;
    let db = test_db.connect().await;
    let dir = TempDir::with_repo_migrations();
    let files = dir.files();

    let report = auto_migrate_with(&db, dir.path(), &with_gadgets(), Options::default())
        .await
        .expect("auto-migrate");
    assert_eq!(
        report.migrations.steps.len(),
        collex_tests::repo_migration_versions(),
        "the versioned migrations run first"
    );
    assert_eq!(report.applied.len(), 1, "{:?}", report.applied);
    assert_eq!(report.applied[0].change, "create table gadgets");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("create table gadgets") && w.contains("not in a versioned migration")),
        "{:?}",
        report.warnings
    );
    assert_eq!(dir.files(), files, "no migration file is written");

    let drift = migration::drift_of(&db, dir.path(), &with_gadgets())
        .await
        .expect("drift");
    assert!(drift.is_empty(), "{:#?}", drift.lines());
    // business_id leads the primary key of a scoped table, which serves its lookups: no index of its own.
    let pk = text(
        &db,
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'gadgets_pkey'",
    )
    .await;
    assert!(
        pk.as_deref().is_some_and(|d| d.contains("(business_id, id)")),
        "{pk:?}"
    );
    for index in ["idx_gadgets_kind", "uq_gadgets_serial"] {
        let def = text(
            &db,
            &format!("SELECT indexdef FROM pg_indexes WHERE indexname = '{index}'"),
        )
        .await;
        assert!(def.is_some(), "{index} exists");
    }
    let partial = text(
        &db,
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_gadgets_serial'",
    )
    .await;
    assert!(partial.unwrap_or_default().contains("WHERE (deleted_at IS NULL)"));
    let trigger = text(
        &db,
        "SELECT tgname::text FROM pg_trigger WHERE tgname = 'trg_gadgets_updated_at'",
    )
    .await;
    assert!(
        trigger.is_some(),
        "a table created after 002 gets the updated_at trigger too"
    );

    let again = auto_migrate_with(&db, dir.path(), &with_gadgets(), Options::default())
        .await
        .expect("second start");
    assert!(
        again.applied.is_empty() && again.migrations.steps.is_empty(),
        "{again:?}"
    );
}

#[tokio::test]
async fn auto_migrate_never_drops_or_rewrites_and_says_what_it_left_alone() {
    let test_db = collex_tests::PgTestDb::migrated().await;
    let db = test_db.connect().await;
    db.execute_unprepared(
        "ALTER TABLE users ALTER COLUMN status TYPE text;
         CREATE INDEX idx_users_stray ON users (created_at);
         ALTER TABLE users ADD COLUMN nickname text;
         DROP INDEX idx_roles_category_active;",
    )
    .await
    .expect("hand edits");
    let report = auto_migrate_with(
        &db,
        &collex_tests::migrations_dir(),
        &entity::registry::all(),
        Options::default(),
    )
    .await
    .expect("auto-migrate");
    let applied: Vec<&str> = report.applied.iter().map(|a| a.change.as_str()).collect();
    assert_eq!(
        applied,
        ["create index idx_roles_category_active on roles"],
        "only additive changes"
    );
    let warnings = report.warnings.join("\n");
    assert!(warnings.contains("alter column users.status"), "{warnings}");
    assert!(warnings.contains("drop index idx_users_stray"), "{warnings}");
    let ty = text(
        &db,
        "SELECT data_type::text FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'status'",
    )
    .await;
    assert_eq!(ty.as_deref(), Some("text"), "the column was not rewritten");
    let stray = text(
        &db,
        "SELECT indexname::text FROM pg_indexes WHERE indexname = 'idx_users_stray'",
    )
    .await;
    assert!(stray.is_some(), "the stray index was not dropped");
    let nickname = text(
        &db,
        "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'nickname'",
    )
    .await;
    assert!(nickname.is_some(), "the extra column was not dropped");
}

#[tokio::test]
async fn auto_migrate_on_an_empty_sqlite_database_leaves_it_matching_the_entities() {
    let db = super::support::sqlite().await;
    let report = auto_migrate_with(
        &db,
        &collex_tests::migrations_dir(),
        &entity::registry::all(),
        Options::default(),
    )
    .await
    .expect("auto-migrate on SQLite");
    assert_eq!(
        report.migrations.steps.len(),
        collex_tests::repo_migration_versions()
    );
    assert!(
        report.applied.is_empty(),
        "the migrations already create the entities: {:?}",
        report.applied
    );
    let drift = migration::drift_of(&db, &collex_tests::migrations_dir(), &entity::registry::all())
        .await
        .expect("drift");
    assert!(drift.is_empty(), "{:#?}", drift.lines());
}

#[tokio::test]
async fn a_migration_generated_after_auto_migrate_applies_cleanly_to_that_database() {
    let test_db = collex_tests::PgTestDb::new().await;
    let db = test_db.connect().await;
    let dir = TempDir::with_repo_migrations();
    auto_migrate_with(&db, dir.path(), &with_gadgets(), Options::default())
        .await
        .expect("auto-migrate creates gadgets");

    let generated = migration::schema::from_entities::create_from_entities(
        dir.path(),
        "add gadgets",
        &with_gadgets(),
        Some(&db),
    )
    .await
    .expect("generate")
    .expect("the committed migrations lack gadgets");
    assert_eq!(
        generated.version,
        collex_tests::repo_migration_versions() as u64 + 1
    );
    let set = migration::MigrationSet::load_for(dir.path(), Vec::new(), db.get_database_backend())
        .expect("valid files");
    let report = migration::Migrator::new(set)
        .up(&db, None)
        .await
        .expect("the generated CREATE ... IF NOT EXISTS applies over what auto-migrate made");
    assert_eq!(report.steps.len(), 1);
    let drift = migration::drift_of(&db, dir.path(), &with_gadgets())
        .await
        .expect("drift");
    assert!(drift.is_empty(), "{:#?}", drift.lines());
}

async fn a_required_column_is_not_forced_onto_existing_rows(db: &sea_orm::DatabaseConnection) {
    use super::support::test_entities::{widgets_v1, widgets_v3};
    let dir = TempDir::new();
    let v1 = vec![EntityMeta::of::<widgets_v1::Entity>()];
    let v3 = vec![EntityMeta::of::<widgets_v3::Entity>()];
    auto_migrate_with(db, dir.path(), &v1, Options::default())
        .await
        .expect("create widgets");
    db.execute_unprepared(
        "INSERT INTO widgets (id, code) VALUES ('00000000-0000-0000-0000-000000000001', 'w1')",
    )
    .await
    .expect("a row");
    let report = auto_migrate_with(db, dir.path(), &v3, Options::default())
        .await
        .expect("start-up is not blocked");
    assert!(report.applied.is_empty(), "{:?}", report.applied);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("NOT NULL column widgets.size")),
        "{:?}",
        report.warnings
    );
    let drift = migration::drift_of(db, dir.path(), &v3).await.expect("drift");
    assert_eq!(
        drift.missing_columns.len(),
        1,
        "the column is still reported as missing"
    );
}

#[tokio::test]
async fn a_required_column_is_not_forced_onto_existing_rows_on_postgres() {
    let test_db = collex_tests::PgTestDb::new().await;
    let db = test_db.connect().await;
    a_required_column_is_not_forced_onto_existing_rows(&db).await;
}

#[tokio::test]
async fn a_required_column_is_not_forced_onto_existing_rows_on_sqlite() {
    let db = super::support::sqlite().await;
    a_required_column_is_not_forced_onto_existing_rows(&db).await;
}
