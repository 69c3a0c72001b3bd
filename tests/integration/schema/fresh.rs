//! A fresh database migrated `up` with the repository's migrations: exactly the entity schema (no drift),
//! the hand-written objects, the spec's indexes; drift reported by `status` once the database changes.

use migration::schema::canonical_expr;
use sea_orm::ConnectionTrait;

use super::support::{TempDir, run_cli, text, texts};

/// The spec's "Performance Optimization" indexes, verbatim.
const SPEC_INDEXES: &str = "
CREATE INDEX idx_users_phone_status ON users(phone_number, status) WHERE deleted_at IS NULL;
CREATE INDEX idx_users_email_status ON users(email, status) WHERE deleted_at IS NULL AND email IS NOT NULL;
CREATE INDEX idx_user_sessions_user_active ON user_sessions(user_id, is_active) WHERE deleted_at IS NULL;
CREATE INDEX idx_user_activities_user_type ON user_activities(user_id, activity_type) WHERE deleted_at IS NULL;
CREATE INDEX idx_roles_category_active ON roles(category, is_active) WHERE deleted_at IS NULL;
CREATE INDEX idx_permissions_module_resource ON permissions(module, resource) WHERE deleted_at IS NULL;
";

#[tokio::test]
async fn a_fresh_postgres_database_migrated_up_has_no_drift_and_the_hand_written_objects() {
    let test_db = collex_tests::PgTestDb::migrated().await;
    let db = test_db.connect().await;
    let drift = migration::drift_of(&db, &collex_tests::migrations_dir(), &entity::registry::all())
        .await
        .expect("drift check");
    assert!(drift.is_empty(), "drift after up: {:#?}", drift.lines());

    let functions = texts(
        &db,
        "SELECT proname::text FROM pg_proc WHERE pronamespace = current_schema()::regnamespace ORDER BY 1",
    )
    .await;
    let functions: Vec<String> = functions.into_iter().filter_map(|r| r[0].clone()).collect();
    assert!(
        functions.contains(&"collex_set_updated_at".to_owned()),
        "{functions:?}"
    );
    assert!(
        functions.contains(&"collex_audit_trail".to_owned()),
        "{functions:?}"
    );
    let audit = text(&db, "SELECT to_regclass('audit_trail')::text").await;
    assert_eq!(audit.as_deref(), Some("audit_trail"));
    // Every table with updated_at has the trigger; the security-relevant ones are audited.
    let missing = texts(
        &db,
        "SELECT c.table_name::text FROM information_schema.columns c WHERE c.table_schema = current_schema() \
         AND c.column_name = 'updated_at' AND NOT EXISTS (SELECT 1 FROM pg_trigger t \
         WHERE t.tgrelid = c.table_name::text::regclass AND t.tgname = 'trg_' || c.table_name || '_updated_at')",
    )
    .await;
    assert!(
        missing.is_empty(),
        "tables without the updated_at trigger: {missing:?}"
    );
    let audited = text(
        &db,
        "SELECT count(*)::text FROM pg_trigger WHERE tgname LIKE 'trg_%_audit' AND NOT tgisinternal",
    )
    .await;
    assert_eq!(audited.as_deref(), Some("6"));
}

fn normalise_indexdef(def: &str) -> String {
    canonical_expr(
        &def.replace(" ON public.", " ON ")
            .replace(" USING btree", "")
            .trim_end_matches(';')
            .replace("CREATE INDEX IF NOT EXISTS", "CREATE INDEX"),
    )
}

#[tokio::test]
async fn the_six_spec_indexes_match_the_spec_in_pg_indexes() {
    let test_db = collex_tests::PgTestDb::migrated().await;
    let db = test_db.connect().await;
    for spec in SPEC_INDEXES.lines().filter(|l| !l.trim().is_empty()) {
        let name = spec.split_whitespace().nth(2).expect("index name");
        let def = text(
            &db,
            &format!(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = '{name}'"
            ),
        )
        .await
        .unwrap_or_else(|| panic!("index {name} does not exist"));
        assert_eq!(
            normalise_indexdef(&def),
            normalise_indexdef(spec),
            "pg_indexes.indexdef of {name}: {def}\nspec: {spec}"
        );
    }
}

#[tokio::test]
async fn updated_at_is_kept_current_by_raw_sql_updates_on_postgres() {
    let test_db = collex_tests::PgTestDb::migrated().await;
    let db = test_db.connect().await;
    db.execute_unprepared(
        "INSERT INTO businesses (name, slug, updated_at) VALUES ('A', 'a', '2000-01-01T00:00:00Z');
         UPDATE businesses SET name = 'B' WHERE slug = 'a';",
    )
    .await
    .expect("raw insert and update");
    let stamped = text(
        &db,
        "SELECT (updated_at > '2020-01-01')::text FROM businesses WHERE slug = 'a'",
    )
    .await;
    assert_eq!(
        stamped.as_deref(),
        Some("true"),
        "a raw UPDATE refreshes updated_at"
    );
    db.execute_unprepared(
        "UPDATE businesses SET name = 'C', updated_at = '2001-01-01T00:00:00Z' WHERE slug = 'a'",
    )
    .await
    .expect("explicit stamp");
    let explicit = text(
        &db,
        "SELECT to_char(updated_at AT TIME ZONE 'UTC', 'YYYY') FROM businesses",
    )
    .await;
    assert_eq!(
        explicit.as_deref(),
        Some("2001"),
        "an update that sets updated_at keeps its value"
    );
}

#[tokio::test]
async fn the_audit_trail_records_raw_sql_changes_with_the_changed_columns() {
    let test_db = collex_tests::PgTestDb::migrated().await;
    let db = test_db.connect().await;
    db.execute_unprepared(
        "INSERT INTO businesses (name, slug) VALUES ('A', 'a');
         UPDATE businesses SET status = 'suspended' WHERE slug = 'a';
         UPDATE businesses SET status = 'suspended' WHERE slug = 'a';
         DELETE FROM businesses WHERE slug = 'a';",
    )
    .await
    .expect("raw changes");
    let rows = texts(
        &db,
        "SELECT operation, array_to_string(changed_columns, ','), (record_id = business_id)::text \
         FROM audit_trail ORDER BY id",
    )
    .await;
    // One transaction: updated_at keeps the transaction's time, and the repeated update changes nothing.
    let ops: Vec<String> = rows.iter().filter_map(|r| r[0].clone()).collect();
    assert_eq!(
        ops,
        ["INSERT", "UPDATE", "DELETE"],
        "an update that changes nothing is skipped: {rows:?}"
    );
    assert_eq!(rows[1][1].as_deref(), Some("status"));
    assert_eq!(
        rows[2][2].as_deref(),
        Some("true"),
        "a business is its own business_id"
    );
}

#[tokio::test]
async fn a_fresh_sqlite_database_migrated_up_has_no_drift_and_records_postgres_only_versions() {
    let db = super::support::sqlite().await;
    let report = collex_tests::apply_repo_migrations(&db)
        .await
        .expect("up on SQLite");
    let labels: Vec<&str> = report.steps.iter().map(|s| s.label.as_str()).collect();
    assert!(labels[0].ends_with(".sqlite.sql"), "{labels:?}");
    assert!(labels[1].contains("no sqlite variant"), "{labels:?}");
    let drift = migration::drift_of(&db, &collex_tests::migrations_dir(), &entity::registry::all())
        .await
        .expect("drift check");
    assert!(drift.is_empty(), "drift after up: {:#?}", drift.lines());
}

#[tokio::test]
async fn status_reports_drift_in_text_and_json_and_check_fails_until_it_is_gone() {
    let test_db = collex_tests::PgTestDb::new().await;
    let dir = TempDir::with_repo_migrations();
    let path = dir.path().to_str().expect("utf-8 path");
    let url = format!("{}?sslmode=disable", test_db.url());

    let before = run_cli(&url, &["--path", path, "status", "--check"]);
    assert_eq!(before.status.code(), Some(3), "pending migrations fail the check");
    let up = run_cli(&url, &["--path", path, "up"]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let clean = run_cli(&url, &["--path", path, "status", "--check"]);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(String::from_utf8_lossy(&clean.stdout).contains("schema: matches the entities"));

    let db = test_db.connect().await;
    db.execute_unprepared(
        "ALTER TABLE users DROP COLUMN display_name;
         ALTER TABLE users ALTER COLUMN status SET DEFAULT 'new';
         ALTER TABLE users ALTER COLUMN email SET NOT NULL;
         ALTER TABLE users ALTER COLUMN phone_number TYPE varchar(30);
         ALTER TABLE users DROP CONSTRAINT fk_users_business_id;
         DROP INDEX idx_users_email_status;
         CREATE INDEX idx_users_email_status ON users (email, status) WHERE deleted_at IS NULL;
         CREATE INDEX idx_users_stray ON users (created_at);
         CREATE TABLE stray (id int);",
    )
    .await
    .expect("hand edits");
    let _ = db.close().await;

    let text_out = run_cli(&url, &["--path", path, "status", "--check"]);
    assert_eq!(text_out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&text_out.stdout);
    for needle in [
        "missing column users.display_name",
        "column users.status default",
        "column users.email nullable: expected NULL, found NOT NULL",
        "column users.phone_number type: expected varchar(20), found varchar(30)",
        "missing foreign key users (business_id) -> businesses (id) ON DELETE CASCADE",
        "index idx_users_email_status differs",
        "extra index idx_users_stray",
        "extra table stray",
    ] {
        assert!(stdout.contains(needle), "`{needle}` missing from:\n{stdout}");
    }
    assert!(
        !stdout.contains("audit_trail"),
        "hand-written tables are not extra:\n{stdout}"
    );

    let json_out = run_cli(&url, &["--path", path, "status", "--json"]);
    assert!(json_out.status.success(), "without --check, status succeeds");
    let v: serde_json::Value = serde_json::from_slice(&json_out.stdout).expect("status --json is JSON");
    let drift = &v["drift"];
    assert_eq!(drift["clean"], false);
    assert_eq!(drift["missing_columns"][0]["column"], "display_name");
    assert_eq!(
        drift["index_differences"][0]["expected"]["name"],
        "idx_users_email_status"
    );
    assert_eq!(
        drift["index_differences"][0]["expected"]["predicate"],
        "deleted_at IS NULL AND email IS NOT NULL"
    );
    assert_eq!(drift["extra_tables"], serde_json::json!(["stray"]));
    let aspects: Vec<&str> = drift["column_differences"]
        .as_array()
        .expect("column differences")
        .iter()
        .filter_map(|d| d["aspect"].as_str())
        .collect();
    assert_eq!(aspects, ["type", "nullable", "default"]);
}
