//! Behaviour tests of the `entity` crate, on PostgreSQL and on SQLite.

mod base;
mod cache;
pub(crate) mod example;
pub(crate) mod fixtures;
mod owned;
mod query;
mod randomized;
mod relations;
mod scope;
mod soft_delete;
mod versioned;
mod violations;

/// Runs one async check against a throwaway PostgreSQL database and an in-memory SQLite database,
/// as two tests named `<name>::postgres` and `<name>::sqlite`.
macro_rules! on_both {
    ($name:ident, $check:ident) => {
        mod $name {
            #[tokio::test]
            async fn postgres() {
                let (_guard, db) = collex_tests::pg_with_entities().await;
                super::$check(&db).await;
            }
            #[tokio::test]
            async fn sqlite() {
                let db = collex_tests::sqlite_with_entities().await;
                super::$check(&db).await;
            }
        }
    };
}
pub(crate) use on_both;
