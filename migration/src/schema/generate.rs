//! The schema the entities declare, for one dialect.
//!
//! Starts from SeaORM's `CREATE TABLE` for each entity (columns with types, nullability and defaults, the
//! primary key, foreign keys from `belongs_to` relations, `#[sea_orm(unique)]` columns) and adds what SeaORM
//! cannot say:
//!
//! - the indexes declared with `#[index(...)]`, with their `WHERE` predicates;
//! - on SoftDeletable entities every unique constraint (a `unique` column or a declared unique index)
//!   becomes a partial unique index `WHERE deleted_at IS NULL`, so a deleted row's value can be used again;
//! - on BusinessScoped entities the primary key is `(business_id, id)`, every unique key is led by
//!   `business_id` (unique per business) unless its column is declared `#[global_unique(..)]`, and every
//!   foreign key to another BusinessScoped table is composite, `(business_id, x_id) → (business_id, id)`:
//!   the database itself then refuses a row that links two businesses (foreign-key checks ignore row-level
//!   security, so a policy alone would not), and every key contains the column a sharded deployment
//!   (Citus) distributes by. A composite primary key rather than `UNIQUE (business_id, id)` beside `PRIMARY
//!   KEY (id)`: Citus refuses any primary or unique key without the distribution column, and one index
//!   serves both the key and the business's rows;
//! - on BusinessScoped entities `business_id` is indexed (unless the primary key or a full index already
//!   leads with it);
//! - on PostgreSQL, BusinessScoped tables get row-level security, enabled and forced, with one policy
//!   ([`tenant_predicate`]) for reads and writes;
//! - on PostgreSQL a UUID `id` primary key defaults to `gen_random_uuid()` (rows inserted by raw SQL get one;
//!   the entity code sets a UUID v7 itself).
//!
//! Unique constraints are always written as named unique indexes, so the diff has one kind of object to
//! compare and the names are stable across dialects.

use entity::registry::EntityMeta;
use sea_orm::sea_query::{
    ColumnDef, ColumnType, Expr, PostgresQueryBuilder, Query, SqliteQueryBuilder, Table as SqTable, TableRef,
};

use super::{
    Column, Dialect, ForeignKey, Index, Policy, RowSecurity, Schema, SchemaError, Table, canonical_expr,
    canonical_type,
};

/// The predicate that makes an index ignore soft-deleted rows.
pub const LIVE_ROWS: &str = "deleted_at IS NULL";

/// The column of BusinessScoped tables that leads their keys.
pub const BUSINESS_ID: &str = "business_id";

/// The transaction-local setting that names the business a session works for (`entity::scoped` sets it
/// with `set_config(.., true)`).
pub const BUSINESS_SETTING: &str = "app.business_id";

/// The transaction-local setting that lifts the confinement (`'on'`), as `Ctx::all_businesses()` does.
pub const ALL_BUSINESSES_SETTING: &str = "app.all_businesses";

/// The name of the generated policy on every BusinessScoped table.
pub const TENANT_POLICY: &str = "collex_business_isolation";

/// The generated policy's predicate, for `USING` and `WITH CHECK` alike. Fails closed: an unset setting reads
/// NULL and an ended transaction's reads `''`, which `NULLIF` turns into NULL, and `business_id = NULL` is
/// never true. The comparison uses the table's `business_id` index like the repository's own filter.
pub fn tenant_predicate() -> String {
    format!(
        "business_id = NULLIF(current_setting('{BUSINESS_SETTING}', true), '')::uuid \
         OR current_setting('{ALL_BUSINESSES_SETTING}', true) = 'on'"
    )
}

/// The schema `entities` declare, in the order given (which must be parents first).
///
/// # Errors
/// [`SchemaError::UnsupportedType`], [`SchemaError::DuplicateIndex`] or [`SchemaError::ForeignKeyOrder`].
pub fn schema(entities: &[EntityMeta], dialect: Dialect) -> Result<Schema, SchemaError> {
    let backend = match dialect {
        Dialect::Postgres => sea_orm::DbBackend::Postgres,
        Dialect::Sqlite => sea_orm::DbBackend::Sqlite,
    };
    let orm_schema = sea_orm::Schema::new(backend);
    let mut out = Schema::default();
    let scoped: Vec<&str> = entities
        .iter()
        .filter(|m| m.business_scoped)
        .map(|m| m.table)
        .collect();
    for meta in entities {
        let mut table = table(meta, &orm_schema, dialect)?;
        if meta.business_scoped {
            for fk in &mut table.foreign_keys {
                if scoped.contains(&fk.ref_table.as_str()) && !fk.columns.iter().any(|c| c == BUSINESS_ID) {
                    fk.columns.insert(0, BUSINESS_ID.to_owned());
                    fk.ref_columns.insert(0, BUSINESS_ID.to_owned());
                }
            }
        }
        for fk in &table.foreign_keys {
            if fk.ref_table != table.name && out.table(&fk.ref_table).is_none() {
                return Err(SchemaError::ForeignKeyOrder {
                    table: table.name.clone(),
                    references: fk.ref_table.clone(),
                });
            }
        }
        for idx in &table.indexes {
            if let Some(other) = out.tables.iter().find(|t| t.index(&idx.name).is_some()) {
                return Err(SchemaError::DuplicateIndex {
                    name: idx.name.clone(),
                    first: other.name.clone(),
                    second: table.name.clone(),
                });
            }
        }
        out.tables.push(table);
    }
    Ok(out)
}

fn table(meta: &EntityMeta, orm_schema: &sea_orm::Schema, dialect: Dialect) -> Result<Table, SchemaError> {
    let stmt = (meta.create_table)(orm_schema);
    let name = meta.table.to_owned();
    let mut t = Table {
        name: name.clone(),
        ..Table::default()
    };
    let mut unique_columns = Vec::new();
    for def in stmt.get_columns() {
        let col_name = def.get_column_name();
        let spec = def.get_column_spec();
        let ty = def
            .get_column_type()
            .ok_or_else(|| SchemaError::UnsupportedType {
                table: name.clone(),
                column: col_name.clone(),
                ty: "(none)".to_owned(),
                dialect,
            })?;
        let sql_type = render_type(ty, dialect).ok_or_else(|| SchemaError::UnsupportedType {
            table: name.clone(),
            column: col_name.clone(),
            ty: format!("{ty:?}"),
            dialect,
        })?;
        if spec.primary_key {
            t.primary_key.push(col_name.clone());
        }
        if spec.unique {
            unique_columns.push(col_name.clone());
        }
        let mut default = spec.default.as_ref().map(|e| render_default(e, dialect));
        if dialect == Dialect::Postgres
            && spec.primary_key
            && col_name == "id"
            && sql_type == "uuid"
            && default.is_none()
        {
            default = Some("gen_random_uuid()".to_owned());
        }
        t.columns.push(Column {
            name: col_name,
            sql_type,
            nullable: !(spec.primary_key || spec.nullable == Some(false)),
            default,
        });
    }
    for idx in stmt.get_indexes() {
        if idx.is_primary_key() {
            t.primary_key = idx.get_index_spec().get_column_names();
        }
    }
    if meta.business_scoped && !t.primary_key.iter().any(|c| c == BUSINESS_ID) {
        t.primary_key.insert(0, BUSINESS_ID.to_owned());
    }
    if meta.business_scoped && dialect == Dialect::Postgres {
        // The database confines every reader to the business of the transaction, the table's owner included
        // (FORCE): raw SQL, reporting tools and a forgotten filter see one business, or nothing.
        t.row_security = RowSecurity {
            enabled: true,
            forced: true,
            policies: vec![Policy {
                name: TENANT_POLICY.to_owned(),
                using: Some(tenant_predicate()),
                check: Some(tenant_predicate()),
            }],
        };
    }
    for fk in stmt.get_foreign_key_create_stmts() {
        let fk = fk.get_foreign_key();
        let columns = fk.get_columns();
        t.foreign_keys.push(ForeignKey {
            name: fk
                .get_name()
                .map(|n| n.replace('-', "_"))
                .unwrap_or_else(|| format!("fk_{}_{}", name, columns.join("_"))),
            ref_table: fk.get_ref_table().map(table_ref_name).unwrap_or_default(),
            columns,
            ref_columns: fk.get_ref_columns(),
            on_delete: fk
                .get_on_delete()
                .map(|a| a.variant_name().to_owned())
                .map(|v| action_sql(&v))
                .unwrap_or_else(|| "NO ACTION".to_owned()),
        });
    }

    let live = |predicate: Option<&str>, unique: bool| -> Option<String> {
        match (meta.soft_deletable && unique, predicate) {
            (true, None) => Some(LIVE_ROWS.to_owned()),
            (true, Some(p)) if !canonical_expr(p).contains("deleted_at") => {
                Some(format!("({p}) AND {LIVE_ROWS}"))
            }
            (_, p) => p.map(str::to_owned),
        }
    };
    for col in unique_columns {
        t.indexes.push(Index {
            name: format!("uq_{name}_{col}"),
            table: name.clone(),
            columns: vec![col],
            unique: true,
            predicate: live(None, true),
        });
    }
    for idx in (meta.create_indexes)(orm_schema) {
        let unique = idx.is_unique_key();
        t.indexes.push(Index {
            name: idx
                .get_index_spec()
                .get_name()
                .map(|n| n.replace('-', "_"))
                .unwrap_or_default(),
            table: name.clone(),
            columns: idx.get_index_spec().get_column_names(),
            unique,
            predicate: live(None, unique),
        });
    }
    for idx in meta.indexes {
        t.indexes.push(Index {
            name: idx.name.to_owned(),
            table: name.clone(),
            columns: idx.columns.iter().map(|c| (*c).to_owned()).collect(),
            unique: idx.unique,
            predicate: live(idx.predicate, idx.unique),
        });
    }
    if meta.business_scoped {
        // Unique per business, unless declared global.
        for idx in t.indexes.iter_mut().filter(|i| i.unique) {
            let global = matches!(idx.columns.as_slice(), [c] if meta.global_unique.contains(&c.as_str()));
            if !global && idx.columns.first().is_none_or(|c| c != BUSINESS_ID) {
                idx.columns.insert(0, BUSINESS_ID.to_owned());
            }
        }
        let covered = t.primary_key.first().is_some_and(|c| c == BUSINESS_ID)
            || t.indexes
                .iter()
                .any(|i| i.predicate.is_none() && i.columns.first().is_some_and(|c| c == BUSINESS_ID));
        if !covered {
            t.indexes.push(Index {
                name: format!("idx_{name}_business_id"),
                table: name.clone(),
                columns: vec!["business_id".to_owned()],
                unique: false,
                predicate: None,
            });
        }
    }
    Ok(t)
}

fn table_ref_name(r: &TableRef) -> String {
    match r {
        TableRef::Table(name, _) => name.1.to_string(),
        _ => String::new(),
    }
}

/// `SetNull` → `SET NULL`.
fn action_sql(variant: &str) -> String {
    let mut out = String::new();
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The dialect's type for a SeaORM column type, in canonical form; `None` when sea-query cannot write it.
///
/// sea-query renders the type, so the generated tables match what SeaORM's own schema builder creates
/// (on SQLite its `uuid_text`, `timestamp_with_timezone_text`, `jsonb_text` names are what sqlx decodes by).
pub fn render_type(ty: &ColumnType, dialect: Dialect) -> Option<String> {
    let stmt = SqTable::create()
        .table("t")
        .col(ColumnDef::new_with_type("c", ty.clone()))
        .to_owned();
    let sql = match dialect {
        Dialect::Postgres => stmt.to_string(PostgresQueryBuilder),
        Dialect::Sqlite => stmt.to_string(SqliteQueryBuilder),
    };
    let start = sql.find("\"c\" ")? + 4;
    let end = sql.rfind(" )")?;
    let raw = sql.get(start..end)?.trim();
    if raw.is_empty() {
        return None;
    }
    Some(canonical_type(raw))
}

/// A default expression as SQL for the dialect.
fn render_default(expr: &Expr, dialect: Dialect) -> String {
    let select = Query::select().expr(expr.clone()).to_owned();
    let sql = match dialect {
        Dialect::Postgres => select.to_string(PostgresQueryBuilder),
        Dialect::Sqlite => select.to_string(SqliteQueryBuilder),
    };
    let text = sql.strip_prefix("SELECT ").unwrap_or(&sql).trim().to_owned();
    match (dialect, canonical_expr(&text).as_str()) {
        (Dialect::Postgres, "now()") => "now()".to_owned(),
        (Dialect::Sqlite, "now()") => "CURRENT_TIMESTAMP".to_owned(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(dialect: Dialect) -> Table {
        let s = schema(&entity::registry::all(), dialect).expect("the Collex entities generate");
        s.table("users").expect("users").clone()
    }

    #[test]
    fn behaviour_columns_have_their_types_and_defaults() {
        let t = users(Dialect::Postgres);
        let col = |n: &str| t.column(n).expect(n).clone();
        assert_eq!(col("id").sql_type, "uuid");
        assert_eq!(col("id").default.as_deref(), Some("gen_random_uuid()"));
        assert!(!col("id").nullable);
        assert_eq!(col("created_at").sql_type, "timestamptz");
        assert_eq!(col("created_at").default.as_deref(), Some("now()"));
        assert!(col("deleted_at").nullable);
        assert_eq!(col("version").default.as_deref(), Some("1"));
        assert!(!col("business_id").nullable);
        assert_eq!(col("phone_number").sql_type, "varchar(20)");
        assert_eq!(t.primary_key, vec!["business_id", "id"]);
        let lite = users(Dialect::Sqlite);
        assert_eq!(lite.column("id").expect("id").sql_type, "uuid_text");
        assert_eq!(lite.column("id").expect("id").default, None);
        assert_eq!(
            lite.column("created_at").expect("created_at").default.as_deref(),
            Some("CURRENT_TIMESTAMP")
        );
    }

    #[test]
    fn unique_columns_of_soft_deletable_entities_become_partial_unique_indexes() {
        let t = users(Dialect::Postgres);
        let email = t.index("uq_users_email").expect("uq_users_email");
        assert!(email.unique);
        assert_eq!(email.predicate.as_deref(), Some(LIVE_ROWS));
        let s = schema(&entity::registry::all(), Dialect::Postgres).expect("generates");
        let prefs = s.table("user_preferences").expect("user_preferences");
        let uq = prefs
            .index("uq_user_preferences_user_id")
            .expect("unique user_id");
        assert_eq!(uq.predicate, None, "user_preferences is not soft-deletable");
        let roles = s.table("roles").expect("roles");
        assert_eq!(
            roles
                .index("uq_roles_business_name")
                .expect("declared")
                .predicate
                .as_deref(),
            Some(LIVE_ROWS)
        );
    }

    #[test]
    fn business_scoped_keys_lead_with_business_id_unless_declared_global() {
        let s = schema(&entity::registry::all(), Dialect::Postgres).expect("generates");
        let t = |n: &str| s.table(n).expect(n).clone();
        // The primary key leads with business_id, so no separate business_id index.
        assert_eq!(t("user_roles").primary_key, vec!["business_id", "id"]);
        assert!(t("users").index("idx_users_business_id").is_none());
        assert_eq!(t("businesses").primary_key, vec!["id"]);
        let fk = |table: &str, col: &str| {
            t(table)
                .foreign_keys
                .into_iter()
                .find(|f| f.columns.last().is_some_and(|c| c == col))
                .expect(col)
        };
        let user = fk("user_roles", "user_id");
        assert_eq!(user.columns, vec!["business_id", "user_id"]);
        assert_eq!(user.ref_columns, vec!["business_id", "id"]);
        // businesses and permissions are not scoped: their keys stay single-column.
        assert_eq!(
            fk("role_permissions", "permission_id").columns,
            vec!["permission_id"]
        );
        assert_eq!(fk("users", "business_id").ref_columns, vec!["id"]);
        let unique = |table: &str, name: &str| t(table).index(name).expect(name).columns.clone();
        assert_eq!(
            unique("user_roles", "uq_user_roles_user_role"),
            vec!["business_id", "user_id", "role_id"]
        );
        assert_eq!(
            unique("user_preferences", "uq_user_preferences_user_id"),
            vec!["business_id", "user_id"]
        );
        assert_eq!(
            unique("users", "uq_users_phone_number"),
            vec!["phone_number"],
            "declared global"
        );
        assert_eq!(
            unique("user_sessions", "uq_user_sessions_token_hash"),
            vec!["token_hash"]
        );
        assert_eq!(
            unique("roles", "uq_roles_business_name"),
            vec!["business_id", "name"]
        );
        let s = schema(&entity::registry::all(), Dialect::Sqlite).expect("generates");
        assert!(
            s.table("permissions")
                .expect("permissions")
                .index("idx_permissions_business_id")
                .is_none()
        );
    }

    #[test]
    fn foreign_keys_come_from_belongs_to_relations() {
        let t = users(Dialect::Postgres);
        assert_eq!(t.foreign_keys.len(), 1);
        let fk = &t.foreign_keys[0];
        assert_eq!(fk.columns, vec!["business_id"]);
        assert_eq!(fk.ref_table, "businesses");
        assert_eq!(fk.on_delete, "CASCADE");
    }

    #[test]
    fn a_child_listed_before_its_parent_is_rejected() {
        let mut all = entity::registry::all();
        all.swap(0, 1);
        let err = schema(&all, Dialect::Postgres).expect_err("users before businesses");
        assert!(
            err.to_string()
                .contains("`users` has a foreign key to `businesses`"),
            "{err}"
        );
    }
}
