//! Inserts, the versioned update, deletes and restores, with the rule on behaviour-owned columns.
//!
//! The update is a cached statement per set of written columns. On PostgreSQL a versioned update also
//! answers why it matched no row in the same round trip: the `UPDATE` runs in a CTE, and only when it
//! updated nothing does a scalar subquery read the row's version (PostgreSQL skips the subquery on a hit).
//! No row visible in the scope means [`EntityError::NotFound`], another version means
//! [`EntityError::StaleVersion`]. The subquery reads the statement's snapshot: when that still shows the
//! version the caller expected, the row changed while the statement waited for its lock (READ COMMITTED:
//! the update re-checked the newer row and missed), so the version found is reported as `expected + 1`,
//! the version that concurrent change produced. Neither a second read nor a locking read (`FOR KEY SHARE`,
//! which writes a row lock and forces a commit flush on every miss: 16 tasks racing on one row ran at 0.62x
//! the raw loop with it) is worth an exact figure that is stale when it arrives. SQLite has no `UPDATE` in
//! a CTE: there a miss is followed by a read.

use sea_orm::prelude::DateTimeUtc;
use sea_orm::sea_query::{Expr, ExprTrait, IntoIden, Query as SqlQuery, Value, ValueType};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, DbBackend, IdenStatic, Iterable, ModelTrait, QueryFilter,
    QueryTrait, UpdateMany,
};
use uuid::Uuid;

use super::read::Sentinels;
use super::{Repo, decode, now, quoted, scope_condition};
use crate::behaviour::{Behaviours, OwnedColumn, SoftDeletable};
use crate::cache::{Backend, Cached, Deleted, Param, Shape};
use crate::error::EntityError;
use crate::exec::{Arg, Executor, OpKind, Pending, Prepared, Want};

/// Which write path asks whether a caller may write a behaviour-owned column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WritePath {
    Insert,
    Update,
    Bulk,
}

/// The caller's value of `col` when the active model `Set` it.
fn set_value<E: Behaviours>(am: &E::ActiveModel, col: E::Column) -> Option<Value> {
    match am.get(col) {
        ActiveValue::Set(v) => Some(v),
        ActiveValue::Unchanged(_) | ActiveValue::NotSet => None,
    }
}

fn uuid_of(v: ActiveValue<Value>) -> Option<Uuid> {
    match v {
        ActiveValue::Set(v) | ActiveValue::Unchanged(v) => <Uuid as ValueType>::try_from(v).ok(),
        ActiveValue::NotSet => None,
    }
}

/// The error for a caller's write of `owned`.
pub(super) fn owned_error<E: Behaviours>(owned: &OwnedColumn<E::Column>) -> EntityError {
    let hint = match owned.name {
        "deleted_at" => "soft_delete, restore and force_delete change it",
        "business_id" => "the context's business decides it",
        "version" => "every update checks and bumps it",
        "created_by" | "updated_by" => "each write stamps the context's actor",
        "created_at" | "updated_at" => "each write stamps its time",
        _ => "an insert may choose it; nothing changes it",
    };
    EntityError::OwnedColumn {
        entity: E::TABLE,
        column: owned.name,
        behaviour: owned.behaviour,
        hint,
    }
}

/// The owned-column entry of `col`, if a behaviour owns it.
pub(super) fn owned<E: Behaviours>(col: E::Column) -> Option<&'static OwnedColumn<E::Column>> {
    E::owned_columns().iter().find(|o| o.name == col.as_str())
}

/// The rule of the module docs of [`crate::repo`]: refuses a caller's `Set` of a behaviour-owned column on
/// `path`, except the ones that say which row the write is about.
pub(super) fn check_owned<E: Behaviours>(
    am: &E::ActiveModel,
    path: WritePath,
    scope: Option<Uuid>,
) -> Result<(), EntityError> {
    for o in E::owned_columns() {
        let Some(value) = set_value::<E>(am, o.column) else {
            continue;
        };
        let allowed = match (o.name, path) {
            ("id", WritePath::Insert | WritePath::Update) | ("version", WritePath::Update) => true,
            ("business_id", WritePath::Insert | WritePath::Update) => {
                let found = <Uuid as ValueType>::try_from(value).ok();
                match (scope, found) {
                    (Some(scope), Some(found)) if found != scope => {
                        return Err(EntityError::CrossBusiness {
                            entity: E::TABLE,
                            scope,
                            found,
                        });
                    }
                    (Some(_), _) => true,
                    // Under `all_businesses` an insert must say which business; an update may not move a row.
                    (None, _) => path == WritePath::Insert,
                }
            }
            _ => false,
        };
        if !allowed {
            return Err(owned_error::<E>(o));
        }
    }
    Ok(())
}

/// A write of one row by id: [`EntityError::NotFound`] when it changed none.
fn found_one<E: Behaviours>(changed: u64, id: Uuid) -> Result<(), EntityError> {
    match changed {
        0 => Err(EntityError::NotFound { entity: E::TABLE, id }),
        _ => Ok(()),
    }
}

/// `(column, value)` of what an active model writes, for naming a violated foreign key.
fn written<E: Behaviours>(am: &E::ActiveModel) -> Vec<(&'static str, Value)> {
    E::Column::iter()
        .filter_map(|c| match am.get(c) {
            ActiveValue::Set(v) | ActiveValue::Unchanged(v) => Some((c.as_str(), v)),
            ActiveValue::NotSet => None,
        })
        .collect()
}

impl<E, C> Repo<'_, E, C>
where
    E: Behaviours,
    C: Executor,
{
    fn stamp_insert(&self, am: &mut E::ActiveModel, now: DateTimeUtc) -> Result<(), EntityError> {
        check_owned::<E>(am, WritePath::Insert, self.business)?;
        if am.is_not_set(E::id_column()) {
            am.set(E::id_column(), Uuid::now_v7().into());
        }
        am.set(E::created_at_column(), now.into());
        am.set(E::updated_at_column(), now.into());
        if let Some((created_by, updated_by)) = E::audit_columns() {
            am.set(created_by, self.ctx.actor_id().into());
            am.set(updated_by, self.ctx.actor_id().into());
        }
        if let Some(col) = E::business_id_column() {
            match (self.business, uuid_of(am.get(col))) {
                (Some(scope), _) => am.set(col, scope.into()),
                (None, Some(_)) => {}
                (None, None) => return Err(EntityError::MissingBusiness { entity: E::TABLE }),
            }
        }
        if let Some(col) = E::version_column() {
            am.set(col, 1i32.into());
        }
        if let Some(col) = E::deleted_at_column() {
            am.not_set(col);
        }
        Ok(())
    }

    /// Inserts a row: id (v7 unless given), timestamps, actor, the scope's business and version 1.
    ///
    /// # Errors
    /// [`EntityError::CrossBusiness`] when the row names another business; [`EntityError::OwnedColumn`]
    /// when it sets another behaviour column; [`EntityError::UniqueViolation`] /
    /// [`EntityError::ForeignKeyViolation`]; database errors.
    pub async fn insert(&self, am: E::ActiveModel) -> Result<E::Model, EntityError> {
        let mut rows = self.insert_many([am]).await?;
        rows.pop()
            .ok_or_else(|| EntityError::Db(sea_orm::DbErr::RecordNotInserted))
    }

    /// Inserts many rows in one statement, stamped as [`Repo::insert`] does.
    ///
    /// # Errors
    /// As [`Repo::insert`]; nothing is inserted when any row is rejected.
    pub async fn insert_many(
        &self,
        rows: impl IntoIterator<Item = E::ActiveModel>,
    ) -> Result<Vec<E::Model>, EntityError> {
        let now = now();
        let mut stamped = Vec::new();
        let mut values = Vec::new();
        for mut am in rows {
            self.stamp_insert(&mut am, now)?;
            values.extend(written::<E>(&am));
            stamped.push(am);
        }
        if stamped.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = E::insert_many(stamped).into_query();
        q.returning(SqlQuery::returning().columns(E::Column::iter()));
        let stmt = Prepared::from_statement(self.backend().build(&q));
        let rows = self.run(OpKind::Insert, stmt, Want::All, &values).await?.all();
        rows.iter().map(decode::<E>).collect()
    }

    /// Updates one row from the columns `Set` on `am`, checking its version.
    ///
    /// `am` must carry the id and, for versioned entities, the version it was read at (as it does when it
    /// comes from `model.into_active_model()`). The update always runs, even when no column changed, so the
    /// version is checked and bumped.
    ///
    /// # Errors
    /// [`EntityError::StaleVersion`] when the row moved on; [`EntityError::NotFound`] when it is absent,
    /// deleted or outside the scope; [`EntityError::CrossBusiness`] when `am` moves it to another business;
    /// [`EntityError::OwnedColumn`] when `am` sets another behaviour column.
    pub async fn update(&self, am: E::ActiveModel) -> Result<E::Model, EntityError> {
        let id = uuid_of(am.get(E::id_column())).ok_or(EntityError::MissingId { entity: E::TABLE })?;
        let expected = match E::version_column() {
            Some(col) => match am.get(col) {
                ActiveValue::Set(v) | ActiveValue::Unchanged(v) => Some(
                    <i32 as ValueType>::try_from(v)
                        .map_err(|_| EntityError::MissingVersion { entity: E::TABLE })?,
                ),
                ActiveValue::NotSet => return Err(EntityError::MissingVersion { entity: E::TABLE }),
            },
            None => None,
        };
        check_owned::<E>(&am, WritePath::Update, self.business)?;
        // What the caller writes: its `Set` columns, less the ones that only say which row it is.
        let mut mask = 0u64;
        let mut set = Vec::new();
        for (i, col) in E::Column::iter().enumerate() {
            if owned::<E>(col).is_none()
                && let Some(v) = set_value::<E>(&am, col)
            {
                mask |= 1u64
                    .checked_shl(<u32 as TryFrom<usize>>::try_from(i).unwrap_or(u32::MAX))
                    .unwrap_or(0);
                set.push((col, v));
            }
        }
        let backend = self.backend();
        let versioned_pg = backend == DbBackend::Postgres && expected.is_some();
        let shape = (E::Column::iter().count() <= 64).then_some(Shape::Update {
            backend: Backend::of(backend),
            scoped: self.business.is_some(),
            set: mask,
        });
        let cols: Vec<E::Column> = set.iter().map(|(c, _)| *c).collect();
        let cached = shape.and_then(|shape| {
            E::statement_cache().shape(shape, || self.render_update(&cols, backend, versioned_pg))
        });
        let Some(cached) = cached else {
            return self.update_uncached(id, expected, set).await;
        };
        let now = now();
        let stmt = cached.bind(backend, |p| match p {
            Param::Value(k) => set
                .get(k)
                .map_or(Arg::Value(Value::Int(None)), |(_, v)| Arg::from_value(v.clone())),
            Param::Now => Arg::Time(now),
            Param::Actor => Arg::Uuid(self.ctx.actor_id()),
            Param::Business => Arg::Uuid(self.business),
            Param::Id => Arg::Uuid(Some(id)),
            Param::Version => Arg::I32(expected.unwrap_or_default()),
            Param::Limit => Arg::I64(1),
        });
        let written: Vec<(&'static str, Value)> = set.iter().map(|(c, v)| (c.as_str(), v.clone())).collect();
        let (out, mut timing) = self
            .run_pending(OpKind::Update, stmt, Want::One, &written)
            .await?;
        match out.one() {
            Some(row) if versioned_pg => {
                let hit: Option<Uuid> = row.try_get("", E::id_column().as_str())?;
                if hit.is_some() {
                    return decode::<E>(&row);
                }
                let found: Option<i32> = row.try_get("", FOUND)?;
                Err(match (found, expected) {
                    (Some(found), Some(expected)) => {
                        timing.stale_version();
                        EntityError::StaleVersion {
                            entity: E::TABLE,
                            id,
                            expected,
                            found: if found == expected {
                                expected.saturating_add(1)
                            } else {
                                found
                            },
                        }
                    }
                    _ => EntityError::NotFound { entity: E::TABLE, id },
                })
            }
            Some(row) => decode::<E>(&row),
            None => Err(self.diagnosed(id, expected, &mut timing).await),
        }
    }

    /// Renders the update of `cols` with sentinels; on PostgreSQL for a versioned entity, wrapped so a miss
    /// reports the current version (see the module docs).
    fn render_update(&self, cols: &[E::Column], backend: DbBackend, versioned_pg: bool) -> Option<Cached> {
        let table = E::default().into_iden();
        let mut s = Sentinels::default();
        let mut q = SqlQuery::update();
        q.table(table.clone());
        for (k, col) in cols.iter().enumerate() {
            q.value(*col, col.save_as(Expr::val(s.next(Param::Value(k)))));
        }
        q.value(E::updated_at_column(), Expr::val(s.next(Param::Now)));
        if let Some((_, updated_by)) = E::audit_columns() {
            q.value(updated_by, Expr::val(s.next(Param::Actor)));
        }
        if let Some(col) = E::version_column() {
            q.value(col, Expr::col(col).add(1));
        }
        let business = self.business.map(|_| s.next(Param::Business));
        q.cond_where(scope_condition::<E>(table.clone(), business, Deleted::Exclude))
            .and_where(Expr::col((table.clone(), E::id_column())).eq(s.next(Param::Id)));
        if let Some(col) = E::version_column() {
            q.and_where(Expr::col((table, col)).eq(s.next(Param::Version)));
        }
        q.returning(SqlQuery::returning().columns(E::Column::iter()));
        let cached = Cached::from_rendered(backend.build(&q), &s.params)?;
        if !versioned_pg {
            return Some(cached);
        }
        let version = E::version_column()?;
        let (t, id) = (quoted(E::TABLE), quoted(E::id_column().as_str()));
        let mut current = format!("{id} = ${}", cached.placeholder(Param::Id)?);
        if let Some(col) = E::business_id_column() {
            current += &format!(
                " AND {} = ${}",
                quoted(col.as_str()),
                cached.placeholder(Param::Business)?
            );
        }
        if let Some(col) = E::deleted_at_column() {
            current += &format!(" AND {} IS NULL", quoted(col.as_str()));
        }
        let sql = format!(
            "WITH {u} AS ({update}) SELECT {u}.*, CASE WHEN {u}.{id} IS NULL THEN \
             (SELECT {version} FROM {t} WHERE {current}) END AS {found} \
             FROM (SELECT 1) AS {one} LEFT JOIN {u} ON TRUE",
            u = quoted(UPDATED),
            update = cached.sql,
            version = quoted(version.as_str()),
            found = quoted(FOUND),
            one = quoted(ONE),
        );
        Some(cached.with_sql(sql))
    }

    /// The update of an entity too wide for the cached shapes (more than 64 columns), rendered per call.
    async fn update_uncached(
        &self,
        id: Uuid,
        expected: Option<i32>,
        set: Vec<(E::Column, Value)>,
    ) -> Result<E::Model, EntityError> {
        let mut q = E::update_many();
        for (col, v) in &set {
            q = q.col_expr(*col, col.save_as(Expr::val(v.clone())));
        }
        let mut q = self.stamp_update(q, now()).filter(E::id_column().eq(id));
        if let (Some(col), Some(v)) = (E::version_column(), expected) {
            q = q.filter(col.eq(v));
        }
        let mut q = q.into_query();
        q.returning(SqlQuery::returning().columns(E::Column::iter()));
        let written: Vec<(&'static str, Value)> = set.iter().map(|(c, v)| (c.as_str(), v.clone())).collect();
        let stmt = Prepared::from_statement(self.backend().build(&q));
        let (out, mut timing) = self
            .run_pending(OpKind::Update, stmt, Want::One, &written)
            .await?;
        match out.one() {
            Some(row) => decode::<E>(&row),
            None => Err(self.diagnosed(id, expected, &mut timing).await),
        }
    }

    /// [`Self::diagnose`], marking the update's timing stale when it was.
    async fn diagnosed(&self, id: Uuid, expected: Option<i32>, timing: &mut Pending<'_>) -> EntityError {
        let e = self.diagnose(id, expected).await;
        if e.is_stale() {
            timing.stale_version();
        }
        e
    }

    /// Why an update of `id` matched no row, when the update could not say: stale version if the row is
    /// visible, not found otherwise.
    async fn diagnose(&self, id: Uuid, expected: Option<i32>) -> EntityError {
        let current = match self.find_by_id(id).await {
            Ok(found) => found,
            Err(e) => return e,
        };
        match (current, E::version_column(), expected) {
            (Some(model), Some(col), Some(expected)) => {
                let found = <i32 as ValueType>::try_from(model.get(col)).unwrap_or_default();
                EntityError::StaleVersion {
                    entity: E::TABLE,
                    id,
                    expected,
                    found,
                }
            }
            _ => EntityError::NotFound { entity: E::TABLE, id },
        }
    }

    /// Adds the stamps every update carries: `updated_at`, `updated_by`, `version + 1`, and the scope.
    pub(super) fn stamp_update(&self, mut q: UpdateMany<E>, now: DateTimeUtc) -> UpdateMany<E> {
        q = q.col_expr(E::updated_at_column(), Expr::val(now));
        if let Some((_, updated_by)) = E::audit_columns() {
            q = q.col_expr(updated_by, Expr::val(self.ctx.actor_id()));
        }
        if let Some(col) = E::version_column() {
            q = q.col_expr(col, Expr::col(col).add(1));
        }
        q.filter(self.condition())
    }

    /// Runs a stamped update or delete and returns how many rows it changed.
    pub(super) async fn exec_affected(&self, kind: OpKind, q: impl QueryTrait) -> Result<u64, EntityError> {
        let stmt = Prepared::from_statement(q.build(self.backend()));
        Ok(self.run(kind, stmt, Want::Affected, &[]).await?.affected())
    }

    /// Deletes one row: soft for soft-deletable entities, hard otherwise.
    ///
    /// # Errors
    /// [`EntityError::NotFound`] when no visible row has this id.
    pub async fn delete(&self, id: Uuid) -> Result<(), EntityError> {
        found_one::<E>(self.delete_many(E::id_column().eq(id)).await?, id)
    }

    /// Deletes the visible rows matching `filter`: soft for soft-deletable entities, hard otherwise.
    /// Returns how many rows it deleted.
    ///
    /// # Errors
    /// Database errors.
    pub async fn delete_many(
        &self,
        filter: impl sea_orm::sea_query::IntoCondition,
    ) -> Result<u64, EntityError> {
        match E::deleted_at_column() {
            Some(col) => {
                let now = now();
                let live = self.with_deleted_mode(Deleted::Exclude);
                let q = live.stamp_update(E::update_many().col_expr(col, Expr::val(now)), now);
                self.exec_affected(OpKind::Update, q.filter(filter)).await
            }
            None => self.force_delete_many(filter).await,
        }
    }

    /// Removes one row for good, deleted or not (within the scope).
    ///
    /// # Errors
    /// [`EntityError::NotFound`] when no row in scope has this id.
    pub async fn force_delete(&self, id: Uuid) -> Result<(), EntityError> {
        found_one::<E>(self.force_delete_many(E::id_column().eq(id)).await?, id)
    }

    /// Removes every row in scope matching `filter` for good, deleted or not.
    ///
    /// # Errors
    /// Database errors; [`EntityError::ForeignKeyViolation`] when other rows still refer to one.
    pub async fn force_delete_many(
        &self,
        filter: impl sea_orm::sea_query::IntoCondition,
    ) -> Result<u64, EntityError> {
        let all = self.with_deleted_mode(Deleted::Include);
        let q = E::delete_many().filter(all.condition()).filter(filter);
        self.exec_affected(OpKind::Delete, q).await
    }
}

impl<E, C> Repo<'_, E, C>
where
    E: SoftDeletable + Behaviours,
    C: Executor,
{
    /// The same repository, seeing deleted rows too.
    #[must_use]
    pub fn with_deleted(&self) -> Self {
        self.with_deleted_mode(Deleted::Include)
    }

    /// The same repository, seeing deleted rows only.
    #[must_use]
    pub fn only_deleted(&self) -> Self {
        self.with_deleted_mode(Deleted::Only)
    }

    /// Marks one live row deleted.
    ///
    /// # Errors
    /// [`EntityError::NotFound`] when no live row in scope has this id.
    pub async fn soft_delete(&self, id: Uuid) -> Result<(), EntityError> {
        self.delete(id).await
    }

    /// Brings back one deleted row.
    ///
    /// # Errors
    /// [`EntityError::NotFound`] when no deleted row in scope has this id.
    pub async fn restore(&self, id: Uuid) -> Result<E::Model, EntityError> {
        let deleted = self.only_deleted();
        let col = <E as SoftDeletable>::deleted_at_column();
        let q = deleted
            .stamp_update(
                E::update_many().col_expr(col, Expr::val(Option::<DateTimeUtc>::None)),
                now(),
            )
            .filter(E::id_column().eq(id));
        let mut q = q.into_query();
        q.returning(SqlQuery::returning().columns(E::Column::iter()));
        let stmt = Prepared::from_statement(self.backend().build(&q));
        match self.run(OpKind::Update, stmt, Want::One, &[]).await?.one() {
            Some(row) => decode::<E>(&row),
            None => Err(EntityError::NotFound { entity: E::TABLE, id }),
        }
    }
}

/// The CTE that holds the updated row.
const UPDATED: &str = "__collex_updated";
/// The column with the current version after a miss.
const FOUND: &str = "__collex_found";
/// The one-row source the update is left-joined to, so a miss still returns a row.
const ONE: &str = "__collex_one";
