//! Reads a database's tables, columns, foreign keys, indexes and row-level security from its catalog into a [`Schema`].
//!
//! PostgreSQL: `pg_catalog` for the current schema (`format_type`, `pg_get_expr` for defaults and index
//! predicates, `pg_get_indexdef` for key columns), in ONE query that returns the whole answer as JSON: one
//! round trip, one statement. SQLite: `sqlite_master` and the `pragma_*` table functions; a partial index's
//! predicate is taken from its stored `CREATE INDEX` text. Primary-key indexes are not listed as indexes (they
//! are [`Table::primary_key`]). Only reads.
//!
//! [`read_scoped`] reads the details (columns, indexes, foreign keys) of some tables only and lists the others
//! by name: drift compares only the entities' tables, and deparsing every default and index of a database
//! with hundreds of other tables (`pg_get_expr`, `pg_get_indexdef`) is what made `status` slow.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};
use serde::Deserialize;

use super::{
    CatalogError, Column, Dialect, ForeignKey, Index, Policy, Schema, SchemaError, Table, canonical_type,
};

/// Which tables [`read_scoped`] describes in full.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every table.
    All,
    /// Only these tables; every other table is listed with its name alone (no columns, keys or indexes).
    Tables(&'a BTreeSet<String>),
}

impl Scope<'_> {
    fn includes(&self, table: &str) -> bool {
        match self {
            Self::All => true,
            Self::Tables(names) => names.contains(table),
        }
    }
}

/// Reads every table of the connection's current schema (SQLite's own `sqlite_*` tables excluded).
///
/// # Errors
/// [`SchemaError::Database`] when a catalog query fails; [`SchemaError::Migrate`] (unsupported backend) for MySQL.
pub async fn read(db: &impl ConnectionTrait) -> Result<Schema, SchemaError> {
    read_scoped(db, Scope::All).await
}

/// Reads every table of the connection's current schema, with columns, primary key, indexes and foreign keys
/// only for the tables in `scope` (the others have just their name).
///
/// # Errors
/// [`SchemaError::Database`] when a catalog query fails; [`SchemaError::Migrate`] (unsupported backend) for MySQL.
pub async fn read_scoped(db: &impl ConnectionTrait, scope: Scope<'_>) -> Result<Schema, SchemaError> {
    match Dialect::of(db.get_database_backend())? {
        Dialect::Postgres => read_pg(db, scope).await,
        Dialect::Sqlite => read_sqlite(db, scope).await,
    }
}

async fn rows(db: &impl ConnectionTrait, sql: &str, context: &str) -> Result<Vec<QueryResult>, SchemaError> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await
        .map_err(|e| SchemaError::db(format!("reading the catalog ({context})"), e))
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, i: usize, context: &str) -> Result<T, SchemaError> {
    row.try_get_by_index(i)
        .map_err(|e| SchemaError::db(format!("reading the catalog ({context})"), e))
}

/// The whole PostgreSQL catalog answer. `{filter}` is replaced by the condition on `t.relname` that picks the
/// tables described in full. Orders use the `name` columns (collation `C`), as the rows are consumed in order.
const PG_CATALOG: &str = "WITH t AS (\
      SELECT c.oid, c.relname FROM pg_class c \
      WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) \
        AND c.relkind IN ('r', 'p')), \
    d AS (SELECT t.oid, t.relname FROM t WHERE {filter}) \
    SELECT json_build_object(\
    'tables', (SELECT coalesce(json_agg(t.relname::text), '[]') FROM t), \
    'columns', (SELECT coalesce(json_agg(json_build_array(d.relname::text, a.attname::text, \
        format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid)) \
        ORDER BY d.relname, a.attnum), '[]') \
      FROM d JOIN pg_attribute a ON a.attrelid = d.oid \
      LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
      WHERE a.attnum > 0 AND NOT a.attisdropped), \
    'indexes', (SELECT coalesce(json_agg(json_build_array(i.relname::text, d.relname::text, x.indisunique, \
        x.indisprimary, \
        ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true) FROM generate_series(1, x.indnkeyatts) k ORDER BY k), \
        pg_get_expr(x.indpred, x.indrelid, true)) ORDER BY d.relname, i.relname), '[]') \
      FROM d JOIN pg_index x ON x.indrelid = d.oid JOIN pg_class i ON i.oid = x.indexrelid), \
    'foreign_keys', (SELECT coalesce(json_agg(json_build_array(con.conname::text, d.relname::text, \
        rt.relname::text, \
        ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o) \
          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o), \
        ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o) \
          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o), \
        con.confdeltype::text) ORDER BY d.relname, con.conname), '[]') \
      FROM d JOIN pg_constraint con ON con.conrelid = d.oid AND con.contype = 'f' \
      JOIN pg_class rt ON rt.oid = con.confrelid), \
    'row_security', (SELECT coalesce(json_agg(json_build_array(d.relname::text, c.relrowsecurity, \
        c.relforcerowsecurity) ORDER BY d.relname), '[]') \
      FROM d JOIN pg_class c ON c.oid = d.oid WHERE c.relrowsecurity OR c.relforcerowsecurity), \
    'policies', (SELECT coalesce(json_agg(json_build_array(d.relname::text, p.polname::text, \
        pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)) \
        ORDER BY d.relname, p.polname), '[]') \
      FROM d JOIN pg_policy p ON p.polrelid = d.oid))::text";

/// A column: table, column, type, not null, default.
type PgColumn = (String, String, String, bool, Option<String>);
/// An index: index, table, unique, primary, key columns, predicate.
type PgIndex = (String, String, bool, bool, Vec<String>, Option<String>);
/// A foreign key: constraint, table, referenced table, columns, referenced columns, `ON DELETE` code.
type PgForeignKey = (String, String, String, Vec<String>, Vec<String>, String);

/// [`PG_CATALOG`]'s answer.
#[derive(Deserialize)]
struct PgCatalog {
    tables: Vec<String>,
    columns: Vec<PgColumn>,
    indexes: Vec<PgIndex>,
    foreign_keys: Vec<PgForeignKey>,
    row_security: Vec<(String, bool, bool)>,
    policies: Vec<(String, String, Option<String>, Option<String>)>,
}

fn pg_catalog_sql(scope: Scope<'_>) -> String {
    let filter = match scope {
        Scope::All => "true".to_owned(),
        Scope::Tables(names) if names.is_empty() => "false".to_owned(),
        Scope::Tables(names) => format!(
            "t.relname::text IN ({})",
            names.iter().map(|n| lit(n)).collect::<Vec<_>>().join(", ")
        ),
    };
    PG_CATALOG.replace("{filter}", &filter)
}

async fn read_pg(db: &impl ConnectionTrait, scope: Scope<'_>) -> Result<Schema, SchemaError> {
    let sql = pg_catalog_sql(scope);
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .map_err(|e| SchemaError::db("reading the catalog", e))?
        .ok_or(SchemaError::Catalog(CatalogError::NoRow))?;
    let text: String = get(&row, 0, "catalog")?;
    let catalog: PgCatalog = serde_json::from_str(&text).map_err(|e| SchemaError::Catalog(e.into()))?;

    let mut tables: BTreeMap<String, Table> = catalog
        .tables
        .into_iter()
        .map(|name| {
            let t = Table {
                name: name.clone(),
                ..Table::default()
            };
            (name, t)
        })
        .collect();
    for (table, name, ty, not_null, default) in catalog.columns {
        let Some(t) = tables.get_mut(&table) else { continue };
        t.columns.push(Column {
            name,
            sql_type: canonical_type(&ty),
            nullable: !not_null,
            default,
        });
    }
    for (name, table, unique, primary, columns, predicate) in catalog.indexes {
        let Some(t) = tables.get_mut(&table) else { continue };
        if primary {
            t.primary_key = columns;
            continue;
        }
        t.indexes.push(Index {
            name,
            table,
            columns,
            unique,
            predicate,
        });
    }
    for (name, table, ref_table, columns, ref_columns, action) in catalog.foreign_keys {
        let Some(t) = tables.get_mut(&table) else { continue };
        t.foreign_keys.push(ForeignKey {
            name,
            ref_table,
            columns,
            ref_columns,
            on_delete: match action.as_str() {
                "c" => "CASCADE",
                "r" => "RESTRICT",
                "n" => "SET NULL",
                "d" => "SET DEFAULT",
                _ => "NO ACTION",
            }
            .to_owned(),
        });
    }
    for (table, enabled, forced) in catalog.row_security {
        let Some(t) = tables.get_mut(&table) else { continue };
        t.row_security.enabled = enabled;
        t.row_security.forced = forced;
    }
    for (table, name, using, check) in catalog.policies {
        let Some(t) = tables.get_mut(&table) else { continue };
        t.row_security.policies.push(Policy { name, using, check });
    }
    Ok(Schema {
        tables: tables.into_values().collect(),
    })
}

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

async fn read_sqlite(db: &impl ConnectionTrait, scope: Scope<'_>) -> Result<Schema, SchemaError> {
    let mut out = Schema::default();
    let names = rows(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        "tables",
    )
    .await?;
    for n in names {
        let name: String = get(&n, 0, "tables")?;
        let mut t = Table {
            name: name.clone(),
            ..Table::default()
        };
        if !scope.includes(&name) {
            out.tables.push(t);
            continue;
        }
        let mut pk: Vec<(i64, String)> = Vec::new();
        let sql = format!(
            "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info({}) ORDER BY cid",
            lit(&name)
        );
        for r in rows(db, &sql, "columns").await? {
            let col: String = get(&r, 0, "columns")?;
            let ty: String = get(&r, 1, "columns")?;
            let not_null: i64 = get(&r, 2, "columns")?;
            let pk_pos: i64 = get(&r, 4, "columns")?;
            if pk_pos > 0 {
                pk.push((pk_pos, col.clone()));
            }
            t.columns.push(Column {
                name: col,
                sql_type: canonical_type(&ty),
                nullable: not_null == 0 && pk_pos == 0,
                default: get::<Option<String>>(&r, 3, "columns")?,
            });
        }
        pk.sort();
        t.primary_key = pk.into_iter().map(|(_, c)| c).collect();

        let sql = format!(
            "SELECT l.name, l.\"unique\", l.origin, m.sql FROM pragma_index_list({}) l \
             LEFT JOIN sqlite_master m ON m.type = 'index' AND m.name = l.name ORDER BY l.name",
            lit(&name)
        );
        for r in rows(db, &sql, "indexes").await? {
            let origin: String = get(&r, 2, "indexes")?;
            if origin == "pk" {
                continue;
            }
            let index_name: String = get(&r, 0, "indexes")?;
            let unique: i64 = get(&r, 1, "indexes")?;
            let create: Option<String> = get(&r, 3, "indexes")?;
            let cols_sql = format!(
                "SELECT name FROM pragma_index_xinfo({}) WHERE key = 1 ORDER BY seqno",
                lit(&index_name)
            );
            let mut columns = Vec::new();
            for c in rows(db, &cols_sql, "index columns").await? {
                columns.push(
                    get::<Option<String>>(&c, 0, "index columns")?
                        .unwrap_or_else(|| "<expression>".to_owned()),
                );
            }
            t.indexes.push(Index {
                name: index_name,
                table: name.clone(),
                columns,
                unique: unique != 0,
                predicate: create.as_deref().and_then(where_clause),
            });
        }

        let sql = format!(
            "SELECT id, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list({}) ORDER BY id, seq",
            lit(&name)
        );
        let mut fks: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        for r in rows(db, &sql, "foreign keys").await? {
            let id: i64 = get(&r, 0, "foreign keys")?;
            let fk = fks.entry(id).or_insert_with(|| ForeignKey {
                name: String::new(),
                columns: Vec::new(),
                ref_table: String::new(),
                ref_columns: Vec::new(),
                on_delete: String::new(),
            });
            fk.ref_table = get(&r, 1, "foreign keys")?;
            fk.columns.push(get(&r, 2, "foreign keys")?);
            fk.ref_columns
                .push(get::<Option<String>>(&r, 3, "foreign keys")?.unwrap_or_else(|| "id".to_owned()));
            fk.on_delete = get::<String>(&r, 4, "foreign keys")?.to_ascii_uppercase();
        }
        t.foreign_keys = fks.into_values().collect();
        out.tables.push(t);
    }
    Ok(out)
}

/// The predicate of a stored `CREATE INDEX ... WHERE ...` text: what follows the last top-level `WHERE`.
fn where_clause(create: &str) -> Option<String> {
    let upper = create.to_ascii_uppercase();
    let mut depth = 0i32;
    let mut quote = false;
    let bytes = upper.as_bytes();
    let mut found = None;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\'' => quote = !quote,
            b'(' if !quote => depth += 1,
            b')' if !quote => depth -= 1,
            b'W' if !quote && depth == 0 && upper[i..].starts_with("WHERE") => {
                let before_ok = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
                let after_ok = bytes
                    .get(i + 5)
                    .is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b'_');
                if before_ok && after_ok {
                    found = Some(i + 5);
                }
            }
            _ => {}
        }
    }
    found.map(|at| create[at..].trim().trim_end_matches(';').trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_predicate_is_what_follows_the_top_level_where() {
        assert_eq!(
            where_clause("CREATE INDEX i ON t (a) WHERE deleted_at IS NULL").as_deref(),
            Some("deleted_at IS NULL")
        );
        assert_eq!(where_clause("CREATE INDEX i ON t (a)"), None);
        assert_eq!(
            where_clause("CREATE INDEX i ON t (a) where x = 'WHERE' AND y IS NULL").as_deref(),
            Some("x = 'WHERE' AND y IS NULL")
        );
    }
}
