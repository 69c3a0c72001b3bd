//! Distribution by `business_id` (Citus): whether a schema can be distributed, and the script that does it.
//!
//! Citus distributes a table by one column and refuses a primary key, a unique key or a foreign key between
//! distributed tables that does not contain it; tables without the column become reference tables (one copy
//! on every node), which distributed tables may reference but which may not reference them. [`readiness`]
//! lists what stands in the way for a schema (the generated one, or a database's); [`plan`] writes the
//! `create_reference_table` / `create_distributed_table` script for the entities, colocated by
//! `business_id`, parents first. Citus is not installed where this is tested: the script is checked for what
//! can be checked without it (every entity once, every distributed table's keys lead with `business_id`).
//! What a real Citus 13.2 cluster said about this schema is in issue 18.

use entity::registry::EntityMeta;
use serde::Serialize;

use super::generate::BUSINESS_ID;
use super::{Dialect, Schema, SchemaError, Table, ddl, generate};

/// One thing that stops Citus from distributing a table by `business_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The table.
    pub table: String,
    /// What is wrong and what Citus needs instead.
    pub message: String,
}

/// A unique key declared global (`#[global_unique]`): unique across businesses, which a distributed table
/// cannot enforce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GlobalUnique {
    /// The table.
    pub table: String,
    /// The unique index.
    pub index: String,
    /// Its columns.
    pub columns: Vec<String>,
}

impl GlobalUnique {
    /// What Citus needs for it.
    pub fn advice(&self) -> String {
        format!(
            "{}.{} is unique across businesses (#[global_unique]): under Citus, drop {} and keep the values in a \
             lookup table distributed by the value ({}_{}_lookup: the value as primary key, business_id, id), \
             written in the same transaction, or in a reference table if the set is small",
            self.table,
            self.columns.join(", "),
            self.index,
            self.table,
            self.columns.join("_")
        )
    }
}

/// What [`readiness`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// Tables that would be distributed by `business_id`, in order.
    pub distributed: Vec<String>,
    /// Tables that would be reference tables (no `business_id`).
    pub reference: Vec<String>,
    /// What stops the distribution. Empty when the schema is ready.
    pub problems: Vec<Problem>,
    /// Unique keys declared global, with what Citus needs for them (not problems: they are known).
    pub global_unique: Vec<GlobalUnique>,
    /// Tables not judged (hand-written ones, whose distribution is decided by hand).
    pub skipped: Vec<String>,
}

impl Readiness {
    /// Whether Citus could distribute the schema once the declared global keys are handled.
    pub fn is_ready(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Judges `schema` (every table, except those in `skip`) for distribution by `business_id`. A unique key
/// without `business_id` is a problem unless an entity declares its column `#[global_unique]`.
pub fn readiness(schema: &Schema, entities: &[EntityMeta], skip: &[String]) -> Readiness {
    let mut r = Readiness::default();
    let distributed = |t: &Table| t.column(BUSINESS_ID).is_some();
    for t in &schema.tables {
        if skip.contains(&t.name) {
            r.skipped.push(t.name.clone());
            continue;
        }
        let declared = entities
            .iter()
            .find(|m| m.table == t.name)
            .map(|m| m.global_unique)
            .unwrap_or_default();
        if !distributed(t) {
            r.reference.push(t.name.clone());
            for fk in &t.foreign_keys {
                if schema.table(&fk.ref_table).is_some_and(distributed) {
                    r.problems.push(Problem {
                        table: t.name.clone(),
                        message: format!(
                            "foreign key {} references {}, a distributed table, from {}, a reference table (it \
                             has no business_id): add business_id to {} or drop the key",
                            fk.name, fk.ref_table, t.name, t.name
                        ),
                    });
                }
            }
            continue;
        }
        r.distributed.push(t.name.clone());
        if !t.primary_key.iter().any(|c| c == BUSINESS_ID) {
            r.problems.push(Problem {
                table: t.name.clone(),
                message: format!(
                    "primary key ({}) lacks business_id: make it ({BUSINESS_ID}, {})",
                    t.primary_key.join(", "),
                    t.primary_key.join(", ")
                ),
            });
        }
        for i in t.indexes.iter().filter(|i| i.unique) {
            if i.columns.iter().any(|c| c == BUSINESS_ID) {
                continue;
            }
            let global = matches!(i.columns.as_slice(), [c] if declared.contains(&c.as_str()));
            if global {
                r.global_unique.push(GlobalUnique {
                    table: t.name.clone(),
                    index: i.name.clone(),
                    columns: i.columns.clone(),
                });
            } else {
                r.problems.push(Problem {
                    table: t.name.clone(),
                    message: format!(
                        "unique index {} on ({}) lacks business_id: lead it with business_id (unique per \
                         business), or declare the column #[global_unique] on the entity if it must be unique \
                         across businesses",
                        i.name,
                        i.columns.join(", ")
                    ),
                });
            }
        }
        for fk in &t.foreign_keys {
            let Some(target) = schema.table(&fk.ref_table) else {
                continue;
            };
            if !distributed(target) {
                continue;
            }
            let position = |cols: &[String]| cols.iter().position(|c| c == BUSINESS_ID);
            let both = position(&fk.columns).is_some() && position(&fk.columns) == position(&fk.ref_columns);
            if !both {
                r.problems.push(Problem {
                    table: t.name.clone(),
                    message: format!(
                        "foreign key {} ({}) -> {} ({}) lacks business_id on both sides: make it (business_id, \
                         {}) -> {} (business_id, {})",
                        fk.name,
                        fk.columns.join(", "),
                        fk.ref_table,
                        fk.ref_columns.join(", "),
                        fk.columns.join(", "),
                        fk.ref_table,
                        fk.ref_columns.join(", ")
                    ),
                });
            }
        }
    }
    r
}

/// The `psql` script that distributes the entities' tables (see the module docs), as text.
///
/// # Errors
/// [`SchemaError`] when the entities do not generate.
pub fn plan(entities: &[EntityMeta]) -> Result<String, SchemaError> {
    let schema = generate::schema(entities, Dialect::Postgres)?;
    let r = readiness(&schema, entities, &[]);
    let mut out = String::new();
    out.push_str(
        "-- Citus distribution plan for the Collex entities, written by `migration citus-plan`.\n\
         -- Run it on the coordinator of a Citus cluster (13.x, PostgreSQL 15) once the migrations are applied.\n\
         -- Business-scoped tables are distributed by business_id and colocated; tables without business_id\n\
         -- become reference tables (a copy on every node).\n",
    );
    if !r.is_ready() {
        out.push_str("--\n-- NOT READY: Citus would refuse this schema:\n");
        for p in &r.problems {
            out.push_str(&format!("--   {}: {}\n", p.table, p.message));
        }
    }
    out.push_str("\nBEGIN;\n");
    // Triggers (updated_at, the audit trail) on distributed tables are refused without it.
    out.push_str(
        "\n-- Triggers on distributed tables (updated_at, the audit trail) need this setting:\n\
         SET LOCAL citus.enable_unsafe_triggers = on;\n",
    );
    let to_reference: Vec<(&Table, &super::ForeignKey)> = schema
        .tables
        .iter()
        .filter(|t| r.distributed.contains(&t.name))
        .flat_map(|t| t.foreign_keys.iter().map(move |fk| (t, fk)))
        .filter(|(_, fk)| r.reference.contains(&fk.ref_table))
        .collect();
    if !to_reference.is_empty() {
        out.push_str(
            "\n-- 1. Foreign keys to future reference tables, dropped while the tables are converted:\n",
        );
        for (t, fk) in &to_reference {
            out.push_str(&format!(
                "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {};\n",
                ddl::ident(&t.name),
                ddl::ident(&fk.name)
            ));
        }
    }
    if !r.global_unique.is_empty() {
        out.push_str("\n-- 2. Unique keys across businesses, which a distributed table cannot keep:\n");
        for g in &r.global_unique {
            out.push_str(&format!("--    {}\n", g.advice()));
            out.push_str(&format!("DROP INDEX IF EXISTS {};\n", ddl::ident(&g.index)));
        }
    }
    out.push_str("\n-- 3. Reference tables:\n");
    for t in &r.reference {
        out.push_str(&format!("SELECT create_reference_table('{t}');\n"));
    }
    out.push_str("\n-- 4. Distributed tables, parents first, colocated by business_id:\n");
    let mut first: Option<&str> = None;
    for t in &r.distributed {
        match first {
            None => {
                out.push_str(&format!(
                    "SELECT create_distributed_table('{t}', '{BUSINESS_ID}');\n"
                ));
                first = Some(t);
            }
            Some(f) => out.push_str(&format!(
                "SELECT create_distributed_table('{t}', '{BUSINESS_ID}', colocate_with => '{f}');\n"
            )),
        }
    }
    if !to_reference.is_empty() {
        out.push_str("\n-- 5. The foreign keys to reference tables, back:\n");
        for (t, fk) in &to_reference {
            let mut s = format!(
                "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
                ddl::ident(&t.name),
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
            s.push_str(";\n");
            out.push_str(&s);
        }
    }
    out.push_str("\nCOMMIT;\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_schema_is_ready_and_every_entity_is_planned_once() {
        let entities = entity::registry::all();
        let schema = generate::schema(&entities, Dialect::Postgres).expect("generates");
        let r = readiness(&schema, &entities, &[]);
        assert!(r.is_ready(), "{:#?}", r.problems);
        assert_eq!(r.reference, vec!["businesses", "permissions"]);
        let globals: Vec<&str> = r.global_unique.iter().map(|g| g.index.as_str()).collect();
        assert_eq!(
            globals,
            [
                "uq_users_phone_number",
                "uq_users_email",
                "uq_user_sessions_token_hash"
            ]
        );
        let script = plan(&entities).expect("plan");
        for m in &entities {
            let calls = script
                .lines()
                .filter(|l| {
                    l.starts_with(&format!("SELECT create_distributed_table('{}'", m.table))
                        || l.starts_with(&format!("SELECT create_reference_table('{}'", m.table))
                })
                .count();
            assert_eq!(calls, 1, "{} in\n{script}", m.table);
        }
        assert!(!script.contains("NOT READY"), "{script}");
    }
}
