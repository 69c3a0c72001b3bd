//! The [`Change`]s that turn a database's schema into the one the entities declare, rendered into forward and
//! rollback SQL per dialect (what `create --from-entities` writes and auto-migrate applies). The report of the
//! same difference, [`super::Drift`], is the parent module's; this one only plans and renders changes from it.

use std::collections::BTreeSet;

use serde::Serialize;

use super::*;

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
