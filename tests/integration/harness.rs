//! Checks of the test harness itself.

use collex_tests::{PgTestDb, admin_connection};
use sea_orm::{ConnectionTrait, Statement};

#[tokio::test]
async fn throwaway_database_is_dropped_when_the_handle_drops() {
    let db = PgTestDb::new().await;
    let name = db.name().to_owned();
    let conn = db.connect().await;
    conn.execute_unprepared("CREATE TABLE t (x int)")
        .await
        .expect("create");
    conn.close().await.expect("close");
    drop(db);
    let admin = admin_connection().await;
    let row = admin
        .query_one_raw(Statement::from_sql_and_values(
            admin.get_database_backend(),
            "SELECT count(*)::bigint AS n FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await
        .expect("query")
        .expect("row");
    let n: i64 = row.try_get("", "n").expect("n");
    assert_eq!(n, 0, "database should be gone");
}
