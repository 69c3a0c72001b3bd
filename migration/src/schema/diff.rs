//! The difference between the schema the entities declare and the schema a database has: as a [`Drift`]
//! report (what `status` shows) and as [`Change`]s rendered into forward and rollback SQL (what
//! `create --from-entities` writes and auto-migrate applies).
//!
//! Tables are matched by name, columns by table and name, indexes by name (then compared by columns,
//! uniqueness and predicate), foreign keys by what they do (SQLite does not keep their names). Objects the
//! hand-written migrations create and the history table are [`Known`]: never reported as extra.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{Column, Dialect, ForeignKey, Index, RowSecurity, Schema, Table, canonical_expr, ddl};

mod changes;

pub use changes::{Change, Rebuild, changes, needs_default};

/// Tables and indexes that exist on purpose although no entity declares them.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Table names (the history table, tables of hand-written migrations).
    pub tables: BTreeSet<String>,
    /// Index names (indexes of hand-written migrations).
    pub indexes: BTreeSet<String>,
}

/// A column, named by its table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnRef {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
}

/// One aspect of a column that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnDifference {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// `type`, `nullable` or `default`.
    pub aspect: &'static str,
    /// What the entities declare.
    pub expected: String,
    /// What the database has.
    pub found: String,
}

/// An index whose definition differs from the declared one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexDifference {
    /// What the entities declare.
    pub expected: Index,
    /// What the database has.
    pub found: Index,
}

/// A primary key that differs from the declared one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrimaryKeyDifference {
    /// The table.
    pub table: String,
    /// What the entities declare.
    pub expected: Vec<String>,
    /// What the database has.
    pub found: Vec<String>,
}

/// Row-level security that differs from the declared one (not enabled, not forced, a policy missing,
/// different or extra).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowSecurityDifference {
    /// The table.
    pub table: String,
    /// What the entities declare.
    pub expected: RowSecurity,
    /// What the database has.
    pub found: RowSecurity,
}

impl RowSecurityDifference {
    /// One line per aspect that differs.
    pub fn lines(&self) -> Vec<String> {
        let (e, f, t) = (&self.expected, &self.found, &self.table);
        let mut out = Vec::new();
        let word = |on: bool| if on { "on" } else { "off" };
        if e.enabled != f.enabled {
            out.push(format!(
                "row-level security of {t}: expected {}, found {}",
                word(e.enabled),
                word(f.enabled)
            ));
        }
        if e.forced != f.forced {
            out.push(format!(
                "row-level security of {t} not {}: expected FORCE {}, found {} (the table's owner {} the policies)",
                if e.forced { "forced" } else { "unforced" },
                word(e.forced),
                word(f.forced),
                if f.forced { "is held to" } else { "bypasses" }
            ));
        }
        for p in &e.policies {
            match f.policy(&p.name) {
                None => out.push(format!("missing policy {} on {t}", p.name)),
                Some(found) if !p.same_definition(found) => out.push(format!(
                    "policy {} on {t} differs: expected USING ({}) WITH CHECK ({}), found USING ({}) WITH CHECK ({})",
                    p.name,
                    opt(p.using.as_deref()),
                    opt(p.check.as_deref()),
                    opt(found.using.as_deref()),
                    opt(found.check.as_deref())
                )),
                Some(_) => {}
            }
        }
        for p in &f.policies {
            if e.policy(&p.name).is_none() {
                out.push(format!("extra policy {} on {t}", p.name));
            }
        }
        out
    }
}

/// A foreign key, named by its table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignKeyRef {
    /// The referencing table.
    pub table: String,
    /// The foreign key.
    pub foreign_key: ForeignKey,
}

/// How a database differs from the entities. Empty when it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The dialect compared in.
    pub dialect: Dialect,
    /// Entity tables the database lacks.
    pub missing_tables: Vec<String>,
    /// Tables no entity and no hand-written migration declares.
    pub extra_tables: Vec<String>,
    /// Entity columns the database lacks.
    pub missing_columns: Vec<ColumnRef>,
    /// Columns of entity tables that no entity declares.
    pub extra_columns: Vec<ColumnRef>,
    /// Type, nullability and default differences.
    pub column_differences: Vec<ColumnDifference>,
    /// Primary keys whose columns differ.
    pub primary_key_differences: Vec<PrimaryKeyDifference>,
    /// Row-level security that differs (PostgreSQL).
    pub row_security_differences: Vec<RowSecurityDifference>,
    /// Declared indexes the database lacks.
    pub missing_indexes: Vec<Index>,
    /// Indexes on entity tables that nothing declares.
    pub extra_indexes: Vec<Index>,
    /// Indexes whose columns, uniqueness or predicate differ.
    pub index_differences: Vec<IndexDifference>,
    /// Declared foreign keys the database lacks (on tables it has).
    pub missing_foreign_keys: Vec<ForeignKeyRef>,
    /// Foreign keys on entity tables that no entity declares.
    pub extra_foreign_keys: Vec<ForeignKeyRef>,
}

impl Drift {
    /// Whether the database matches the entities.
    pub fn is_empty(&self) -> bool {
        self.missing_tables.is_empty()
            && self.extra_tables.is_empty()
            && self.missing_columns.is_empty()
            && self.extra_columns.is_empty()
            && self.column_differences.is_empty()
            && self.primary_key_differences.is_empty()
            && self.row_security_differences.is_empty()
            && self.missing_indexes.is_empty()
            && self.extra_indexes.is_empty()
            && self.index_differences.is_empty()
            && self.missing_foreign_keys.is_empty()
            && self.extra_foreign_keys.is_empty()
    }

    /// One line per difference, for people.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.missing_tables {
            out.push(format!("missing table {t}"));
        }
        for t in &self.extra_tables {
            out.push(format!("extra table {t} (no entity or migration declares it)"));
        }
        for c in &self.missing_columns {
            out.push(format!("missing column {}.{}", c.table, c.column));
        }
        for c in &self.extra_columns {
            out.push(format!("extra column {}.{}", c.table, c.column));
        }
        for d in &self.column_differences {
            out.push(format!(
                "column {}.{} {}: expected {}, found {}",
                d.table, d.column, d.aspect, d.expected, d.found
            ));
        }
        for p in &self.primary_key_differences {
            out.push(format!(
                "primary key of {} differs: expected ({}), found ({})",
                p.table,
                p.expected.join(", "),
                p.found.join(", ")
            ));
        }
        for r in &self.row_security_differences {
            out.extend(r.lines());
        }
        for i in &self.missing_indexes {
            out.push(format!("missing index {} on {}", i.name, describe(i)));
        }
        for i in &self.extra_indexes {
            out.push(format!("extra index {} on {}", i.name, describe(i)));
        }
        for d in &self.index_differences {
            out.push(format!(
                "index {} differs: expected {}, found {}",
                d.expected.name,
                describe(&d.expected),
                describe(&d.found)
            ));
        }
        for f in &self.missing_foreign_keys {
            out.push(format!("missing foreign key {}", describe_fk(f)));
        }
        for f in &self.extra_foreign_keys {
            out.push(format!("extra foreign key {}", describe_fk(f)));
        }
        out
    }
}

fn describe(i: &Index) -> String {
    let mut s = format!(
        "{}{} ({})",
        if i.unique { "unique " } else { "" },
        i.table,
        i.columns.join(", ")
    );
    if let Some(p) = &i.predicate {
        s.push_str(" WHERE ");
        s.push_str(p);
    }
    s
}

fn describe_fk(f: &ForeignKeyRef) -> String {
    format!(
        "{} ({}) -> {} ({}) ON DELETE {}",
        f.table,
        f.foreign_key.columns.join(", "),
        f.foreign_key.ref_table,
        f.foreign_key.ref_columns.join(", "),
        f.foreign_key.on_delete
    )
}

fn opt(s: Option<&str>) -> String {
    s.map_or_else(|| "none".to_owned(), str::to_owned)
}

/// Compares `actual` (a database) with `expected` (the entities), in `dialect`.
pub fn drift(expected: &Schema, actual: &Schema, known: &Known, dialect: Dialect) -> Drift {
    let mut d = Drift {
        dialect,
        missing_tables: Vec::new(),
        extra_tables: Vec::new(),
        missing_columns: Vec::new(),
        extra_columns: Vec::new(),
        column_differences: Vec::new(),
        primary_key_differences: Vec::new(),
        row_security_differences: Vec::new(),
        missing_indexes: Vec::new(),
        extra_indexes: Vec::new(),
        index_differences: Vec::new(),
        missing_foreign_keys: Vec::new(),
        extra_foreign_keys: Vec::new(),
    };
    let declared: BTreeSet<&str> = expected.tables.iter().map(|t| t.name.as_str()).collect();
    for t in &actual.tables {
        if !declared.contains(t.name.as_str()) && !known.tables.contains(&t.name) {
            d.extra_tables.push(t.name.clone());
        }
    }
    for e in &expected.tables {
        let Some(a) = actual.table(&e.name) else {
            d.missing_tables.push(e.name.clone());
            continue;
        };
        compare_table(e, a, known, &mut d);
    }
    d
}

fn compare_table(e: &Table, a: &Table, known: &Known, d: &mut Drift) {
    for ec in &e.columns {
        let Some(ac) = a.column(&ec.name) else {
            d.missing_columns.push(ColumnRef {
                table: e.name.clone(),
                column: ec.name.clone(),
            });
            continue;
        };
        let mut diff = |aspect, expected: String, found: String| {
            d.column_differences.push(ColumnDifference {
                table: e.name.clone(),
                column: ec.name.clone(),
                aspect,
                expected,
                found,
            });
        };
        if ec.sql_type != ac.sql_type {
            diff("type", ec.sql_type.clone(), ac.sql_type.clone());
        }
        if ec.nullable != ac.nullable {
            let word = |n: bool| if n { "NULL" } else { "NOT NULL" }.to_owned();
            diff("nullable", word(ec.nullable), word(ac.nullable));
        }
        if ec.default.as_deref().map(canonical_expr) != ac.default.as_deref().map(canonical_expr) {
            diff("default", opt(ec.default.as_deref()), opt(ac.default.as_deref()));
        }
    }
    if e.primary_key != a.primary_key {
        d.primary_key_differences.push(PrimaryKeyDifference {
            table: e.name.clone(),
            expected: e.primary_key.clone(),
            found: a.primary_key.clone(),
        });
    }
    let same_policies = e.row_security.policies.len() == a.row_security.policies.len()
        && e.row_security.policies.iter().all(|p| {
            a.row_security
                .policy(&p.name)
                .is_some_and(|found| p.same_definition(found))
        });
    if e.row_security.enabled != a.row_security.enabled
        || e.row_security.forced != a.row_security.forced
        || !same_policies
    {
        d.row_security_differences.push(RowSecurityDifference {
            table: e.name.clone(),
            expected: e.row_security.clone(),
            found: a.row_security.clone(),
        });
    }
    for ac in &a.columns {
        if e.column(&ac.name).is_none() {
            d.extra_columns.push(ColumnRef {
                table: e.name.clone(),
                column: ac.name.clone(),
            });
        }
    }
    for ei in &e.indexes {
        match a.index(&ei.name) {
            None => d.missing_indexes.push(ei.clone()),
            Some(ai) if !ei.same_definition(ai) => d.index_differences.push(IndexDifference {
                expected: ei.clone(),
                found: ai.clone(),
            }),
            Some(_) => {}
        }
    }
    for ai in &a.indexes {
        if e.index(&ai.name).is_none() && !known.indexes.contains(&ai.name) {
            d.extra_indexes.push(ai.clone());
        }
    }
    for ef in &e.foreign_keys {
        // A foreign key on a missing column is implied by that column's addition.
        let column_missing = ef.columns.iter().any(|c| a.column(c).is_none());
        if !column_missing && !a.foreign_keys.iter().any(|af| af.same_as(ef)) {
            d.missing_foreign_keys.push(ForeignKeyRef {
                table: e.name.clone(),
                foreign_key: ef.clone(),
            });
        }
    }
    for af in &a.foreign_keys {
        if !e.foreign_keys.iter().any(|ef| ef.same_as(af)) {
            d.extra_foreign_keys.push(ForeignKeyRef {
                table: e.name.clone(),
                foreign_key: af.clone(),
            });
        }
    }
}
