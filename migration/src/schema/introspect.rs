//! Reads a database's tables, columns, foreign keys and indexes from its catalog into a [`Schema`].
//!
//! PostgreSQL: `pg_catalog` for the current schema (`format_type`, `pg_get_expr` for defaults and index
//! predicates, `pg_get_indexdef` for key columns). SQLite: `sqlite_master` and the `pragma_*` table functions;
//! a partial index's predicate is taken from its stored `CREATE INDEX` text. Primary-key indexes are not
//! listed as indexes (they are [`Table::primary_key`]). Only reads.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};

use super::{Column, Dialect, ForeignKey, Index, Schema, SchemaError, Table, canonical_type};

/// Reads every table of the connection's current schema (SQLite's own `sqlite_*` tables excluded).
///
/// # Errors
/// [`SchemaError::Database`] when a catalog query fails; [`SchemaError::UnsupportedBackend`] for MySQL.
pub async fn read(db: &impl ConnectionTrait) -> Result<Schema, SchemaError> {
    match Dialect::of(db.get_database_backend())? {
        Dialect::Postgres => read_pg(db).await,
        Dialect::Sqlite => read_sqlite(db).await,
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

fn split_list(s: &str) -> Vec<String> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('\u{1f}').map(str::to_owned).collect()
    }
}

const PG_COLUMNS: &str = "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
    pg_get_expr(d.adbin, d.adrelid) \
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
    ORDER BY c.relname, a.attnum";

const PG_INDEXES: &str = "SELECT i.relname::text, t.relname::text, x.indisunique, x.indisprimary, \
    array_to_string(ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true) FROM generate_series(1, x.indnkeyatts) k ORDER BY k), chr(31)), \
    pg_get_expr(x.indpred, x.indrelid, true) \
    FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
    JOIN pg_namespace n ON n.oid = t.relnamespace \
    WHERE n.nspname = current_schema() ORDER BY t.relname, i.relname";

const PG_FOREIGN_KEYS: &str = "SELECT con.conname::text, t.relname::text, rt.relname::text, \
    array_to_string(ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o) \
      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o), chr(31)), \
    array_to_string(ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o) \
      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o), chr(31)), \
    con.confdeltype::text \
    FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid JOIN pg_class rt ON rt.oid = con.confrelid \
    JOIN pg_namespace n ON n.oid = t.relnamespace \
    WHERE con.contype = 'f' AND n.nspname = current_schema() ORDER BY t.relname, con.conname";

async fn read_pg(db: &impl ConnectionTrait) -> Result<Schema, SchemaError> {
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for r in rows(db, PG_COLUMNS, "columns").await? {
        let table: String = get(&r, 0, "columns")?;
        let ty: String = get(&r, 2, "columns")?;
        let not_null: bool = get(&r, 3, "columns")?;
        let t = tables.entry(table.clone()).or_insert_with(|| Table {
            name: table,
            ..Table::default()
        });
        t.columns.push(Column {
            name: get(&r, 1, "columns")?,
            sql_type: canonical_type(&ty),
            nullable: !not_null,
            default: get::<Option<String>>(&r, 4, "columns")?,
        });
    }
    for r in rows(db, PG_INDEXES, "indexes").await? {
        let table: String = get(&r, 1, "indexes")?;
        let columns = split_list(&get::<String>(&r, 4, "indexes")?);
        let Some(t) = tables.get_mut(&table) else { continue };
        if get::<bool>(&r, 3, "indexes")? {
            t.primary_key = columns;
            continue;
        }
        t.indexes.push(Index {
            name: get(&r, 0, "indexes")?,
            table,
            columns,
            unique: get(&r, 2, "indexes")?,
            predicate: get::<Option<String>>(&r, 5, "indexes")?,
        });
    }
    for r in rows(db, PG_FOREIGN_KEYS, "foreign keys").await? {
        let table: String = get(&r, 1, "foreign keys")?;
        let Some(t) = tables.get_mut(&table) else { continue };
        let action: String = get(&r, 5, "foreign keys")?;
        t.foreign_keys.push(ForeignKey {
            name: get(&r, 0, "foreign keys")?,
            ref_table: get(&r, 2, "foreign keys")?,
            columns: split_list(&get::<String>(&r, 3, "foreign keys")?),
            ref_columns: split_list(&get::<String>(&r, 4, "foreign keys")?),
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
    Ok(Schema {
        tables: tables.into_values().collect(),
    })
}

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

async fn read_sqlite(db: &impl ConnectionTrait) -> Result<Schema, SchemaError> {
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

/// Whether a backend is PostgreSQL (for callers that hold a connection).
pub fn is_postgres(db: &impl ConnectionTrait) -> bool {
    db.get_database_backend() == DbBackend::Postgres
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
