//! The complete example program (`entity/examples/tour.rs`, shown in the README) runs as a real process
//! against PostgreSQL and SQLite and shows each behaviour.

use collex_tests::{TempDir, clean_command, workspace_example};

/// Runs the example with `DATABASE_URL=url` and returns its output, checking it succeeded.
pub(crate) fn tour(url: &str) -> String {
    let out = clean_command(&workspace_example("tour"))
        .env("DATABASE_URL", url)
        .output()
        .expect("run the tour example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tour failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

pub(crate) fn assert_each_behaviour_shows(out: &str, unique_constraint: &str) {
    for line in [
        "is a UUID v7, created_at = updated_at",
        "AuditableEntity: created_by = updated_by = Some(",
        "BusinessScoped: business_id = the context's business: true",
        "Versioned: update -> version 2",
        "Versioned: a writer still at version 1 gets StaleVersion (found 2)",
        "owned columns: users.updated_at is written by the repository (#[behaviour(BaseModel)])",
        "BusinessScoped: another business finds the user: false",
        "relations: ",
        "has 1 live session(s)",
        "SoftDeletable: after soft_delete, find_by_id finds it: false; only_deleted lists 1",
        "SoftDeletable: restored at version 4",
        "bulk: 1 user(s) of the shop set inactive",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let unique = format!("unique: phone_number is taken ({unique_constraint})");
    assert!(out.contains(&unique), "missing {unique:?} in:\n{out}");
}

#[tokio::test]
async fn the_tour_example_runs_every_behaviour_on_a_migrated_postgres_database() {
    let test_db = collex_tests::PgTestDb::migrated().await;
    let out = tour(test_db.url());
    assert!(!out.contains("no tables yet"), "{out}");
    assert_each_behaviour_shows(&out, "uq_users_phone_number");
}

#[test]
fn the_tour_example_runs_every_behaviour_on_a_new_sqlite_file() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("tour.db").display());
    let out = tour(&url);
    assert!(
        out.contains("no tables yet: creating them from the entities"),
        "{out}"
    );
    assert_each_behaviour_shows(&out, "sqlite_autoindex_users_2");
}
