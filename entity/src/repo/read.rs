//! Reads by id and lists: the shapes that repeat are cached statements (see [`crate::cache`]), bound per
//! call and decoded by position.

use sea_orm::sea_query::{Expr, ExprTrait, IntoIden, Value};
use sea_orm::{IdenStatic, Iterable, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select};
use uuid::Uuid;

use super::{Repo, decode, scope_condition};
use crate::behaviour::Behaviours;
use crate::cache::{Cached, Param, Shape, sentinel, sentinel_u64};
use crate::error::EntityError;
use crate::exec::{Arg, Executor, OpKind, Prepared, Want};

/// Sentinels handed out in order while a shape is rendered, with the parameter each one stands for.
#[derive(Default)]
pub(super) struct Sentinels {
    pub(super) params: Vec<Param>,
}

impl Sentinels {
    /// The placeholder of `p`, the next per-call value.
    pub(super) fn next(&mut self, p: Param) -> Value {
        self.params.push(p);
        sentinel(self.params.len() - 1)
    }

    /// The placeholder of a `LIMIT`, the next per-call value.
    pub(super) fn next_limit(&mut self) -> u64 {
        self.params.push(Param::Limit);
        sentinel_u64(self.params.len() - 1)
    }
}

impl<E, C> Repo<'_, E, C>
where
    E: Behaviours,
    C: Executor,
{
    /// The visible rows of `E` (scope and deleted-row mode), the business bound as `business`.
    fn select_visible(&self, business: Option<Value>) -> Select<E> {
        E::find().filter(scope_condition::<E>(
            E::default().into_iden(),
            business,
            self.deleted,
        ))
    }

    /// The value of a parameter of a read shape.
    fn read_arg(&self, p: Param, id: Option<Uuid>, value: Option<&Value>, limit: u64) -> Arg {
        match p {
            Param::Business => Arg::Uuid(self.business),
            Param::Id => Arg::Uuid(id),
            Param::Value(_) => Arg::Value(value.cloned().unwrap_or(Value::Int(None))),
            Param::Limit => Arg::I64(i64::try_from(limit).unwrap_or(i64::MAX)),
            Param::Version | Param::Now | Param::Actor => Arg::Value(Value::Int(None)),
        }
    }

    /// The row with this id, if it is visible in this repository.
    ///
    /// # Errors
    /// Database errors.
    pub async fn find_by_id(&self, id: Uuid) -> Result<Option<E::Model>, EntityError> {
        let backend = self.backend();
        let cached = E::statement_cache().find_by_id(self.read_key(), || {
            let mut s = Sentinels::default();
            let business = self.business.map(|_| s.next(Param::Business));
            let id_value = s.next(Param::Id);
            let stmt = self
                .select_visible(business)
                .filter(Expr::col((E::default(), E::id_column())).eq(id_value))
                .limit(1)
                .build(backend);
            Cached::from_rendered(stmt, &s.params)
        });
        let stmt = match cached {
            Some(c) => c.bind(backend, |p| self.read_arg(p, Some(id), None, 1)),
            None => Prepared::from_statement(
                self.select_visible(self.business.map(Value::from))
                    .filter(Expr::col((E::default(), E::id_column())).eq(id))
                    .limit(1)
                    .build(backend),
            ),
        };
        let row = self.run(OpKind::Select, stmt, Want::One, &[]).await?.one();
        row.map(|r| decode::<E>(&r)).transpose()
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
        let backend = self.backend();
        let cached = E::statement_cache().list(self.read_key(), || {
            let mut s = Sentinels::default();
            let business = self.business.map(|_| s.next(Param::Business));
            Cached::from_rendered(self.select_visible(business).build(backend), &s.params)
        });
        let stmt = match cached {
            Some(c) => c.bind(backend, |p| self.read_arg(p, None, None, 0)),
            None => {
                Prepared::from_statement(self.select_visible(self.business.map(Value::from)).build(backend))
            }
        };
        let rows = self.run(OpKind::Select, stmt, Want::All, &[]).await?.all();
        rows.iter().map(decode::<E>).collect()
    }

    /// The visible rows whose `column` equals `value`, oldest first (by id), at most `limit`: the lookup by
    /// an indexed column (a phone number, a user's sessions), cached per column like `find_by_id`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn list_by(
        &self,
        column: E::Column,
        value: impl Into<Value>,
        limit: u64,
    ) -> Result<Vec<E::Model>, EntityError> {
        let backend = self.backend();
        let value: Value = value.into();
        let position = E::Column::iter().position(|c| c.as_str() == column.as_str());
        let shape = position.map(|column| Shape::ListBy {
            read: self.read_key(),
            column,
        });
        let cached = shape.and_then(|shape| {
            E::statement_cache().shape(shape, || {
                let mut s = Sentinels::default();
                let business = self.business.map(|_| s.next(Param::Business));
                let v = s.next(Param::Value(0));
                let limit = s.next_limit();
                let mut q = self
                    .select_visible(business)
                    .filter(Expr::col((E::default(), column)).eq(v))
                    .order_by_asc(E::id_column())
                    .into_query();
                q.limit(limit);
                Cached::from_rendered(backend.build(&q), &s.params)
            })
        });
        let stmt = match cached {
            Some(c) => c.bind(backend, |p| self.read_arg(p, None, Some(&value), limit)),
            None => Prepared::from_statement(
                self.select_visible(self.business.map(Value::from))
                    .filter(Expr::col((E::default(), column)).eq(value))
                    .order_by_asc(E::id_column())
                    .limit(limit)
                    .build(backend),
            ),
        };
        let rows = self.run(OpKind::Select, stmt, Want::All, &[]).await?.all();
        rows.iter().map(decode::<E>).collect()
    }

    /// The first visible row (by id) whose `column` equals `value`: [`Repo::list_by`] with a limit of one.
    ///
    /// # Errors
    /// Database errors.
    pub async fn find_by(
        &self,
        column: E::Column,
        value: impl Into<Value>,
    ) -> Result<Option<E::Model>, EntityError> {
        Ok(self.list_by(column, value, 1).await?.pop())
    }
}
