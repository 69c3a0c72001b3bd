//! Readiness for distribution by `business_id` (Citus): `migration citus-plan` names every entity exactly once,
//! as a reference table or a distributed one, and `migration lint` passes on the migrated schema and fails
//! on a hand-made table whose unique key lacks `business_id` and is not declared global. Citus itself is not
//! installed here (issue 18 has what a real cluster said).

use sea_orm::ConnectionTrait;

use crate::schema::support::run_cli;

#[test]
fn citus_plan_lists_every_entity_exactly_once_with_distributed_tables_colocated() {
    let out = run_cli("sqlite::memory:", &["citus-plan"]);
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls: Vec<&str> = script
        .lines()
        .filter(|l| l.starts_with("SELECT create_"))
        .collect();
    for m in entity::registry::all() {
        let mine: Vec<&&str> = calls
            .iter()
            .filter(|l| l.contains(&format!("('{}'", m.table)))
            .collect();
        assert_eq!(mine.len(), 1, "{}: {mine:?}\n{script}", m.table);
        let line = mine[0];
        if m.business_scoped {
            assert!(
                line.starts_with(&format!(
                    "SELECT create_distributed_table('{}', 'business_id'",
                    m.table
                )),
                "{line}"
            );
        } else {
            assert_eq!(*line, format!("SELECT create_reference_table('{}');", m.table));
        }
    }
    assert_eq!(calls.len(), entity::registry::all().len(), "{script}");
    // Parents before children, every later table colocated with the first.
    let order: Vec<&str> = calls.iter().filter_map(|l| l.split('\'').nth(1)).collect();
    let pos = |t: &str| order.iter().position(|x| *x == t).expect(t);
    assert!(
        pos("users") < pos("user_roles") && pos("roles") < pos("user_roles"),
        "{order:?}"
    );
    assert!(
        pos("businesses") < pos("users"),
        "reference tables first: {order:?}"
    );
    assert!(script.contains("colocate_with => 'users'"), "{script}");
    // The foreign key to a reference table comes back after both are converted.
    let drop_at = script
        .find("DROP CONSTRAINT IF EXISTS fk_role_permissions_permission_id")
        .expect("dropped first");
    let add_at = script
        .find("ADD CONSTRAINT fk_role_permissions_permission_id")
        .expect("added after");
    let distributed_at = script
        .find("create_distributed_table('role_permissions'")
        .expect("distributed");
    assert!(drop_at < distributed_at && distributed_at < add_at, "{script}");
    assert!(
        script.contains("DROP INDEX IF EXISTS uq_users_phone_number;"),
        "{script}"
    );
    assert!(!script.contains("NOT READY"), "{script}");
}

#[tokio::test]
async fn lint_passes_on_the_migrated_schema_and_fails_on_an_undeclared_global_unique_key() {
    let test_db = collex_tests::PgTestDb::migrated().await;
    let dir = collex_tests::migrations_dir();
    let dir = dir.to_str().expect("a UTF-8 path");
    // The migrations directory says which tables are hand-written (not judged).
    let out = run_cli(test_db.url(), &["lint", "--path", dir]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("ready: every distributed table has business_id"),
        "{text}"
    );
    assert!(
        text.contains("reference tables: businesses, permissions"),
        "{text}"
    );
    assert!(
        text.contains("global unique: users.phone_number is unique across businesses"),
        "{text}"
    );
    assert!(
        text.contains("not judged (hand-written or history): audit_trail"),
        "{text}"
    );

    let db = test_db.connect().await;
    db.execute_unprepared(
        "CREATE TABLE loyalty_cards (id uuid NOT NULL, business_id uuid NOT NULL, card_number text NOT NULL, \
         PRIMARY KEY (business_id, id)); \
         CREATE UNIQUE INDEX uq_loyalty_cards_card_number ON loyalty_cards (card_number);",
    )
    .await
    .expect("a hand-made table");
    let out = run_cli(test_db.url(), &["lint", "--path", dir]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{text}{err}");
    assert!(
        text.contains(
            "problem: loyalty_cards: unique index uq_loyalty_cards_card_number on (card_number) lacks business_id"
        ),
        "{text}"
    );
    assert!(text.contains("#[global_unique]"), "{text}");
    assert!(
        err.contains("lint: 1 problem(s) would stop Citus from distributing by business_id"),
        "{err}"
    );
}
