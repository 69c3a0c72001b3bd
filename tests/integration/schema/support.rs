//! Helpers for the schema tests: running the built `migration` binary, catalog reads and test-only entities.

use collex_tests::{clean_command, workspace_bin};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

pub use collex_tests::TempDir;

/// Runs the `migration` binary against `url` with `args`.
pub fn run_cli(url: &str, args: &[&str]) -> std::process::Output {
    clean_command(&workspace_bin("migration"))
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .expect("run the migration binary")
}

/// The rows of a query whose columns are all text (or NULL).
pub async fn texts(db: &DatabaseConnection, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .map(|r| {
            let mut out = Vec::new();
            let mut i = 0;
            while let Ok(v) = r.try_get_by_index::<Option<String>>(i) {
                out.push(v);
                i += 1;
            }
            out
        })
        .collect()
}

/// The single text value of a query.
pub async fn text(db: &DatabaseConnection, sql: &str) -> Option<String> {
    texts(db, sql)
        .await
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .flatten()
}

/// `sqlite::memory:` with one connection (the runner's SQLite path holds one connection at a time).
pub async fn sqlite() -> DatabaseConnection {
    collex_tests::sqlite_memory().await
}

/// Whether `db` is PostgreSQL.
pub fn is_pg(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}

/// Test-only entities: `widgets` before and after it gains a field and an index, and `gadgets`, a new
/// business-scoped entity for auto-migrate.
pub mod test_entities {
    /// `widgets` as first written.
    pub mod widgets_v1 {
        use sea_orm::entity::prelude::*;

        /// A widget.
        #[entity::behaviour(BaseModel, SoftDeletable)]
        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "widgets")]
        pub struct Model {
            /// Unique among live widgets.
            #[sea_orm(column_type = "String(StringLen::N(40))", unique)]
            pub code: String,
        }

        /// No relations.
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
    }

    /// `widgets` with a new `color` field and an index on it.
    pub mod widgets_v2 {
        use sea_orm::entity::prelude::*;

        /// A widget.
        #[entity::behaviour(BaseModel, SoftDeletable)]
        #[index(
            name = "idx_widgets_color",
            columns(color, code),
            where = "deleted_at IS NULL"
        )]
        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "widgets")]
        pub struct Model {
            /// Unique among live widgets.
            #[sea_orm(column_type = "String(StringLen::N(40))", unique)]
            pub code: String,
            /// A colour name.
            #[sea_orm(column_type = "String(StringLen::N(20))", nullable)]
            pub color: Option<String>,
        }

        /// No relations.
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
    }

    /// `widgets` with a NOT NULL field that has no default.
    pub mod widgets_v3 {
        use sea_orm::entity::prelude::*;

        /// A widget.
        #[entity::behaviour(BaseModel, SoftDeletable)]
        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "widgets")]
        pub struct Model {
            /// Unique among live widgets.
            #[sea_orm(column_type = "String(StringLen::N(40))", unique)]
            pub code: String,
            /// Required, no default: existing rows cannot get a value.
            pub size: i32,
        }

        /// No relations.
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
    }

    /// A new business-scoped entity that only auto-migrate creates.
    pub mod gadgets {
        use sea_orm::entity::prelude::*;

        /// A gadget.
        #[entity::behaviour(BaseModel, SoftDeletable, BusinessScoped, Versioned)]
        #[index(name = "idx_gadgets_kind", columns(kind), where = "deleted_at IS NULL")]
        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "gadgets")]
        pub struct Model {
            /// Unique among the live gadgets.
            #[sea_orm(column_type = "String(StringLen::N(40))", unique)]
            pub serial: String,
            /// What kind of gadget.
            #[sea_orm(column_type = "String(StringLen::N(20))", default_value = "plain")]
            pub kind: String,
        }

        /// None but the business's, which `BusinessScoped` adds.
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
    }
}
