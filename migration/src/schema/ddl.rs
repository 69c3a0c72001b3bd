//! SQL text for the schema model: `CREATE TABLE`, `ADD COLUMN`, `CREATE INDEX` and their undoing, in the
//! PostgreSQL or SQLite dialect.
//!
//! Statements are idempotent where the dialect allows (`IF NOT EXISTS` / `IF EXISTS`; SQLite has no
//! `ADD COLUMN IF NOT EXISTS`), so a database that auto-migrate already brought forward applies a generated
//! migration cleanly. Identifiers are quoted only when they need it, to keep generated files readable.

use super::{Column, Dialect, ForeignKey, Index, RowSecurity, Table};

/// Words that must be quoted as identifiers in either dialect (the common reserved ones).
const RESERVED: &[&str] = &[
    "all",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "between",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_date",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "index",
    "initially",
    "intersect",
    "into",
    "is",
    "join",
    "key",
    "leading",
    "limit",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "when",
    "where",
    "window",
    "with",
];

/// An identifier, quoted when it is not a plain lower-case name or is a reserved word.
pub fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !RESERVED.contains(&name) {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn list(cols: &[String]) -> String {
    cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ")
}

/// A column definition: `name type [NOT NULL] [DEFAULT expr]`.
pub fn column_def(c: &Column) -> String {
    let mut s = format!("{} {}", ident(&c.name), c.sql_type);
    if !c.nullable {
        s.push_str(" NOT NULL");
    }
    if let Some(d) = &c.default {
        s.push_str(" DEFAULT ");
        s.push_str(d);
    }
    s
}

fn foreign_key_clause(fk: &ForeignKey) -> String {
    let mut s = format!(
        "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
        ident(&fk.name),
        list(&fk.columns),
        ident(&fk.ref_table),
        list(&fk.ref_columns)
    );
    if fk.on_delete != "NO ACTION" {
        s.push_str(" ON DELETE ");
        s.push_str(&fk.on_delete);
    }
    s
}

/// `CREATE TABLE IF NOT EXISTS` with columns, primary key and foreign keys (indexes are separate statements).
pub fn create_table(t: &Table) -> String {
    let single_pk = (t.primary_key.len() == 1).then(|| t.primary_key[0].as_str());
    let mut lines: Vec<String> = t
        .columns
        .iter()
        .map(|c| {
            let mut d = column_def(c);
            if single_pk == Some(c.name.as_str()) {
                // `NOT NULL` is implied but kept: SQLite allows NULL in a non-INTEGER primary key otherwise.
                d.push_str(" PRIMARY KEY");
            }
            format!("    {d}")
        })
        .collect();
    if t.primary_key.len() > 1 {
        lines.push(format!("    PRIMARY KEY ({})", list(&t.primary_key)));
    }
    for fk in &t.foreign_keys {
        lines.push(format!("    {}", foreign_key_clause(fk)));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n{}\n);",
        ident(&t.name),
        lines.join(",\n")
    )
}

/// `DROP TABLE IF EXISTS`.
pub fn drop_table(name: &str) -> String {
    format!("DROP TABLE IF EXISTS {};", ident(name))
}

/// `ALTER TABLE ... ADD COLUMN` (with `IF NOT EXISTS` on PostgreSQL), with the column's foreign key if it
/// has one (inline `REFERENCES`, which both dialects accept when adding a column).
pub fn add_column(table: &str, c: &Column, fk: Option<&ForeignKey>, dialect: Dialect) -> String {
    let guard = if dialect == Dialect::Postgres {
        "IF NOT EXISTS "
    } else {
        ""
    };
    let mut s = format!("ALTER TABLE {} ADD COLUMN {guard}{}", ident(table), column_def(c));
    if let Some(fk) = fk {
        s.push_str(&format!(
            " REFERENCES {} ({})",
            ident(&fk.ref_table),
            list(&fk.ref_columns)
        ));
        if fk.on_delete != "NO ACTION" {
            s.push_str(" ON DELETE ");
            s.push_str(&fk.on_delete);
        }
    }
    s.push(';');
    s
}

/// `ALTER TABLE ... DROP COLUMN` (with `IF EXISTS` on PostgreSQL).
pub fn drop_column(table: &str, column: &str, dialect: Dialect) -> String {
    let guard = if dialect == Dialect::Postgres {
        "IF EXISTS "
    } else {
        ""
    };
    format!(
        "ALTER TABLE {} DROP COLUMN {guard}{};",
        ident(table),
        ident(column)
    )
}

/// `CREATE [UNIQUE] INDEX IF NOT EXISTS name ON table (cols) [WHERE predicate]`.
pub fn create_index(i: &Index) -> String {
    let mut s = format!(
        "CREATE {}INDEX IF NOT EXISTS {} ON {} ({})",
        if i.unique { "UNIQUE " } else { "" },
        ident(&i.name),
        ident(&i.table),
        i.columns.iter().map(|c| key(c)).collect::<Vec<_>>().join(", ")
    );
    if let Some(p) = &i.predicate {
        s.push_str(" WHERE ");
        s.push_str(p);
    }
    s.push(';');
    s
}

/// An index key: a column name, or an expression as the catalog gave it.
fn key(k: &str) -> String {
    if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        ident(k)
    } else {
        k.to_owned()
    }
}

/// `DROP INDEX IF EXISTS`.
pub fn drop_index(name: &str) -> String {
    format!("DROP INDEX IF EXISTS {};", ident(name))
}

/// The PostgreSQL function that keeps `updated_at` current, created by the hand-written migration
/// `002_updated_at_trigger.postgres.sql`.
pub const UPDATED_AT_FUNCTION: &str = "collex_set_updated_at";

/// Attaches the `updated_at` trigger to a new PostgreSQL table when the function exists (tables created
/// before migration 002 get theirs from it; tables created after it, from this statement).
pub fn updated_at_trigger_pg(table: &str) -> String {
    let trigger = ident(&format!("trg_{table}_updated_at"));
    format!(
        "DO $$\nBEGIN\n    -- keep updated_at current on every update, once migration 002 has created the function\n    IF to_regprocedure('{UPDATED_AT_FUNCTION}()') IS NOT NULL THEN\n        \
         CREATE OR REPLACE TRIGGER {trigger} BEFORE UPDATE ON {} FOR EACH ROW EXECUTE FUNCTION {UPDATED_AT_FUNCTION}();\n    \
         END IF;\nEND\n$$;",
        ident(table)
    )
}

/// PostgreSQL statements that bring a table's row-level security from `from` to `to`: policies that go or
/// change are dropped, then enabling and forcing set, then new or changed policies created (nothing on SQLite,
/// which has no row-level security).
pub fn row_security(table: &str, from: &RowSecurity, to: &RowSecurity, dialect: Dialect) -> Vec<String> {
    if dialect != Dialect::Postgres {
        return Vec::new();
    }
    let t = ident(table);
    let mut out = Vec::new();
    for p in &from.policies {
        if to.policy(&p.name).is_none() {
            out.push(format!("DROP POLICY IF EXISTS {} ON {t};", ident(&p.name)));
        }
    }
    if from.enabled != to.enabled {
        let verb = if to.enabled { "ENABLE" } else { "DISABLE" };
        out.push(format!("ALTER TABLE {t} {verb} ROW LEVEL SECURITY;"));
    }
    if from.forced != to.forced {
        let verb = if to.forced { "FORCE" } else { "NO FORCE" };
        out.push(format!("ALTER TABLE {t} {verb} ROW LEVEL SECURITY;"));
    }
    for p in &to.policies {
        if from.policy(&p.name).is_none_or(|o| !o.same_definition(p)) {
            // Dropped first whatever `from` says: a database auto-migrate already brought forward has it.
            out.push(format!("DROP POLICY IF EXISTS {} ON {t};", ident(&p.name)));
            let mut s = format!("CREATE POLICY {} ON {t}", ident(&p.name));
            if let Some(using) = &p.using {
                s.push_str(&format!(" USING ({using})"));
            }
            if let Some(check) = &p.check {
                s.push_str(&format!(" WITH CHECK ({check})"));
            }
            s.push(';');
            out.push(s);
        }
    }
    out
}

/// PostgreSQL statements that turn column `from` into `to` (type, nullability, default).
pub fn alter_column_pg(table: &str, from: &Column, to: &Column) -> Vec<String> {
    let t = ident(table);
    let c = ident(&to.name);
    let mut out = Vec::new();
    if from.sql_type != to.sql_type {
        out.push(format!(
            "ALTER TABLE {t} ALTER COLUMN {c} TYPE {ty} USING {c}::{ty};",
            ty = to.sql_type
        ));
    }
    if from.default.as_deref().map(super::canonical_expr) != to.default.as_deref().map(super::canonical_expr)
    {
        out.push(match &to.default {
            Some(d) => format!("ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {d};"),
            None => format!("ALTER TABLE {t} ALTER COLUMN {c} DROP DEFAULT;"),
        });
    }
    if from.nullable != to.nullable {
        out.push(if to.nullable {
            format!("ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL;")
        } else {
            format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL;")
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_only_when_needed() {
        assert_eq!(ident("users"), "users");
        assert_eq!(ident("user"), "\"user\"");
        assert_eq!(ident("Weird Name"), "\"Weird Name\"");
    }

    #[test]
    fn partial_indexes_keep_their_predicate() {
        let i = Index {
            name: "idx_users_phone_status".into(),
            table: "users".into(),
            columns: vec!["phone_number".into(), "status".into()],
            unique: false,
            predicate: Some("deleted_at IS NULL".into()),
        };
        assert_eq!(
            create_index(&i),
            "CREATE INDEX IF NOT EXISTS idx_users_phone_status ON users (phone_number, status) WHERE deleted_at IS NULL;"
        );
    }
}
