//! `Repo`: the default read and write path for entities with behaviours.
//!
//! Every query built here is confined to the context's business and skips soft-deleted rows; every write
//! stamps ids, timestamps, the actor and the version. Leaving a default takes a visibly named call
//! (`with_deleted`, `only_deleted`, `force_delete`, `Ctx::all_businesses`).
//!
//! Writes go through `UpdateMany`/`DeleteMany` with explicit filters rather than `ActiveModel::update`,
//! because SeaORM's hooks cannot add the `version = $n` and `business_id = $b` conditions and skip no-op
//! updates entirely (`Updater::is_noop`), which would skip the version check with them.

use std::marker::PhantomData;

use chrono::{SubsecRound, Utc};
use sea_orm::prelude::DateTimeUtc;
use sea_orm::sea_query::{Expr, ExprTrait, ValueType};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait,
    FromQueryResult, LoaderTrait, ModelTrait, QueryFilter, QuerySelect, QueryTrait, Related, Select,
    Statement, UpdateMany, Value,
};
use uuid::Uuid;

use crate::behaviour::{Behaviours, CachedStatement, Param, SoftDeletable};
use crate::context::{BusinessScope, Ctx};
use crate::error::EntityError;

/// The current time at the precision PostgreSQL stores (microseconds), so a stamped value round-trips.
pub fn now() -> DateTimeUtc {
    Utc::now().trunc_subsecs(6)
}

/// Which soft-deleted rows a read sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deleted {
    Exclude,
    Include,
    Only,
}

/// Scoped, soft-delete-aware, version-checking access to one entity.
///
/// ```ignore
/// let users = users::Entity::repo(&db, Ctx::new().actor(me).business(shop))?;
/// let u = users.get(id).await?;
/// ```
pub struct Repo<'c, E, C> {
    db: &'c C,
    ctx: Ctx,
    business: Option<Uuid>,
    deleted: Deleted,
    _entity: PhantomData<E>,
}

impl<E, C> Clone for Repo<'_, E, C> {
    fn clone(&self) -> Self {
        Self {
            db: self.db,
            ctx: self.ctx,
            business: self.business,
            deleted: self.deleted,
            _entity: PhantomData,
        }
    }
}

/// Opens a [`Repo`] from the entity type: `users::Entity::repo(&db, ctx)`.
pub trait RepoExt: Behaviours {
    /// A repository for this entity in `ctx`.
    ///
    /// # Errors
    /// [`EntityError::MissingScope`] when the entity is business-scoped and `ctx` names no business.
    fn repo<C: ConnectionTrait>(db: &C, ctx: Ctx) -> Result<Repo<'_, Self, C>, EntityError> {
        Repo::new(db, ctx)
    }
}

impl<E: Behaviours> RepoExt for E {}

fn uuid_of(v: ActiveValue<Value>) -> Option<Uuid> {
    match v {
        ActiveValue::Set(v) | ActiveValue::Unchanged(v) => <Uuid as ValueType>::try_from(v).ok(),
        ActiveValue::NotSet => None,
    }
}

impl<'c, E, C> Repo<'c, E, C>
where
    E: Behaviours,
    C: ConnectionTrait,
{
    /// A repository for `E` in `ctx`.
    ///
    /// # Errors
    /// [`EntityError::MissingScope`] when `E` is business-scoped and `ctx` names no business.
    pub fn new(db: &'c C, ctx: Ctx) -> Result<Self, EntityError> {
        let business = match (E::business_id_column(), ctx.scope()) {
            (None, _) | (Some(_), BusinessScope::All) => None,
            (Some(_), BusinessScope::Business(b)) => Some(b),
            (Some(_), BusinessScope::Unset) => return Err(EntityError::MissingScope { entity: E::TABLE }),
        };
        Ok(Self {
            db,
            ctx,
            business,
            deleted: Deleted::Exclude,
            _entity: PhantomData,
        })
    }

    /// The context this repository acts in.
    pub fn ctx(&self) -> Ctx {
        self.ctx
    }

    /// The filter every read, update and delete of this repository carries: business scope and, by
    /// default, live rows only.
    pub fn condition(&self) -> Condition {
        let mut cond = Condition::all();
        if let (Some(col), Some(b)) = (E::business_id_column(), self.business) {
            cond = cond.add(col.eq(b));
        }
        if let Some(col) = E::deleted_at_column() {
            cond = match self.deleted {
                Deleted::Exclude => cond.add(col.is_null()),
                Deleted::Only => cond.add(col.is_not_null()),
                Deleted::Include => cond,
            };
        }
        cond
    }

    /// The default query: in scope, live rows. Chain SeaORM filters and ordering on it.
    pub fn find(&self) -> Select<E> {
        E::find().filter(self.condition())
    }

    /// The row with this id, if it is visible in this repository.
    ///
    /// # Errors
    /// Database errors.
    pub async fn find_by_id(&self, id: Uuid) -> Result<Option<E::Model>, EntityError> {
        let backend = self.db.get_database_backend();
        let slot = match backend {
            DbBackend::Postgres => 0,
            DbBackend::Sqlite => 1,
            _ => 2,
        } * 6
            + match self.deleted {
                Deleted::Exclude => 0,
                Deleted::Include => 1,
                Deleted::Only => 2,
            } * 2
            + usize::from(self.business.is_some());
        let Some(cell) = E::statement_cache().find_by_id(slot) else {
            return Ok(self.find().filter(E::id_column().eq(id)).one(self.db).await?);
        };
        let cached = cell.get_or_init(|| self.render_find_by_id(id, backend));
        let values = cached
            .params
            .iter()
            .map(|p| match p {
                Param::Business => self.business.into(),
                Param::Id => id.into(),
                Param::Const(v) => v.clone(),
            })
            .collect::<Vec<Value>>();
        let stmt = Statement::from_sql_and_values(backend, cached.sql.clone(), values);
        match self.db.query_one_raw(stmt).await? {
            Some(row) => Ok(Some(E::Model::from_query_result(&row, "")?)),
            None => Ok(None),
        }
    }

    /// Renders the statement `find().filter(id = ?).one()` builds, and records which bound value is the
    /// business, which the id and which a constant of the shape, so later calls only bind.
    fn render_find_by_id(&self, id: Uuid, backend: DbBackend) -> CachedStatement {
        let stmt = self.find().filter(E::id_column().eq(id)).limit(1).build(backend);
        let business: Value = self.business.into();
        let id_value: Value = id.into();
        let params = stmt
            .values
            .map(|v| v.0)
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                if self.business.is_some() && v == business {
                    Param::Business
                } else if v == id_value {
                    Param::Id
                } else {
                    Param::Const(v)
                }
            })
            .collect();
        CachedStatement {
            sql: stmt.sql,
            params,
        }
    }

    /// The row with this id.
    ///
    /// # Errors
    /// [`EntityError::NotFound`] when it is absent, deleted or outside the scope; database errors.
    pub async fn get(&self, id: Uuid) -> Result<E::Model, EntityError> {
        self.find_by_id(id)
            .await?
            .ok_or(EntityError::NotFound { entity: E::TABLE, id })
    }

    /// Every visible row.
    ///
    /// # Errors
    /// Database errors.
    pub async fn list(&self) -> Result<Vec<E::Model>, EntityError> {
        Ok(self.find().all(self.db).await?)
    }

    fn stamp_insert(&self, am: &mut E::ActiveModel, now: DateTimeUtc) -> Result<(), EntityError> {
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
            let given = uuid_of(am.get(col));
            match (self.business, given) {
                (Some(scope), Some(found)) if found != scope => {
                    return Err(EntityError::CrossBusiness {
                        entity: E::TABLE,
                        scope,
                        found,
                    });
                }
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
    /// [`EntityError::CrossBusiness`] when the row names another business; database errors.
    pub async fn insert(&self, mut am: E::ActiveModel) -> Result<E::Model, EntityError> {
        self.stamp_insert(&mut am, now())?;
        Ok(E::insert(am).exec_with_returning(self.db).await?)
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
        for mut am in rows {
            self.stamp_insert(&mut am, now)?;
            stamped.push(am);
        }
        if stamped.is_empty() {
            return Ok(Vec::new());
        }
        Ok(E::insert_many(stamped).exec_with_returning(self.db).await?)
    }

    /// Adds the stamps every update carries: `updated_at`, `updated_by`, `version + 1`.
    fn stamp_update(&self, mut q: UpdateMany<E>, now: DateTimeUtc) -> UpdateMany<E> {
        q = q.col_expr(E::updated_at_column(), Expr::val(now));
        if let Some((_, updated_by)) = E::audit_columns() {
            q = q.col_expr(updated_by, Expr::val(self.ctx.actor_id()));
        }
        if let Some(col) = E::version_column() {
            q = q.col_expr(col, Expr::col(col).add(1));
        }
        q.filter(self.condition())
    }

    /// Updates one row from the columns `Set` on `am`, checking its version.
    ///
    /// `am` must carry the id and, for versioned entities, the version it was read at (as it does when it
    /// comes from `model.into_active_model()`). The update always runs, even when no column changed, so the
    /// version is checked and bumped.
    ///
    /// # Errors
    /// [`EntityError::StaleVersion`] when the row moved on; [`EntityError::NotFound`] when it is absent,
    /// deleted or outside the scope; [`EntityError::CrossBusiness`] when `am` moves it to another business.
    pub async fn update(&self, mut am: E::ActiveModel) -> Result<E::Model, EntityError> {
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
        if let (Some(col), Some(scope)) = (E::business_id_column(), self.business)
            && let ActiveValue::Set(v) = am.get(col)
            && let Ok(found) = <Uuid as ValueType>::try_from(v)
            && found != scope
        {
            return Err(EntityError::CrossBusiness {
                entity: E::TABLE,
                scope,
                found,
            });
        }
        // Columns the behaviours own are not the caller's to write here.
        for col in [
            Some(E::id_column()),
            Some(E::created_at_column()),
            E::version_column(),
            E::deleted_at_column(),
        ]
        .into_iter()
        .flatten()
        {
            am.not_set(col);
        }
        if let Some((created_by, _)) = E::audit_columns() {
            am.not_set(created_by);
        }
        let mut q = self
            .stamp_update(E::update_many().set(am), now())
            .filter(E::id_column().eq(id));
        if let (Some(col), Some(v)) = (E::version_column(), expected) {
            q = q.filter(col.eq(v));
        }
        let mut rows = q.exec_with_returning(self.db).await?;
        match rows.pop() {
            Some(model) => Ok(model),
            None => Err(self.diagnose(id, expected).await),
        }
    }

    /// Why an update of `id` matched no row: stale version if the row is visible, not found otherwise.
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

    /// A bulk update of the visible rows: stamps `updated_at`, `updated_by` and `version + 1` on every
    /// row it changes. Add columns with [`BulkUpdate::set`] / [`BulkUpdate::col_expr`] and narrow it with
    /// [`BulkUpdate::filter`].
    pub fn update_many(&self) -> BulkUpdate<'c, E, C> {
        BulkUpdate {
            repo: self.clone(),
            query: E::update_many(),
        }
    }

    /// Deletes one row: soft for soft-deletable entities, hard otherwise.
    ///
    /// # Errors
    /// [`EntityError::NotFound`] when no visible row has this id.
    pub async fn delete(&self, id: Uuid) -> Result<(), EntityError> {
        let n = self.delete_many(E::id_column().eq(id)).await?;
        if n == 0 {
            Err(EntityError::NotFound { entity: E::TABLE, id })
        } else {
            Ok(())
        }
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
                let live = Self {
                    deleted: Deleted::Exclude,
                    ..self.clone()
                };
                let q = live.stamp_update(E::update_many().col_expr(col, Expr::val(now)), now);
                Ok(q.filter(filter).exec(self.db).await?.rows_affected)
            }
            None => self.force_delete_many(filter).await,
        }
    }

    /// Removes one row for good, deleted or not (within the scope).
    ///
    /// # Errors
    /// [`EntityError::NotFound`] when no row in scope has this id.
    pub async fn force_delete(&self, id: Uuid) -> Result<(), EntityError> {
        let n = self.force_delete_many(E::id_column().eq(id)).await?;
        if n == 0 {
            Err(EntityError::NotFound { entity: E::TABLE, id })
        } else {
            Ok(())
        }
    }

    /// Removes every row in scope matching `filter` for good, deleted or not.
    ///
    /// # Errors
    /// Database errors.
    pub async fn force_delete_many(
        &self,
        filter: impl sea_orm::sea_query::IntoCondition,
    ) -> Result<u64, EntityError> {
        let all = Self {
            deleted: Deleted::Include,
            ..self.clone()
        };
        Ok(E::delete_many()
            .filter(all.condition())
            .filter(filter)
            .exec(self.db)
            .await?
            .rows_affected)
    }

    /// The rows of `R` related to `model`, through `R`'s own default path (scope, live rows).
    ///
    /// # Errors
    /// [`EntityError::MissingScope`] when `R` is business-scoped and the context has no business.
    pub async fn find_related<R>(&self, model: &E::Model) -> Result<Vec<R::Model>, EntityError>
    where
        R: Behaviours,
        E: Related<R>,
    {
        let related = Repo::<R, C>::new(self.db, self.ctx)?;
        Ok(model
            .find_related(R::default())
            .filter(related.condition())
            .all(self.db)
            .await?)
    }

    /// For each of `models`, its related rows of `R` through `R`'s default path, in one query.
    ///
    /// # Errors
    /// As [`Repo::find_related`].
    pub async fn load_related<R>(&self, models: &[E::Model]) -> Result<Vec<Vec<R::Model>>, EntityError>
    where
        R: Behaviours,
        E: Related<R>,
    {
        let related = Repo::<R, C>::new(self.db, self.ctx)?;
        Ok(models.load_many(related.find(), self.db).await?)
    }
}

impl<E, C> Repo<'_, E, C>
where
    E: SoftDeletable + Behaviours,
    C: ConnectionTrait,
{
    /// The same repository, seeing deleted rows too.
    #[must_use]
    pub fn with_deleted(&self) -> Self {
        Self {
            deleted: Deleted::Include,
            ..self.clone()
        }
    }

    /// The same repository, seeing deleted rows only.
    #[must_use]
    pub fn only_deleted(&self) -> Self {
        Self {
            deleted: Deleted::Only,
            ..self.clone()
        }
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
        let mut rows = q.exec_with_returning(self.db).await?;
        rows.pop().ok_or(EntityError::NotFound { entity: E::TABLE, id })
    }
}

/// A bulk update through a [`Repo`]; see [`Repo::update_many`].
pub struct BulkUpdate<'c, E: EntityTrait, C> {
    repo: Repo<'c, E, C>,
    query: UpdateMany<E>,
}

impl<E, C> BulkUpdate<'_, E, C>
where
    E: Behaviours,
    C: ConnectionTrait,
{
    /// Sets the columns that are `Set` on `am` (behaviour columns excepted).
    #[must_use]
    pub fn set(mut self, mut am: E::ActiveModel) -> Self {
        for col in [
            Some(E::id_column()),
            Some(E::created_at_column()),
            Some(E::updated_at_column()),
            E::version_column(),
            E::deleted_at_column(),
            E::business_id_column(),
        ]
        .into_iter()
        .flatten()
        {
            am.not_set(col);
        }
        self.query = self.query.set(am);
        self
    }

    /// Sets a column to an expression.
    #[must_use]
    pub fn col_expr(mut self, col: E::Column, expr: impl Into<sea_orm::sea_query::SimpleExpr>) -> Self {
        self.query = self.query.col_expr(col, expr.into());
        self
    }

    /// Narrows the rows updated.
    #[must_use]
    pub fn filter(mut self, filter: impl sea_orm::sea_query::IntoCondition) -> Self {
        self.query = self.query.filter(filter);
        self
    }

    /// Runs the update; returns how many rows changed.
    ///
    /// # Errors
    /// Database errors.
    pub async fn exec(self) -> Result<u64, EntityError> {
        let q = self.repo.stamp_update(self.query, now());
        Ok(q.exec(self.repo.db).await?.rows_affected)
    }
}
