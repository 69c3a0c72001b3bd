//! Unique and foreign-key violations as [`EntityError`] variants that name the constraint and its columns.
//!
//! PostgreSQL names the constraint in the error; its columns come from the catalog (`pg_index`,
//! `pg_constraint`): no values (they may be personal data) and no dependence on the server's language. When
//! the catalog cannot be read (the statement ran in a transaction the error aborted), they come from the
//! error's `DETAIL` line. SQLite's message names the columns of a unique violation (`UNIQUE constraint
//! failed: users.phone_number`) and the index is found with `pragma_index_list`; a SQLite foreign-key failure
//! names nothing, so the table's foreign keys (`pragma_foreign_key_list`) are probed with the values the write
//! carried, and the constraint's name is read from the table's DDL.
//!
//! Only the classification lives here; which statements run is the repository's business.

use sea_orm::sea_query::Value;
use sea_orm::sqlx::error::{DatabaseError, ErrorKind};
use sea_orm::sqlx::postgres::PgDatabaseError;
use sea_orm::{DbBackend, DbErr, RuntimeErr};

use crate::behaviour::Behaviours;
use crate::context::ReadFrom;
use crate::error::EntityError;
use crate::exec::{self, Arg, Executor, Op, OpKind, Prepared, Sql, Want};

/// What the database said, copied out of the error before more statements run.
struct Said {
    kind: ErrorKind,
    message: String,
    constraint: Option<String>,
    table: Option<String>,
    schema: Option<String>,
    detail: Option<String>,
}

fn database_error(err: &DbErr) -> Option<&dyn DatabaseError> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            sea_orm::sqlx::Error::Database(d) => Some(d.as_ref()),
            _ => None,
        },
        _ => None,
    }
}

fn said(err: &DbErr) -> Option<Said> {
    let d = database_error(err)?;
    let pg = d.try_downcast_ref::<PgDatabaseError>();
    Some(Said {
        kind: d.kind(),
        message: d.message().to_owned(),
        constraint: d.constraint().map(str::to_owned),
        table: d.table().map(str::to_owned),
        schema: pg.and_then(|p| p.schema()).map(str::to_owned),
        detail: pg.and_then(|p| p.detail()).map(str::to_owned),
    })
}

/// `err` as a typed violation of `E`'s write when it is one, else [`EntityError::Db`]. `written` holds the
/// `(column, value)` pairs the write carried (used to find a SQLite foreign key).
pub(crate) async fn classify<E: Behaviours, C: Executor>(
    db: &C,
    err: DbErr,
    written: &[(&'static str, Value)],
) -> EntityError {
    let Some(said) = said(&err) else {
        return EntityError::Db(err);
    };
    let backend = db.get_database_backend();
    match said.kind {
        ErrorKind::UniqueViolation => {
            let (constraint, columns) = match backend {
                DbBackend::Postgres => {
                    let constraint = said.constraint.clone().unwrap_or_default();
                    let columns =
                        match pg_index_columns::<E, C>(db, &constraint, said.schema.as_deref()).await {
                            Some(c) if !c.is_empty() => c,
                            _ => detail_columns(said.detail.as_deref()),
                        };
                    (constraint, columns)
                }
                _ => {
                    let (table, columns) = sqlite_unique_columns(&said.message);
                    let constraint = sqlite_unique_index::<E, C>(db, &table, &columns)
                        .await
                        .unwrap_or_else(|| format!("unique ({})", columns.join(", ")));
                    (constraint, columns)
                }
            };
            EntityError::UniqueViolation {
                entity: E::TABLE,
                constraint,
                columns,
                source: Box::new(err),
            }
        }
        ErrorKind::ForeignKeyViolation => {
            let fk = match backend {
                DbBackend::Postgres => {
                    let constraint = said.constraint.clone().unwrap_or_default();
                    match pg_foreign_key::<E, C>(
                        db,
                        &constraint,
                        said.schema.as_deref(),
                        said.table.as_deref(),
                    )
                    .await
                    {
                        Some(fk) => fk,
                        None => Fk {
                            table: said.table.clone().unwrap_or_default(),
                            columns: detail_columns(said.detail.as_deref()),
                            references: detail_table(said.detail.as_deref()).unwrap_or_default(),
                            constraint,
                        },
                    }
                }
                _ => sqlite_foreign_key::<E, C>(db, written)
                    .await
                    .unwrap_or_else(|| Fk {
                        constraint: "(SQLite does not name it)".to_owned(),
                        table: E::TABLE.to_owned(),
                        columns: Vec::new(),
                        references: "(unknown)".to_owned(),
                    }),
            };
            EntityError::ForeignKeyViolation {
                entity: E::TABLE,
                constraint: fk.constraint,
                table: fk.table,
                columns: fk.columns,
                references: fk.references,
                source: Box::new(err),
            }
        }
        _ => EntityError::Db(err),
    }
}

/// One foreign key of `pragma_foreign_key_list`: its id, the table it refers to, `(from, to)` pairs.
type ForeignKeyColumns = (i64, String, Vec<(String, String)>);

struct Fk {
    constraint: String,
    table: String,
    columns: Vec<String>,
    references: String,
}

/// Runs a catalog read; `None` when it fails (then the caller falls back to what the error said).
async fn rows<E: Behaviours, C: Executor>(
    db: &C,
    sql: &str,
    args: Vec<String>,
) -> Option<Vec<sea_orm::QueryResult>> {
    let stmt = Prepared {
        backend: db.get_database_backend(),
        sql: Sql::Owned(sql.to_owned()),
        args: args.into_iter().map(|a| Arg::Value(a.into())).collect(),
    };
    let op = Op {
        entity: E::TABLE,
        kind: OpKind::Select,
        // A catalog read about a write that just failed: the primary's catalog.
        read: ReadFrom::Primary,
    };
    exec::run(db, op, stmt, Want::All)
        .await
        .ok()
        .map(exec::Output::all)
}

fn texts(rows: &[sea_orm::QueryResult], at: usize) -> Vec<String> {
    rows.iter()
        .filter_map(|r| r.try_get_by_index::<String>(at).ok())
        .collect()
}

async fn pg_index_columns<E: Behaviours, C: Executor>(
    db: &C,
    index: &str,
    schema: Option<&str>,
) -> Option<Vec<String>> {
    let sql = "SELECT a.attname::text FROM pg_index i \
               JOIN pg_class c ON c.oid = i.indexrelid \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
               CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
               WHERE c.relname = $1 AND n.nspname = coalesce(nullif($2, ''), current_schema()) ORDER BY k.ord";
    let args = vec![index.to_owned(), schema.unwrap_or_default().to_owned()];
    Some(texts(&rows::<E, C>(db, sql, args).await?, 0))
}

async fn pg_foreign_key<E: Behaviours, C: Executor>(
    db: &C,
    constraint: &str,
    schema: Option<&str>,
    table: Option<&str>,
) -> Option<Fk> {
    let sql = "SELECT a.attname::text, t.relname::text, ft.relname::text FROM pg_constraint con \
               JOIN pg_namespace n ON n.oid = con.connamespace \
               JOIN pg_class t ON t.oid = con.conrelid \
               JOIN pg_class ft ON ft.oid = con.confrelid \
               CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) \
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum \
               WHERE con.contype = 'f' AND con.conname = $1 AND n.nspname = coalesce(nullif($2, ''), current_schema()) \
               AND (t.relname = $3 OR ft.relname = $3) ORDER BY k.ord";
    let args = vec![
        constraint.to_owned(),
        schema.unwrap_or_default().to_owned(),
        table.unwrap_or(E::TABLE).to_owned(),
    ];
    let rows = rows::<E, C>(db, sql, args).await?;
    let first = rows.first()?;
    Some(Fk {
        constraint: constraint.to_owned(),
        table: first.try_get_by_index::<String>(1).ok()?,
        references: first.try_get_by_index::<String>(2).ok()?,
        columns: texts(&rows, 0),
    })
}

/// `a, b` of PostgreSQL's `Key (a, b)=(...)` detail (English servers).
fn detail_columns(detail: Option<&str>) -> Vec<String> {
    detail
        .and_then(|d| d.strip_prefix("Key ("))
        .and_then(|d| d.split_once(")=("))
        .map(|(cols, _)| cols.split(", ").map(str::to_owned).collect())
        .unwrap_or_default()
}

/// `t` of PostgreSQL's `... is not present in table "t".` detail.
fn detail_table(detail: Option<&str>) -> Option<String> {
    let (_, rest) = detail?.rsplit_once("table \"")?;
    rest.split_once('"').map(|(t, _)| t.to_owned())
}

/// `(table, [columns])` of SQLite's `UNIQUE constraint failed: t.a, t.b`.
fn sqlite_unique_columns(message: &str) -> (String, Vec<String>) {
    let list = message.rsplit_once(": ").map_or("", |(_, l)| l);
    let mut table = String::new();
    let columns = list
        .split(", ")
        .filter_map(|qualified| {
            let (t, c) = qualified.split_once('.')?;
            table = t.to_owned();
            Some(c.to_owned())
        })
        .collect();
    (table, columns)
}

async fn sqlite_unique_index<E: Behaviours, C: Executor>(
    db: &C,
    table: &str,
    columns: &[String],
) -> Option<String> {
    let indexes = rows::<E, C>(
        db,
        "SELECT name FROM pragma_index_list(?) WHERE \"unique\" = 1",
        vec![table.to_owned()],
    )
    .await?;
    for name in texts(&indexes, 0) {
        let cols = rows::<E, C>(
            db,
            "SELECT name FROM pragma_index_info(?) ORDER BY seqno",
            vec![name.clone()],
        )
        .await?;
        if texts(&cols, 0) == columns {
            return Some(name);
        }
    }
    None
}

/// The foreign key of `E` that the written values break: the first whose referenced row is missing.
async fn sqlite_foreign_key<E: Behaviours, C: Executor>(
    db: &C,
    written: &[(&'static str, Value)],
) -> Option<Fk> {
    let keys = rows::<E, C>(
        db,
        "SELECT \"id\", \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?) ORDER BY \"id\", \"seq\"",
        vec![E::TABLE.to_owned()],
    )
    .await?;
    // (key id, referenced table, [(column, referenced column)])
    let mut groups: Vec<ForeignKeyColumns> = Vec::new();
    for r in &keys {
        let (Ok(id), Ok(table), Ok(from), Ok(to)) = (
            r.try_get_by_index::<i64>(0),
            r.try_get_by_index::<String>(1),
            r.try_get_by_index::<String>(2),
            r.try_get_by_index::<String>(3),
        ) else {
            continue;
        };
        match groups.last_mut() {
            Some((last, _, cols)) if *last == id => cols.push((from, to)),
            _ => groups.push((id, table, vec![(from, to)])),
        }
    }
    let ddl = rows::<E, C>(
        db,
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
        vec![E::TABLE.to_owned()],
    )
    .await
    .and_then(|r| texts(&r, 0).pop())
    .unwrap_or_default();
    for (_, table, cols) in groups {
        let mut values = Vec::new();
        for (from, _) in &cols {
            match written.iter().find(|(c, _)| c == from) {
                Some((_, v)) if !is_null(v) => values.push(Arg::Value(v.clone())),
                _ => break,
            }
        }
        if values.len() != cols.len() {
            continue;
        }
        let cond = cols
            .iter()
            .map(|(_, to)| format!("\"{}\" = ?", to.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" AND ");
        let probe = Prepared {
            backend: db.get_database_backend(),
            sql: Sql::Owned(format!(
                "SELECT 1 FROM \"{}\" WHERE {cond} LIMIT 1",
                table.replace('"', "\"\"")
            )),
            args: values,
        };
        let op = Op {
            entity: E::TABLE,
            kind: OpKind::Select,
            // A catalog read about a write that just failed: the primary's catalog.
            read: ReadFrom::Primary,
        };
        if let Ok(out) = exec::run(db, op, probe, Want::One).await
            && out.one().is_none()
        {
            let columns: Vec<String> = cols.iter().map(|(f, _)| f.clone()).collect();
            return Some(Fk {
                constraint: constraint_name(&ddl, &columns).unwrap_or_else(|| "(unnamed)".to_owned()),
                table: E::TABLE.to_owned(),
                columns,
                references: table,
            });
        }
    }
    None
}

fn is_null(v: &Value) -> bool {
    *v == v.as_null()
}

/// The name in `CONSTRAINT name FOREIGN KEY (columns)` of a table's DDL.
fn constraint_name(ddl: &str, columns: &[String]) -> Option<String> {
    let unquote = |s: &str| {
        s.trim()
            .trim_matches(|c| matches!(c, '"' | '`' | '[' | ']'))
            .to_owned()
    };
    let lower = ddl.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find("foreign key") {
        let at = from + at;
        from = at + "foreign key".len();
        let listed: Vec<String> = ddl[from..]
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(cols, _)| cols.split(',').map(unquote).collect())
            .unwrap_or_default();
        if listed != columns {
            continue;
        }
        let before = ddl[..at].trim_end();
        let word_start = before.rfind(|c: char| c.is_whitespace() || c == ',' || c == '(')?;
        let name = &before[word_start + 1..];
        if before[..word_start]
            .trim_end()
            .to_ascii_lowercase()
            .ends_with("constraint")
        {
            return Some(unquote(name));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_detail_gives_columns_and_table() {
        let d = Some("Key (business_id, name)=(x, y) already exists.");
        assert_eq!(detail_columns(d), ["business_id", "name"]);
        let d = Some("Key (user_id)=(0196) is not present in table \"users\".");
        assert_eq!(detail_table(d).as_deref(), Some("users"));
    }

    #[test]
    fn sqlite_message_gives_table_and_columns() {
        let (t, c) = sqlite_unique_columns("UNIQUE constraint failed: roles.business_id, roles.name");
        assert_eq!(
            (t.as_str(), c),
            ("roles", vec!["business_id".to_owned(), "name".to_owned()])
        );
    }

    #[test]
    fn constraint_names_are_read_from_the_ddl() {
        let ddl = "CREATE TABLE s (id text, user_id text, CONSTRAINT fk_s_business FOREIGN KEY (business_id) \
                   REFERENCES b (id), CONSTRAINT \"fk-s-user_id\" FOREIGN KEY (\"user_id\") REFERENCES users (id))";
        assert_eq!(
            constraint_name(ddl, &["user_id".to_owned()]).as_deref(),
            Some("fk-s-user_id")
        );
        assert_eq!(
            constraint_name(ddl, &["business_id".to_owned()]).as_deref(),
            Some("fk_s_business")
        );
        assert_eq!(constraint_name(ddl, &["other".to_owned()]), None);
    }
}
