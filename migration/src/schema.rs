//! The schema the entities declare, the schema a database has, and the difference between them.
//!
//! One model ([`Schema`]) describes both sides in one dialect's terms: [`generate`] builds it from the
//! registered entities (behaviour columns, foreign keys, declared and automatic indexes), [`introspect`] reads
//! it from PostgreSQL's or SQLite's catalog, [`diff`] compares the two (drift and the changes a migration must
//! make), [`ddl`] renders tables, columns and indexes as SQL for either dialect, and [`citus`] judges a schema
//! for distribution by `business_id` and writes the Citus script.
//!
//! Types, defaults and index predicates are compared in a canonical form ([`canonical_type`],
//! [`canonical_expr`]) so that `character varying(20)` and `varchar(20)`, or `'active'::character varying`
//! and `'active'`, count as the same. Running hand-written SQL, the history table and the lock are not this
//! module's business.

pub mod check;
pub mod citus;
pub mod ddl;
pub mod diff;
pub mod from_entities;
pub mod generate;
pub mod introspect;

use serde::Serialize;

pub use crate::dialect::Dialect;
use crate::error::DriverError;

/// A database schema: tables in creation (foreign-key) order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Schema {
    /// The tables.
    pub tables: Vec<Table>,
}

impl Schema {
    /// The table called `name`.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// One table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Table {
    /// Table name.
    pub name: String,
    /// Columns in declaration order.
    pub columns: Vec<Column>,
    /// Primary-key columns.
    pub primary_key: Vec<String>,
    /// Foreign keys.
    pub foreign_keys: Vec<ForeignKey>,
    /// Indexes other than the primary key's, unique ones included.
    pub indexes: Vec<Index>,
    /// Row-level security (PostgreSQL; always off on SQLite, which has none).
    pub row_security: RowSecurity,
}

/// A table's row-level security: whether it is enabled, forced on the table's owner too, and its policies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RowSecurity {
    /// `ENABLE ROW LEVEL SECURITY`.
    pub enabled: bool,
    /// `FORCE ROW LEVEL SECURITY`: the owner is held to the policies too (superusers and `BYPASSRLS` roles
    /// never are).
    pub forced: bool,
    /// Policies, by name.
    pub policies: Vec<Policy>,
}

impl RowSecurity {
    /// The policy called `name`.
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }
}

/// A permissive row-level security policy for every command and every role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Policy name (unique per table).
    pub name: String,
    /// `USING`: which existing rows are visible (and may be updated or deleted).
    pub using: Option<String>,
    /// `WITH CHECK`: which new rows may be written.
    pub check: Option<String>,
}

impl Policy {
    /// Whether two policies have the same expressions (compared canonically, as PostgreSQL rewrites them).
    pub fn same_definition(&self, other: &Self) -> bool {
        let canon = |e: &Option<String>| e.as_deref().map(canonical_expr);
        canon(&self.using) == canon(&other.using) && canon(&self.check) == canon(&other.check)
    }
}

impl Table {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The index called `name`.
    pub fn index(&self, name: &str) -> Option<&Index> {
        self.indexes.iter().find(|i| i.name == name)
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// The type in canonical form for the dialect ([`canonical_type`]).
    pub sql_type: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// The default expression as SQL, when there is one.
    pub default: Option<String>,
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignKey {
    /// Constraint name (SQLite does not keep it: empty when introspected there).
    pub name: String,
    /// Referencing columns.
    pub columns: Vec<String>,
    /// Referenced table.
    pub ref_table: String,
    /// Referenced columns.
    pub ref_columns: Vec<String>,
    /// `ON DELETE` action in upper case (`CASCADE`, `SET NULL`, ...); `NO ACTION` when unspecified.
    pub on_delete: String,
}

impl ForeignKey {
    /// Whether two foreign keys do the same thing (names are not compared: SQLite does not keep them).
    pub fn same_as(&self, other: &Self) -> bool {
        self.columns == other.columns
            && self.ref_table == other.ref_table
            && self.ref_columns == other.ref_columns
            && self.on_delete == other.on_delete
    }
}

/// An index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Index {
    /// Index name.
    pub name: String,
    /// The table it indexes.
    pub table: String,
    /// Key columns (or expressions), in order.
    pub columns: Vec<String>,
    /// Whether it is unique.
    pub unique: bool,
    /// The `WHERE` predicate of a partial index, as SQL.
    pub predicate: Option<String>,
}

impl Index {
    /// Whether two indexes have the same definition (columns, uniqueness and predicate; not the name).
    pub fn same_definition(&self, other: &Self) -> bool {
        let cols = |i: &Index| i.columns.iter().map(|c| canonical_expr(c)).collect::<Vec<_>>();
        self.unique == other.unique
            && cols(self) == cols(other)
            && self.predicate.as_deref().map(canonical_expr) == other.predicate.as_deref().map(canonical_expr)
    }
}

/// Errors of the schema generator, introspection, `create --from-entities` and auto-migrate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// An entity uses a column type the generator cannot write for a dialect.
    #[error(
        "entity table `{table}` column `{column}` has type {ty}, which the schema generator cannot write for {dialect:?}"
    )]
    UnsupportedType {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The type, as SeaORM names it.
        ty: String,
        /// The dialect.
        dialect: Dialect,
    },
    /// Two entities declare the same index name.
    #[error(
        "index name `{name}` is declared by both `{first}` and `{second}`: index names must be unique in the schema"
    )]
    DuplicateIndex {
        /// The index name.
        name: String,
        /// The first table.
        first: String,
        /// The second table.
        second: String,
    },
    /// An entity references a table that is not registered before it.
    #[error(
        "entity table `{table}` has a foreign key to `{references}`, which is not registered before it: \
         list entities parents first"
    )]
    ForeignKeyOrder {
        /// The referencing table.
        table: String,
        /// The referenced table.
        references: String,
    },
    /// A PostgreSQL shadow database was asked for without a PostgreSQL connection to create it from.
    #[error("a PostgreSQL shadow database needs a PostgreSQL connection")]
    ShadowNeedsPostgres,
    /// A catalog query or a generated statement failed.
    #[error("database error while {context}: {source}")]
    Database {
        /// What was being done.
        context: String,
        /// The driver's error (it never contains the URL).
        #[source]
        source: DriverError,
    },
    /// The catalog query answered something that is not the expected JSON.
    #[error("database error while decoding the catalog: {0}")]
    Catalog(#[source] CatalogError),
    /// The throwaway shadow database could not be created.
    #[error(
        "cannot create the shadow database `{name}` ({source}): `create --from-entities` replays the migrations \
         into a throwaway database, so the user needs the CREATEDB privilege"
    )]
    Shadow {
        /// The shadow database's name.
        name: String,
        /// The driver's error.
        #[source]
        source: DriverError,
    },
    /// The migrator failed (applying pending migrations, or replaying them into the shadow database).
    #[error(transparent)]
    Migrate(#[from] crate::error::MigrateError),
}

/// Why the catalog's answer could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The query returned no row.
    #[error("the catalog query returned no row")]
    NoRow,
    /// The JSON did not decode.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl SchemaError {
    pub(crate) fn db(context: impl Into<String>, err: impl Into<DriverError>) -> Self {
        Self::Database {
            context: context.into(),
            source: err.into(),
        }
    }
}

/// A column type in canonical form: lower case, PostgreSQL's long names shortened to the ones the generator
/// writes (`character varying(20)` → `varchar(20)`, `timestamp with time zone` → `timestamptz`).
pub fn canonical_type(ty: &str) -> String {
    let mut t = ty.trim().to_ascii_lowercase().replace(", ", ",");
    for (long, short) in [
        ("character varying", "varchar"),
        ("timestamp with time zone", "timestamptz"),
        ("timestamp without time zone", "timestamp"),
        ("time without time zone", "time"),
        ("time with time zone", "timetz"),
        ("double precision", "float8"),
        ("character(", "char("),
    ] {
        t = t.replace(long, short);
    }
    match t.as_str() {
        "bool" => "boolean".to_owned(),
        "int" | "int4" => "integer".to_owned(),
        "int8" => "bigint".to_owned(),
        "int2" => "smallint".to_owned(),
        "float4" => "real".to_owned(),
        "character" => "char".to_owned(),
        _ if t.starts_with("decimal") => t.replacen("decimal", "numeric", 1),
        _ => t,
    }
}

/// An SQL expression (default, index key or predicate) in canonical form, for comparison only: lower case
/// outside quotes, whitespace collapsed, parentheses and `::type` casts removed, and `now()` for
/// `CURRENT_TIMESTAMP`.
///
/// Removing parentheses means two predicates that differ only in grouping (`a AND (b OR c)` against
/// `(a AND b) OR c`) compare equal; PostgreSQL adds parentheses of its own to every stored predicate, and
/// telling its grouping from the declared one would need a SQL parser.
pub fn canonical_expr(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.trim().chars().peekable();
    let mut pending_space = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                if pending_space && !out.is_empty() {
                    out.push(' ');
                }
                pending_space = false;
                out.push('\'');
                while let Some(q) = chars.next() {
                    out.push(q);
                    if q == '\'' {
                        if chars.peek() == Some(&'\'') {
                            out.push('\'');
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
            }
            '"' => {
                // Quoted identifiers compare by their text.
                for q in chars.by_ref() {
                    if q == '"' {
                        break;
                    }
                    if pending_space && !out.is_empty() {
                        out.push(' ');
                        pending_space = false;
                    }
                    out.push(q);
                }
            }
            ':' if chars.peek() == Some(&':') => {
                chars.next();
                // Skip the type name (letters, digits, spaces inside `character varying`, `[]`, `(n)`).
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' || n == '[' || n == ']' {
                        chars.next();
                    } else if n == ' ' {
                        let rest: String = chars.clone().skip(1).take(9).collect();
                        if rest.starts_with("varying")
                            || rest.starts_with("with")
                            || rest.starts_with("without")
                            || rest.starts_with("precision")
                            || rest.starts_with("time zone")
                            || rest.starts_with("zone")
                        {
                            chars.next();
                        } else {
                            break;
                        }
                    } else {
                        break;
                    }
                }
            }
            '(' | ')' => {
                pending_space = true;
                // `now()`: keep empty argument lists so functions stay recognisable.
                if c == '(' && chars.peek() == Some(&')') {
                    chars.next();
                    out.push_str("()");
                    pending_space = false;
                }
            }
            c if c.is_whitespace() => pending_space = true,
            c => {
                if pending_space && !out.is_empty() && !out.ends_with('(') {
                    out.push(' ');
                }
                pending_space = false;
                out.push(c.to_ascii_lowercase());
            }
        }
    }
    let out = out.trim().to_owned();
    match out.as_str() {
        "current_timestamp" | "current_timestamp()" | "now()" | "localtimestamp" => "now()".to_owned(),
        "true" | "'t'" => "true".to_owned(),
        "false" | "'f'" => "false".to_owned(),
        _ => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_spellings_of_types_are_canonical() {
        assert_eq!(canonical_type("character varying(20)"), "varchar(20)");
        assert_eq!(canonical_type("timestamp with time zone"), "timestamptz");
        assert_eq!(canonical_type("bool"), "boolean");
        assert_eq!(canonical_type("numeric(10, 2)"), "numeric(10,2)");
        assert_eq!(canonical_type("uuid_text"), "uuid_text");
    }

    #[test]
    fn catalog_spellings_of_expressions_are_canonical() {
        assert_eq!(canonical_expr("'active'::character varying"), "'active'");
        assert_eq!(canonical_expr("'{}'::jsonb"), "'{}'");
        assert_eq!(canonical_expr("CURRENT_TIMESTAMP"), "now()");
        assert_eq!(canonical_expr("now()"), "now()");
        assert_eq!(canonical_expr("TRUE"), "true");
        assert_eq!(
            canonical_expr("((deleted_at IS NULL) AND (email IS NOT NULL))"),
            canonical_expr("deleted_at IS NULL AND email IS NOT NULL")
        );
        assert_ne!(
            canonical_expr("deleted_at IS NULL"),
            canonical_expr("deleted_at IS NOT NULL")
        );
        assert_eq!(canonical_expr("'It''s'"), "'It''s'");
        assert_eq!(canonical_expr("\"Email\""), "Email");
    }
}
