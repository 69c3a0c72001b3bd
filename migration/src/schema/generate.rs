//! The schema the entities declare, for one dialect.
//!
//! Starts from SeaORM's `CREATE TABLE` for each entity (columns with types, nullability and defaults, the
//! primary key, foreign keys from `belongs_to` relations, `#[sea_orm(unique)]` columns) and adds what SeaORM
//! cannot say:
//!
//! - the indexes declared with `#[index(...)]`, with their `WHERE` predicates;
//! - on SoftDeletable entities every unique constraint (a `unique` column or a declared unique index)
//!   becomes a partial unique index `WHERE deleted_at IS NULL`, so a deleted row's value can be used again;
//! - on BusinessScoped entities `business_id` is indexed (unless a full index already leads with it);
//! - on PostgreSQL a UUID `id` primary key defaults to `gen_random_uuid()` (rows inserted by raw SQL get one;
//!   the entity code sets a UUID v7 itself).
//!
//! Unique constraints are always written as named unique indexes, so the diff has one kind of object to
//! compare and the names are stable across dialects.

use entity::registry::EntityMeta;
use sea_orm::sea_query::{
    ColumnDef, ColumnType, Expr, PostgresQueryBuilder, Query, SqliteQueryBuilder, Table as SqTable, TableRef,
};

use super::{Column, Dialect, ForeignKey, Index, Schema, SchemaError, Table, canonical_expr, canonical_type};

/// The predicate that makes an index ignore soft-deleted rows.
pub const LIVE_ROWS: &str = "deleted_at IS NULL";

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
    for meta in entities {
        let table = table(meta, &orm_schema, dialect)?;
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
        let covered = t
            .indexes
            .iter()
            .any(|i| i.predicate.is_none() && i.columns.first().is_some_and(|c| c == "business_id"));
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
        assert_eq!(t.primary_key, vec!["id"]);
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
    fn business_scoped_entities_index_business_id() {
        let t = users(Dialect::Sqlite);
        let idx = t.index("idx_users_business_id").expect("business_id index");
        assert_eq!(idx.columns, vec!["business_id"]);
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
