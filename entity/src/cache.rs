//! Statements the repository renders once per entity and shape, then only binds: `find_by_id`, `list`,
//! `list_by` one column, and the versioned `update`.
//!
//! Building and rendering a sea-query statement costs about as much client CPU as the rest of a primary-key
//! read (BENCHMARKS.md), so the shapes that repeat are rendered once. They are rendered with *sentinels*:
//! every per-call value (the business, the id, a caller's value, the time) is a fixed, distinctive placeholder
//! value while the statement is rendered, so which bound position takes which value is read off the
//! rendering itself, never guessed by comparing with the first caller's values. Values that belong to the
//! shape (`LIMIT 1`, `version + 1`) stay constants. A rendering in which a sentinel does not appear exactly
//! once is not cached: the caller renders that shape on every call instead.
//!
//! The cache keys are typed ([`ReadKey`], [`Shape`]); what a statement means is the repository's business.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use sea_orm::sea_query::Value;
use sea_orm::{DbBackend, Statement};

use crate::exec::{Arg, Prepared, Sql};

/// The backend a statement was rendered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Backend {
    Postgres,
    Sqlite,
    /// MySQL, and any backend SeaORM adds later.
    MySql,
}

impl Backend {
    const COUNT: usize = 3;

    pub(crate) fn of(backend: DbBackend) -> Self {
        match backend {
            DbBackend::Postgres => Self::Postgres,
            DbBackend::Sqlite => Self::Sqlite,
            _ => Self::MySql,
        }
    }
}

/// Which soft-deleted rows a read sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Deleted {
    Exclude,
    Include,
    Only,
}

impl Deleted {
    const COUNT: usize = 3;
}

/// What decides the text of a read of one entity: backend, deleted-row mode and whether a business filter
/// is present.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ReadKey {
    pub(crate) backend: Backend,
    pub(crate) deleted: Deleted,
    pub(crate) scoped: bool,
}

impl ReadKey {
    /// How many distinct keys there are: the size of the per-entity slot arrays.
    pub(crate) const COUNT: usize = Backend::COUNT * Deleted::COUNT * 2;

    /// This key's slot, in `0..COUNT`.
    fn slot(self) -> usize {
        (self.backend as usize * Deleted::COUNT + self.deleted as usize) * 2 + usize::from(self.scoped)
    }
}

/// A shape cached in the map (those with more variants than fit a fixed array).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Shape {
    /// `list_by(column, value, limit)`, the column by its position in `Column::iter()`.
    ListBy { read: ReadKey, column: usize },
    /// `update` of the columns in `set` (bit `i` = the `i`-th column of `Column::iter()`).
    Update {
        backend: Backend,
        scoped: bool,
        set: u64,
    },
}

/// Where a per-call value goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Param {
    /// The scope's business.
    Business,
    /// The row id.
    Id,
    /// The version the caller read.
    Version,
    /// The time stamped by this write.
    Now,
    /// The actor stamped by this write.
    Actor,
    /// The caller's `n`-th value (a filter value, a `SET` value).
    Value(usize),
    /// A row limit.
    Limit,
}

/// A bound position of a cached statement.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Slot {
    Param(Param),
    Const(Arg),
}

/// A statement rendered once: its SQL and what each bound position takes.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) sql: Arc<str>,
    pub(crate) slots: Box<[Slot]>,
}

/// The first sentinel: far from any constant a shape uses (`1`, a `LIMIT`).
const SENTINEL_BASE: i64 = 0x5e17_1e00_0000_0000;

/// The placeholder of the `k`-th per-call value while a shape is rendered.
pub(crate) fn sentinel(k: usize) -> Value {
    Value::BigInt(Some(SENTINEL_BASE + k as i64))
}

/// The same placeholder where sea-query takes a `u64` (`LIMIT`), which it renders as an unsigned value.
pub(crate) fn sentinel_u64(k: usize) -> u64 {
    SENTINEL_BASE.unsigned_abs() + k as u64
}

impl Cached {
    /// Reads the slots off a statement rendered with `sentinel(k)` for `params[k]`. `None` when a sentinel
    /// is missing or repeated: that shape is then not cached.
    pub(crate) fn from_rendered(stmt: Statement, params: &[Param]) -> Option<Self> {
        let mut seen = vec![0usize; params.len()];
        let slots = stmt
            .values
            .map(|v| v.0)
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                let k = match v {
                    Value::BigInt(Some(n)) if n >= SENTINEL_BASE => usize::try_from(n - SENTINEL_BASE).ok(),
                    Value::BigUnsigned(Some(n)) if n >= SENTINEL_BASE.unsigned_abs() => {
                        usize::try_from(n - SENTINEL_BASE.unsigned_abs()).ok()
                    }
                    _ => None,
                };
                match k.and_then(|k| params.get(k).map(|p| (k, *p))) {
                    Some((k, p)) => {
                        seen[k] += 1;
                        Slot::Param(p)
                    }
                    None => Slot::Const(Arg::from_value(v)),
                }
            })
            .collect();
        seen.iter().all(|n| *n == 1).then(|| Self {
            sql: stmt.sql.into(),
            slots,
        })
    }

    /// The 1-based placeholder number of `p`, for SQL written around the rendered statement.
    pub(crate) fn placeholder(&self, p: Param) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| *s == Slot::Param(p))
            .map(|i| i + 1)
    }

    /// The same slots under other SQL text (the rendered statement wrapped in more SQL that only reuses its
    /// placeholders).
    pub(crate) fn with_sql(&self, sql: String) -> Self {
        Self {
            sql: sql.into(),
            slots: self.slots.clone(),
        }
    }

    /// The statement for one call: each slot takes `value(param)` or its constant.
    pub(crate) fn bind(&self, backend: DbBackend, mut value: impl FnMut(Param) -> Arg) -> Prepared {
        Prepared {
            backend,
            sql: Sql::Shared(self.sql.clone()),
            args: self
                .slots
                .iter()
                .map(|s| match s {
                    Slot::Param(p) => value(*p),
                    Slot::Const(a) => a.clone(),
                })
                .collect(),
        }
    }
}

type Once = OnceLock<Option<Cached>>;

/// The statements of one entity (one `static` per entity, generated by `#[behaviour]`).
#[derive(Debug)]
pub struct StatementCache {
    find_by_id: [Once; ReadKey::COUNT],
    list: [Once; ReadKey::COUNT],
    shapes: RwLock<BTreeMap<Shape, Arc<Cached>>>,
    positional: OnceLock<bool>,
}

impl StatementCache {
    /// An empty cache, for the `static` that `#[behaviour]` generates.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self {
            find_by_id: [const { OnceLock::new() }; ReadKey::COUNT],
            list: [const { OnceLock::new() }; ReadKey::COUNT],
            shapes: RwLock::new(BTreeMap::new()),
            positional: OnceLock::new(),
        }
    }

    /// The `find_by_id` statement for `key`, rendered by `render` the first time.
    pub(crate) fn find_by_id(
        &self,
        key: ReadKey,
        render: impl FnOnce() -> Option<Cached>,
    ) -> Option<&Cached> {
        self.find_by_id[key.slot()].get_or_init(render).as_ref()
    }

    /// The `list` statement for `key`, rendered by `render` the first time.
    pub(crate) fn list(&self, key: ReadKey, render: impl FnOnce() -> Option<Cached>) -> Option<&Cached> {
        self.list[key.slot()].get_or_init(render).as_ref()
    }

    /// The statement of `shape`, rendered by `render` the first time (not kept when `render` gives `None`).
    pub(crate) fn shape(&self, shape: Shape, render: impl FnOnce() -> Option<Cached>) -> Option<Arc<Cached>> {
        if let Ok(map) = self.shapes.read()
            && let Some(c) = map.get(&shape)
        {
            return Some(c.clone());
        }
        let rendered = Arc::new(render()?);
        if let Ok(mut map) = self.shapes.write() {
            return Some(map.entry(shape).or_insert(rendered).clone());
        }
        Some(rendered)
    }

    /// Whether rows can be decoded by position (checked once per entity by `check`).
    pub(crate) fn positional(&self, check: impl FnOnce() -> bool) -> bool {
        *self.positional.get_or_init(check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_read_key_has_its_own_slot() {
        let mut slots = std::collections::BTreeSet::new();
        for backend in [Backend::Postgres, Backend::Sqlite, Backend::MySql] {
            for deleted in [Deleted::Exclude, Deleted::Include, Deleted::Only] {
                for scoped in [false, true] {
                    let s = ReadKey {
                        backend,
                        deleted,
                        scoped,
                    }
                    .slot();
                    assert!(s < ReadKey::COUNT);
                    assert!(slots.insert(s), "slot {s} used twice");
                }
            }
        }
        assert_eq!(slots.len(), ReadKey::COUNT);
    }

    fn rendered(values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(DbBackend::Postgres, "SELECT", values)
    }

    #[test]
    fn slots_come_from_sentinels_and_constants_stay() {
        let params = [Param::Business, Param::Id];
        let c = Cached::from_rendered(
            rendered(vec![sentinel(0), sentinel(1), Value::BigUnsigned(Some(1))]),
            &params,
        )
        .expect("each sentinel once");
        assert_eq!(
            &*c.slots,
            &[
                Slot::Param(Param::Business),
                Slot::Param(Param::Id),
                Slot::Const(Arg::I64(1))
            ]
        );
        assert_eq!(c.placeholder(Param::Id), Some(2));
    }

    #[test]
    fn a_rendering_that_loses_or_repeats_a_sentinel_is_not_cached() {
        let params = [Param::Business, Param::Id];
        assert!(Cached::from_rendered(rendered(vec![sentinel(0)]), &params).is_none());
        assert!(
            Cached::from_rendered(rendered(vec![sentinel(0), sentinel(0), sentinel(1)]), &params).is_none()
        );
    }
}
