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

/// One table of [`Change::RebuildTables`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rebuild {
    /// As the database has it.
    pub from: Table,
    /// As the entities declare it.
    pub to: Table,
}

/// One schema change a migration makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Change {
    /// A new table with its indexes.
    CreateTable {
        /// The table as the entities declare it.
        table: Table,
    },
    /// A new column (with its foreign key, if any).
    AddColumn {
        /// The table.
        table: String,
        /// The column.
        column: Column,
        /// Its foreign key.
        foreign_key: Option<ForeignKey>,
    },
    /// A column whose type, nullability or default changes (not additive).
    AlterColumn {
        /// The table.
        table: String,
        /// As the database has it.
        from: Column,
        /// As the entities declare it.
        to: Column,
    },
    /// A foreign key added to an existing column (not additive on SQLite, which cannot add one).
    AddForeignKey {
        /// The table.
        table: String,
        /// The foreign key.
        foreign_key: ForeignKey,
    },
    /// A foreign key that no entity declares, dropped (a declared one replaces it; not additive).
    DropForeignKey {
        /// The table.
        table: String,
        /// The foreign key as the database has it.
        foreign_key: ForeignKey,
    },
    /// A primary key whose columns change (not additive). PostgreSQL only: SQLite rebuilds the table.
    SetPrimaryKey {
        /// The table.
        table: String,
        /// As the database has it.
        from: Vec<String>,
        /// As the entities declare it.
        to: Vec<String>,
    },
    /// SQLite: tables whose primary key or foreign keys change, rebuilt with their rows (SQLite alters
    /// neither in place), parents first; tables that reference a rebuilt table are rebuilt with it, so no
    /// `DROP TABLE` cascades into a child's rows.
    RebuildTables {
        /// Each table as the database has it and as the entities declare it.
        tables: Vec<Rebuild>,
    },
    /// Row-level security brought to the declared state: enabled, forced, policies (PostgreSQL; not additive).
    SetRowSecurity {
        /// The table.
        table: String,
        /// As the database has it.
        from: RowSecurity,
        /// As the entities declare it.
        to: RowSecurity,
    },
    /// A new index.
    CreateIndex {
        /// The index.
        index: Index,
    },
    /// An index on an entity table that nothing declares (not additive).
    DropIndex {
        /// The index as the database has it.
        index: Index,
    },
    /// An index whose definition changes (not additive).
    ReplaceIndex {
        /// As the database has it.
        from: Index,
        /// As the entities declare it.
        to: Index,
    },
}

impl Change {
    /// Whether the change only adds (what auto-migrate may apply): a table, a column, an index.
    pub fn is_additive(&self) -> bool {
        matches!(
            self,
            Self::CreateTable { .. } | Self::AddColumn { .. } | Self::CreateIndex { .. }
        )
    }

    /// A short description naming the object, for logs and warnings.
    pub fn describe(&self) -> String {
        match self {
            Self::CreateTable { table } => format!("create table {}", table.name),
            Self::AddColumn { table, column, .. } => format!("add column {table}.{}", column.name),
            Self::AlterColumn { table, to, .. } => format!("alter column {table}.{}", to.name),
            Self::AddForeignKey { table, foreign_key } => {
                format!("add foreign key {table} ({})", foreign_key.columns.join(", "))
            }
            Self::DropForeignKey { table, foreign_key } => {
                format!("drop foreign key {table} ({})", foreign_key.columns.join(", "))
            }
            Self::SetPrimaryKey { table, to, .. } => {
                format!("primary key of {table} becomes ({})", to.join(", "))
            }
            Self::RebuildTables { tables } => format!(
                "rebuild {} with new keys",
                tables
                    .iter()
                    .map(|r| r.to.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Self::SetRowSecurity { table, to, .. } => format!(
                "row-level security of {table}: {}{}",
                if to.enabled { "enabled" } else { "disabled" },
                if to.forced { ", forced" } else { "" }
            ),
            Self::CreateIndex { index } => format!("create index {} on {}", index.name, index.table),
            Self::DropIndex { index } => format!("drop index {} on {}", index.name, index.table),
            Self::ReplaceIndex { to, .. } => format!("replace index {} on {}", to.name, to.table),
        }
    }

    /// The forward statements in `dialect` (comments for what the dialect cannot do).
    pub fn forward(&self, dialect: Dialect) -> Vec<String> {
        match self {
            Self::CreateTable { table } => {
                let mut out = vec![ddl::create_table(table)];
                out.extend(table.indexes.iter().map(ddl::create_index));
                if dialect == Dialect::Postgres && table.column("updated_at").is_some() {
                    out.push(ddl::updated_at_trigger_pg(&table.name));
                }
                out.extend(ddl::row_security(
                    &table.name,
                    &RowSecurity::default(),
                    &table.row_security,
                    dialect,
                ));
                out
            }
            Self::AddColumn { table, column, .. } if dialect == Dialect::Sqlite && needs_default(column) => {
                vec![format!(
                    "-- SQLite cannot add NOT NULL column {table}.{} without a default; give the field a \
                     default_value, or rebuild the table by hand",
                    column.name
                )]
            }
            Self::AddColumn {
                table,
                column,
                foreign_key,
            } => vec![ddl::add_column(table, column, foreign_key.as_ref(), dialect)],
            Self::AlterColumn { table, from, to } => match dialect {
                Dialect::Postgres => ddl::alter_column_pg(table, from, to),
                Dialect::Sqlite => vec![format!(
                    "-- SQLite cannot alter column {table}.{} in place (wanted: {}); rebuild the table by hand",
                    to.name,
                    ddl::column_def(to)
                )],
            },
            Self::AddForeignKey { table, foreign_key } => match dialect {
                Dialect::Postgres => vec![format!(
                    "ALTER TABLE {} ADD {};",
                    ddl::ident(table),
                    fk_clause(foreign_key)
                )],
                Dialect::Sqlite => vec![format!(
                    "-- SQLite cannot add a foreign key to {table} ({}) in place; rebuild the table by hand",
                    foreign_key.columns.join(", ")
                )],
            },
            Self::DropForeignKey { table, foreign_key } => drop_foreign_key(table, foreign_key, dialect),
            Self::SetPrimaryKey { table, to, .. } => set_primary_key(table, to, dialect),
            Self::RebuildTables { tables } => {
                let pairs: Vec<(&Table, &Table)> = tables.iter().map(|r| (&r.from, &r.to)).collect();
                rebuild(&pairs, dialect)
            }
            Self::SetRowSecurity { table, from, to } => ddl::row_security(table, from, to, dialect),
            Self::CreateIndex { index } => vec![ddl::create_index(index)],
            Self::DropIndex { index } => vec![ddl::drop_index(&index.name)],
            Self::ReplaceIndex { from, to } => vec![ddl::drop_index(&from.name), ddl::create_index(to)],
        }
    }

    /// The statements that undo [`Change::forward`], in order.
    pub fn rollback(&self, dialect: Dialect) -> Vec<String> {
        match self {
            Self::CreateTable { table } => vec![ddl::drop_table(&table.name)],
            Self::AddColumn { column, .. } if dialect == Dialect::Sqlite && needs_default(column) => {
                Vec::new()
            }
            Self::AddColumn { table, column, .. } => vec![ddl::drop_column(table, &column.name, dialect)],
            Self::AlterColumn { table, from, to } => match dialect {
                Dialect::Postgres => ddl::alter_column_pg(table, to, from),
                Dialect::Sqlite => Vec::new(),
            },
            Self::AddForeignKey { table, foreign_key } => match dialect {
                Dialect::Postgres => vec![format!(
                    "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {};",
                    ddl::ident(table),
                    ddl::ident(&foreign_key.name)
                )],
                Dialect::Sqlite => Vec::new(),
            },
            Self::DropForeignKey { table, foreign_key } => match dialect {
                Dialect::Postgres => vec![format!(
                    "ALTER TABLE {} ADD {};",
                    ddl::ident(table),
                    fk_clause(foreign_key)
                )],
                Dialect::Sqlite => Vec::new(),
            },
            Self::SetPrimaryKey { table, from, .. } => set_primary_key(table, from, dialect),
            Self::RebuildTables { tables } => {
                let pairs: Vec<(&Table, &Table)> = tables.iter().map(|r| (&r.to, &r.from)).collect();
                rebuild(&pairs, dialect)
            }
            Self::SetRowSecurity { table, from, to } => ddl::row_security(table, to, from, dialect),
            Self::CreateIndex { index } => vec![ddl::drop_index(&index.name)],
            Self::DropIndex { index } => vec![ddl::create_index(index)],
            Self::ReplaceIndex { from, to } => vec![ddl::drop_index(&to.name), ddl::create_index(from)],
        }
    }
}

fn drop_foreign_key(table: &str, fk: &ForeignKey, dialect: Dialect) -> Vec<String> {
    match dialect {
        Dialect::Postgres => vec![format!(
            "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {};",
            ddl::ident(table),
            ddl::ident(&fk.name)
        )],
        Dialect::Sqlite => vec![format!(
            "-- SQLite cannot drop a foreign key of {table} ({}) in place; rebuild the table by hand",
            fk.columns.join(", ")
        )],
    }
}

/// The primary key of `table` replaced by one on `columns`. The constraint keeps PostgreSQL's name for an
/// inline primary key (`<table>_pkey`), which is how every generated table was created; a table whose key is
/// named otherwise makes the statement fail rather than end up with two keys.
fn set_primary_key(table: &str, columns: &[String], dialect: Dialect) -> Vec<String> {
    match dialect {
        Dialect::Postgres => vec![format!(
            "ALTER TABLE {t} DROP CONSTRAINT {k}, ADD CONSTRAINT {k} PRIMARY KEY ({});",
            columns
                .iter()
                .map(|c| ddl::ident(c))
                .collect::<Vec<_>>()
                .join(", "),
            t = ddl::ident(table),
            k = ddl::ident(&format!("{table}_pkey")),
        )],
        Dialect::Sqlite => vec![format!(
            "-- SQLite cannot change the primary key of {table} in place; rebuild the table by hand"
        )],
    }
}

/// SQLite: each table of `pairs` (`(as it is, as it becomes)`, parents first) copied aside, dropped children
/// first, created anew with its indexes parents first, and filled again with the columns both shapes have.
/// Rows that break a new key (a link across businesses) make the `INSERT` fail, and the whole migration with it.
fn rebuild(pairs: &[(&Table, &Table)], dialect: Dialect) -> Vec<String> {
    if dialect != Dialect::Sqlite {
        return vec![
            "-- rebuilding tables is SQLite's way to change keys; PostgreSQL alters them".to_owned(),
        ];
    }
    let aside = |t: &Table| ddl::ident(&format!("_collex_rebuild_{}", t.name));
    let mut out = Vec::new();
    for (from, _) in pairs {
        out.push(format!(
            "CREATE TEMP TABLE {} AS SELECT * FROM {};",
            aside(from),
            ddl::ident(&from.name)
        ));
    }
    for (from, _) in pairs.iter().rev() {
        out.push(ddl::drop_table(&from.name));
    }
    for (from, to) in pairs {
        let mut to = (*to).clone();
        for (i, fk) in to.foreign_keys.iter_mut().enumerate() {
            // SQLite does not keep foreign-key names: a table read back from it gets one to write.
            if fk.name.is_empty() {
                fk.name = format!("fk_{}_{}_{i}", to.name, fk.columns.join("_"));
            }
        }
        out.push(ddl::create_table(&to));
        out.extend(
            to.indexes
                .iter()
                .filter(|i| !i.name.starts_with("sqlite_"))
                .map(ddl::create_index),
        );
        let common: Vec<String> = to
            .columns
            .iter()
            .filter(|c| from.column(&c.name).is_some())
            .map(|c| ddl::ident(&c.name))
            .collect();
        out.push(format!(
            "INSERT INTO {} ({cols}) SELECT {cols} FROM temp.{};",
            ddl::ident(&to.name),
            aside(from),
            cols = common.join(", ")
        ));
    }
    for (from, _) in pairs {
        out.push(format!("DROP TABLE temp.{};", aside(from)));
    }
    out
}

/// A `NOT NULL` column without a default: rows that exist cannot get a value (SQLite refuses it always).
pub fn needs_default(c: &Column) -> bool {
    !c.nullable && c.default.is_none()
}

fn fk_clause(fk: &ForeignKey) -> String {
    let mut s = format!(
        "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
        ddl::ident(&fk.name),
        fk.columns
            .iter()
            .map(|c| ddl::ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        ddl::ident(&fk.ref_table),
        fk.ref_columns
            .iter()
            .map(|c| ddl::ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if fk.on_delete != "NO ACTION" {
        s.push_str(" ON DELETE ");
        s.push_str(&fk.on_delete);
    }
    s
}

/// The changes that bring `actual` to `expected`, in an order that applies: tables parents first, then
/// columns; then keys (foreign keys no entity declares dropped, primary keys replaced, declared foreign keys
/// added: a primary key cannot be replaced while a foreign key references it); then indexes. On SQLite a
/// table whose keys change is rebuilt instead ([`Change::RebuildTables`]). Extra tables and columns are never
/// dropped: they may hold data and may belong to hand-written migrations.
pub fn changes(expected: &Schema, actual: &Schema, known: &Known, dialect: Dialect) -> Vec<Change> {
    let d = drift(expected, actual, known, dialect);
    let mut out = Vec::new();
    for e in &expected.tables {
        if d.missing_tables.contains(&e.name) {
            out.push(Change::CreateTable { table: e.clone() });
        }
    }
    let rebuilt = match dialect {
        Dialect::Sqlite => rebuild_set(&d, expected, actual),
        Dialect::Postgres => BTreeSet::new(),
    };
    if !rebuilt.is_empty() {
        let tables = expected
            .tables
            .iter()
            .filter(|t| rebuilt.contains(&t.name))
            .filter_map(|to| {
                actual.table(&to.name).map(|from| Rebuild {
                    from: from.clone(),
                    to: to.clone(),
                })
            })
            .collect();
        out.push(Change::RebuildTables { tables });
    }
    let kept = |table: &str| !rebuilt.contains(table);
    for c in d.missing_columns.iter().filter(|c| kept(&c.table)) {
        let Some(t) = expected.table(&c.table) else {
            continue;
        };
        let Some(column) = t.column(&c.column) else {
            continue;
        };
        let foreign_key = t
            .foreign_keys
            .iter()
            .find(|f| f.columns.len() == 1 && f.columns[0] == c.column)
            .cloned();
        out.push(Change::AddColumn {
            table: c.table.clone(),
            column: column.clone(),
            foreign_key,
        });
    }
    for cd in d.column_differences.iter().filter(|c| kept(&c.table)) {
        let (Some(e), Some(a)) = (expected.table(&cd.table), actual.table(&cd.table)) else {
            continue;
        };
        let (Some(to), Some(from)) = (e.column(&cd.column), a.column(&cd.column)) else {
            continue;
        };
        let change = Change::AlterColumn {
            table: cd.table.clone(),
            from: from.clone(),
            to: to.clone(),
        };
        if !out.contains(&change) {
            out.push(change);
        }
    }
    for f in d.extra_foreign_keys.iter().filter(|f| kept(&f.table)) {
        out.push(Change::DropForeignKey {
            table: f.table.clone(),
            foreign_key: f.foreign_key.clone(),
        });
    }
    for p in d.primary_key_differences.iter().filter(|p| kept(&p.table)) {
        out.push(Change::SetPrimaryKey {
            table: p.table.clone(),
            from: p.found.clone(),
            to: p.expected.clone(),
        });
    }
    for f in d.missing_foreign_keys.iter().filter(|f| kept(&f.table)) {
        out.push(Change::AddForeignKey {
            table: f.table.clone(),
            foreign_key: f.foreign_key.clone(),
        });
    }
    for r in &d.row_security_differences {
        out.push(Change::SetRowSecurity {
            table: r.table.clone(),
            from: r.found.clone(),
            to: r.expected.clone(),
        });
    }
    for i in d.extra_indexes.iter().filter(|i| kept(&i.table)) {
        out.push(Change::DropIndex { index: i.clone() });
    }
    for x in d.index_differences.iter().filter(|x| kept(&x.expected.table)) {
        out.push(Change::ReplaceIndex {
            from: x.found.clone(),
            to: x.expected.clone(),
        });
    }
    for i in d.missing_indexes.iter().filter(|i| kept(&i.table)) {
        out.push(Change::CreateIndex { index: i.clone() });
    }
    out
}

/// SQLite: the entity tables whose primary key or foreign keys differ, and every entity table that references
/// one of them (its rows would be cascaded away by the rebuild's `DROP TABLE` otherwise).
fn rebuild_set(d: &Drift, expected: &Schema, actual: &Schema) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = d
        .primary_key_differences
        .iter()
        .map(|p| p.table.clone())
        .chain(d.missing_foreign_keys.iter().map(|f| f.table.clone()))
        .chain(d.extra_foreign_keys.iter().map(|f| f.table.clone()))
        .collect();
    loop {
        let before = set.len();
        for t in &expected.tables {
            let refs = |s: &BTreeSet<String>| {
                actual
                    .table(&t.name)
                    .is_some_and(|a| a.foreign_keys.iter().any(|f| s.contains(&f.ref_table)))
            };
            if !set.contains(&t.name) && actual.table(&t.name).is_some() && refs(&set) {
                set.insert(t.name.clone());
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::generate;

    #[test]
    fn an_empty_database_needs_every_table_in_foreign_key_order() {
        let expected = generate::schema(&entity::registry::all(), Dialect::Postgres).expect("generates");
        let changes = changes(
            &expected,
            &Schema::default(),
            &Known::default(),
            Dialect::Postgres,
        );
        let names: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::CreateTable { table } => table.name.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(names.first().map(String::as_str), Some("businesses"));
        assert_eq!(names.len(), expected.tables.len());
    }

    #[test]
    fn changed_columns_and_indexes_are_written_with_their_undoing() {
        let expected = generate::schema(&entity::registry::all(), Dialect::Postgres).expect("generates");
        let mut actual = expected.clone();
        let users = actual
            .tables
            .iter_mut()
            .find(|t| t.name == "users")
            .expect("users");
        let phone = users
            .columns
            .iter_mut()
            .find(|c| c.name == "phone_number")
            .expect("phone");
        phone.sql_type = "varchar(30)".into();
        let idx = users
            .indexes
            .iter_mut()
            .find(|i| i.name == "idx_users_phone_status")
            .expect("index");
        idx.predicate = None;
        let changes = changes(&expected, &actual, &Known::default(), Dialect::Postgres);
        let forward: Vec<String> = changes
            .iter()
            .flat_map(|c| c.forward(Dialect::Postgres))
            .collect();
        let rollback: Vec<String> = changes
            .iter()
            .rev()
            .flat_map(|c| c.rollback(Dialect::Postgres))
            .collect();
        assert_eq!(
            forward,
            [
                "ALTER TABLE users ALTER COLUMN phone_number TYPE varchar(20) USING phone_number::varchar(20);",
                "DROP INDEX IF EXISTS idx_users_phone_status;",
                "CREATE INDEX IF NOT EXISTS idx_users_phone_status ON users (phone_number, status) WHERE deleted_at IS NULL;",
            ]
        );
        assert_eq!(
            rollback,
            [
                "DROP INDEX IF EXISTS idx_users_phone_status;",
                "CREATE INDEX IF NOT EXISTS idx_users_phone_status ON users (phone_number, status);",
                "ALTER TABLE users ALTER COLUMN phone_number TYPE varchar(30) USING phone_number::varchar(30);",
            ]
        );
        assert!(
            changes.iter().all(|c| !c.is_additive()),
            "auto-migrate applies none of these"
        );
        let lite: Vec<String> = changes.iter().flat_map(|c| c.forward(Dialect::Sqlite)).collect();
        assert!(
            lite[0].starts_with("-- SQLite cannot alter column users.phone_number"),
            "{lite:?}"
        );
    }

    #[test]
    fn a_matching_schema_has_no_drift_and_a_changed_predicate_is_reported() {
        let expected = generate::schema(&entity::registry::all(), Dialect::Sqlite).expect("generates");
        let mut actual = expected.clone();
        assert!(drift(&expected, &actual, &Known::default(), Dialect::Sqlite).is_empty());
        let users = actual
            .tables
            .iter_mut()
            .find(|t| t.name == "users")
            .expect("users");
        let idx = users
            .indexes
            .iter_mut()
            .find(|i| i.name == "idx_users_email_status")
            .expect("index");
        idx.predicate = Some("(deleted_at IS NULL)".into());
        users.columns.retain(|c| c.name != "display_name");
        let d = drift(&expected, &actual, &Known::default(), Dialect::Sqlite);
        assert_eq!(d.index_differences.len(), 1, "{d:?}");
        assert_eq!(d.missing_columns.len(), 1, "{d:?}");
        let lines = d.lines().join("\n");
        assert!(lines.contains("index idx_users_email_status differs"), "{lines}");
        assert!(lines.contains("missing column users.display_name"), "{lines}");
    }
}
