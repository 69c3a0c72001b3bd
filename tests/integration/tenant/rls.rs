//! Row-level security, as the application role sees it (`LOGIN NOSUPERUSER NOBYPASSRLS`, owning no table,
//! created by the harness): the policies generated on every business-scoped table confine raw SQL, not only
//! the repository, to the business of the scoped transaction, and fail closed without one.

use entity::prelude::*;
use entity::roles;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use uuid::Uuid;

use crate::entity::fixtures::{business, ctx, session, user};

/// A migrated database with two businesses, each with a user, a session and a role (written by the owner,
/// a superuser, whom row-level security does not hold), and a pool of `max` connections as the app role.
struct Two {
    _db: collex_tests::PgTestDb,
    owner: DatabaseConnection,
    app: DatabaseConnection,
    a: Uuid,
    b: Uuid,
    user_a: Uuid,
    user_b: Uuid,
}

async fn two_businesses(max: u32) -> Two {
    let db = collex_tests::PgTestDb::migrated().await;
    let owner = db.connect().await;
    let (a, b) = (business(&owner, "a").await.id, business(&owner, "b").await.id);
    let mut users = Vec::new();
    for (n, biz) in [(1, a), (2, b)] {
        let cx = ctx(biz, Uuid::now_v7());
        let u = Users::repo(&owner, cx)
            .expect("scoped")
            .insert(user(n))
            .await
            .expect("user");
        UserSessions::repo(&owner, cx)
            .expect("scoped")
            .insert(session(u.id, n))
            .await
            .expect("session");
        Roles::repo(&owner, cx)
            .expect("scoped")
            .insert(roles::ActiveModel {
                name: Set("cashier".into()),
                category: Set("staff".into()),
                is_active: Set(true),
                ..Default::default()
            })
            .await
            .expect("role");
        users.push(u.id);
    }
    let app = db.connect_as_app(max).await;
    Two {
        _db: db,
        owner,
        app,
        a,
        b,
        user_a: users[0],
        user_b: users[1],
    }
}

fn scoped_tables() -> Vec<&'static str> {
    entity::registry::all()
        .into_iter()
        .filter(|m| m.business_scoped)
        .map(|m| m.table)
        .collect()
}

async fn count(db: &impl ConnectionTrait, table: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT count(*) FROM {table}"),
        ))
        .await
        .unwrap_or_else(|e| panic!("count {table}: {e}"))
        .expect("a row");
    row.try_get_by_index(0).expect("count")
}

async fn exec(
    db: &impl ConnectionTrait,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<u64, sea_orm::DbErr> {
    db.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
        .await
        .map(|r| r.rows_affected())
}

const INSERT_USER: &str = "INSERT INTO users (id, business_id, phone_number) VALUES ($1, $2, $3)";

#[tokio::test]
async fn with_no_business_set_every_scoped_table_reads_nothing_and_refuses_inserts() {
    let t = two_businesses(2).await;
    for table in scoped_tables() {
        assert!(count(&t.owner, table).await >= 0);
        assert_eq!(
            count(&t.app, table).await,
            0,
            "{table} outside a scoped transaction"
        );
        let tx = Scoped::begin(&t.app, Ctx::new()).await.expect("begin");
        assert_eq!(
            count(&*tx, table).await,
            0,
            "{table} in a transaction without a business"
        );
    }
    assert_eq!(count(&t.owner, "users").await, 2, "the rows are there");
    let err = exec(
        &t.app,
        INSERT_USER,
        vec![Uuid::now_v7().into(), t.a.into(), "+15559990001".into()],
    )
    .await
    .expect_err("insert without a business");
    assert!(err.to_string().contains("row-level security"), "{err}");
    let tx = Scoped::begin(&t.app, Ctx::new()).await.expect("begin");
    let err = exec(
        &*tx,
        INSERT_USER,
        vec![Uuid::now_v7().into(), t.a.into(), "+15559990002".into()],
    )
    .await
    .expect_err("insert in a transaction without a business");
    assert!(err.to_string().contains("row-level security"), "{err}");
}

#[tokio::test]
async fn with_business_a_raw_sql_sees_only_a_and_cannot_write_b() {
    let t = two_businesses(2).await;
    let tx = Scoped::begin(&t.app, Ctx::new().business(t.a))
        .await
        .expect("begin");
    for table in ["users", "user_sessions", "roles"] {
        assert_eq!(count(&*tx, table).await, 1, "{table}: A's row only");
    }
    let rows = tx
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT DISTINCT business_id FROM users",
        ))
        .await
        .expect("read");
    let seen: Vec<Uuid> = rows
        .iter()
        .map(|r| r.try_get_by_index(0).expect("uuid"))
        .collect();
    assert_eq!(seen, vec![t.a]);
    // Rows of B are not there to update or delete.
    let touched = exec(
        &*tx,
        "UPDATE users SET status = 'x' WHERE id = $1",
        vec![t.user_b.into()],
    )
    .await
    .expect("update");
    assert_eq!(touched, 0);
    let deleted = exec(
        &*tx,
        "DELETE FROM user_sessions WHERE business_id = $1",
        vec![t.b.into()],
    )
    .await
    .expect("delete");
    assert_eq!(deleted, 0);
    // The repository in the same transaction agrees.
    let listed = tx.repo::<Users>().expect("scoped").list().await.expect("list");
    assert_eq!(listed.iter().map(|u| u.id).collect::<Vec<_>>(), vec![t.user_a]);
    tx.commit().await.expect("commit");

    // Writing a row of B, or moving A's row to B, is refused by the policy's WITH CHECK.
    let tx = Scoped::begin(&t.app, Ctx::new().business(t.a))
        .await
        .expect("begin");
    let err = exec(
        &*tx,
        INSERT_USER,
        vec![Uuid::now_v7().into(), t.b.into(), "+15559990003".into()],
    )
    .await
    .expect_err("insert naming B");
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(tx);
    let tx = Scoped::begin(&t.app, Ctx::new().business(t.a))
        .await
        .expect("begin");
    let err = exec(
        &*tx,
        "UPDATE users SET business_id = $1 WHERE id = $2",
        vec![t.b.into(), t.user_a.into()],
    )
    .await
    .expect_err("update naming B");
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(tx);

    // The explicit all-businesses setting, as Ctx::all_businesses() asks for it, sees both.
    let tx = Scoped::begin(&t.app, Ctx::new().all_businesses())
        .await
        .expect("begin");
    assert_eq!(count(&*tx, "users").await, 2);
    tx.commit().await.expect("commit");
    assert_eq!(count(&t.owner, "users").await, 2, "nothing of B changed");
}

#[tokio::test]
async fn the_setting_never_survives_into_the_next_transaction_on_a_pool_of_one() {
    let t = two_businesses(1).await;
    let pid = |db: &DatabaseConnection| {
        let db = db.clone();
        async move {
            let row = db
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT pg_backend_pid(), current_setting('app.business_id', true)",
                ))
                .await
                .expect("read")
                .expect("row");
            let pid: i32 = row.try_get_by_index(0).expect("pid");
            let setting: Option<String> = row.try_get_by_index(1).expect("setting");
            (pid, setting)
        }
    };
    let tx = Scoped::begin(&t.app, Ctx::new().business(t.a).actor(t.user_a))
        .await
        .expect("begin");
    let row = tx
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_backend_pid(), current_setting('app.business_id', true), current_setting('app.actor_id', true)",
        ))
        .await
        .expect("read")
        .expect("row");
    let inside: i32 = row.try_get_by_index(0).expect("pid");
    let business: String = row.try_get_by_index(1).expect("business");
    let actor: String = row.try_get_by_index(2).expect("actor");
    assert_eq!((business, actor), (t.a.to_string(), t.user_a.to_string()));
    assert_eq!(count(&*tx, "users").await, 1);
    tx.commit().await.expect("commit");

    let (after, setting) = pid(&t.app).await;
    assert_eq!(after, inside, "the pool has one connection: the same one");
    assert_eq!(
        setting.as_deref().unwrap_or(""),
        "",
        "the setting ended with the transaction"
    );
    assert_eq!(count(&t.app, "users").await, 0, "and with it the business's rows");

    // A transaction dropped without commit (an error path) ends it too.
    let tx = Scoped::begin(&t.app, Ctx::new().business(t.b))
        .await
        .expect("begin");
    assert_eq!(count(&*tx, "users").await, 1);
    drop(tx);
    let (again, setting) = pid(&t.app).await;
    assert_eq!(again, inside);
    assert_eq!(setting.as_deref().unwrap_or(""), "");
    assert_eq!(count(&t.app, "users").await, 0);
    let tx = Scoped::begin(&t.app, Ctx::new()).await.expect("begin");
    assert_eq!(
        count(&*tx, "users").await,
        0,
        "the next transaction without a business sees nothing"
    );
}

#[tokio::test]
async fn the_audit_trail_names_the_table_by_its_trigger_argument_and_is_confined_too() {
    let t = two_businesses(2).await;
    // A shard of a distributed table has the table's name plus a number; the trigger must not use it.
    t.owner
        .execute_unprepared("ALTER TABLE users RENAME TO users_102053")
        .await
        .expect("rename");
    let tx = Scoped::begin(&t.app, Ctx::new().business(t.a))
        .await
        .expect("begin");
    exec(
        &*tx,
        "INSERT INTO users_102053 (id, business_id, phone_number) VALUES ($1, $2, $3)",
        vec![Uuid::now_v7().into(), t.a.into(), "+15559990004".into()],
    )
    .await
    .expect("insert into the shard-named table");
    tx.commit().await.expect("commit");
    t.owner
        .execute_unprepared("ALTER TABLE users_102053 RENAME TO users")
        .await
        .expect("rename back");
    let names = t
        .owner
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT DISTINCT table_name FROM audit_trail WHERE table_name LIKE 'users%'",
        ))
        .await
        .expect("read");
    let names: Vec<String> = names
        .iter()
        .map(|r| r.try_get_by_index(0).expect("name"))
        .collect();
    assert_eq!(names, vec!["users".to_owned()]);

    // The app role reads the trail of its business only.
    let tx = Scoped::begin(&t.app, Ctx::new().business(t.b))
        .await
        .expect("begin");
    let rows = tx
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT DISTINCT business_id FROM audit_trail",
        ))
        .await
        .expect("read");
    let seen: Vec<Option<Uuid>> = rows
        .iter()
        .map(|r| r.try_get_by_index(0).expect("uuid"))
        .collect();
    assert_eq!(seen, vec![Some(t.b)]);
}

#[tokio::test]
async fn drift_reports_a_scoped_table_without_its_policy_or_force() {
    let t = two_businesses(1).await;
    t.owner
        .execute_unprepared(
            "ALTER TABLE users NO FORCE ROW LEVEL SECURITY; \
             DROP POLICY collex_business_isolation ON roles;",
        )
        .await
        .expect("weaken");
    let drift = migration::drift_of(
        &t.owner,
        &collex_tests::migrations_dir(),
        &entity::registry::all(),
    )
    .await
    .expect("drift");
    let lines = drift.lines().join("\n");
    assert!(
        lines.contains("row-level security of users not forced"),
        "{lines}"
    );
    assert!(
        lines.contains("missing policy collex_business_isolation on roles"),
        "{lines}"
    );
    assert_eq!(drift.lines().len(), 2, "{lines}");
}

#[tokio::test]
async fn a_superuser_is_told_that_row_level_security_does_not_apply_and_the_app_role_is_not() {
    let t = two_businesses(1).await;
    let warning = service::tenancy::rls_bypass(&t.owner)
        .await
        .expect("the test cluster's postgres is a superuser");
    assert!(warning.contains("a superuser"), "{warning}");
    assert!(warning.contains("row-level security does not apply"), "{warning}");
    assert_eq!(service::tenancy::rls_bypass(&t.app).await, None);
}

#[tokio::test]
async fn the_service_connected_as_a_superuser_logs_the_warning_at_start_up() {
    use crate::service::support::{command, spawn, temp_dir};
    let db = collex_tests::PgTestDb::migrated().await;
    let dir = temp_dir();
    for e in std::fs::read_dir(collex_tests::migrations_dir())
        .expect("migrations")
        .flatten()
    {
        std::fs::copy(e.path(), dir.path().join("migrations").join(e.file_name())).expect("copy");
    }
    let env = [("DATABASE_URL", db.url()), ("SERVER_ADDR", "127.0.0.1:0")];
    let svc = spawn(command(dir.path(), &env));
    svc.wait_for_output("row-level security does not apply to it");
    let (_, output) = svc.terminate();
    let line = output
        .lines()
        .find(|l| l.contains("row-level security does not apply"))
        .expect("the warning");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("a superuser"), "{line}");
}
