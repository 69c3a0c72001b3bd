//! [`Query`]: the repository's query builder, and relation loads that confine both sides.
//!
//! `repo.find()` is a [`Query`], not SeaORM's bare `Select`: its filters, ordering and limits narrow the
//! repository's default (scope, live rows), it runs on the repository's connection through
//! [`crate::exec`], and its relation loads (`find_with_related`, `find_also_related`) put the related
//! entity's scope and soft-delete filter into the join's `ON`, so another business's or a deleted related
//! row never comes back. [`Query::into_select`] is the named way out to SeaORM's `Select` for what this type
//! does not offer; relation loads chained on that `Select` are unscoped.

use std::collections::HashMap;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, IntoCondition, IntoIden, SimpleExpr, Value};
use sea_orm::{
    EntityTrait, FromQueryResult, ModelTrait, Order, QueryFilter, QueryOrder, QueryResult, QuerySelect,
    QueryTrait, Related, Select,
};
use uuid::Uuid;

use super::{Repo, decode, scope_condition};
use crate::behaviour::Behaviours;
use crate::cache::Deleted;
use crate::error::EntityError;
use crate::exec::{Executor, OpKind, Prepared, Want};

/// A query on a repository's visible rows; see the [module docs](self).
pub struct Query<'c, E: EntityTrait, C> {
    repo: Repo<'c, E, C>,
    select: Select<E>,
}

impl<'c, E, C> Repo<'c, E, C>
where
    E: Behaviours,
    C: Executor,
{
    /// The default query: in scope, live rows. Narrow it with [`Query::filter`], order and limit it, and
    /// run it with [`Query::all`] / [`Query::one`] / [`Query::count`].
    pub fn find(&self) -> Query<'c, E, C> {
        Query {
            repo: self.clone(),
            select: E::find().filter(self.condition()),
        }
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
        Query {
            select: model.find_related(R::default()).filter(related.condition()),
            repo: related,
        }
        .all()
        .await
    }

    /// For each of `models`, its related rows of `R` through `R`'s default path, in one query.
    ///
    /// # Errors
    /// As [`Repo::find_related`]; [`EntityError::RelationVia`] for a relation through a junction table.
    pub async fn load_related<R>(&self, models: &[E::Model]) -> Result<Vec<Vec<R::Model>>, EntityError>
    where
        R: Behaviours,
        E: Related<R>,
    {
        let related = Repo::<R, C>::new(self.db, self.ctx)?;
        let rel = <E as Related<R>>::to();
        let (from, to) = match (
            <E as Related<R>>::via(),
            rel.from_col.iter().count(),
            &rel.from_col,
            &rel.to_col,
        ) {
            (None, 1, from, to) => (from.iter().next(), to.iter().next()),
            _ => (None, None),
        };
        let (Some(from), Some(to)) = (from, to) else {
            return Err(EntityError::RelationVia {
                entity: E::TABLE,
                related: R::TABLE,
            });
        };
        let from_col = column_named::<E>(&from.to_string());
        let to_col = column_named::<R>(&to.to_string());
        let (Some(from_col), Some(to_col)) = (from_col, to_col) else {
            return Err(EntityError::RelationVia {
                entity: E::TABLE,
                related: R::TABLE,
            });
        };
        if models.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Value> = models.iter().map(|m| m.get(from_col)).collect();
        let rows = related
            .find()
            .filter(Expr::col((R::default(), to_col)).is_in(keys.clone()))
            .all()
            .await?;
        let mut by_key: HashMap<String, Vec<R::Model>> = HashMap::new();
        for r in rows {
            by_key.entry(key_of(&r.get(to_col))).or_default().push(r);
        }
        Ok(keys
            .iter()
            .map(|k| by_key.get(&key_of(k)).cloned().unwrap_or_default())
            .collect())
    }
}

/// The column of `E` named `name`.
fn column_named<E: EntityTrait>(name: &str) -> Option<E::Column> {
    use sea_orm::{IdenStatic, Iterable};
    E::Column::iter().find(|c| c.as_str() == name)
}

/// A map key for a key column's value (ids and foreign keys are of one type on both sides).
fn key_of(v: &Value) -> String {
    format!("{v:?}")
}

impl<'c, E, C> Query<'c, E, C>
where
    E: Behaviours,
    C: Executor,
{
    /// Narrows the rows (ANDed with the repository's scope and soft-delete filter).
    #[must_use]
    pub fn filter(mut self, filter: impl IntoCondition) -> Self {
        self.select = QueryFilter::filter(self.select, filter);
        self
    }

    /// Orders by `column`, ascending.
    #[must_use]
    pub fn order_by_asc(mut self, column: E::Column) -> Self {
        self.select = QueryOrder::order_by_asc(self.select, column);
        self
    }

    /// Orders by `column`, descending.
    #[must_use]
    pub fn order_by_desc(mut self, column: E::Column) -> Self {
        self.select = QueryOrder::order_by_desc(self.select, column);
        self
    }

    /// Orders by an expression.
    #[must_use]
    pub fn order_by(mut self, expr: impl Into<SimpleExpr>, order: Order) -> Self {
        self.select = QueryOrder::order_by(self.select, expr.into(), order);
        self
    }

    /// At most `n` rows.
    #[must_use]
    pub fn limit(mut self, n: u64) -> Self {
        self.select = QuerySelect::limit(self.select, n);
        self
    }

    /// Skips the first `n` rows.
    #[must_use]
    pub fn offset(mut self, n: u64) -> Self {
        self.select = QuerySelect::offset(self.select, n);
        self
    }

    /// SeaORM's `Select` with the repository's filter on `E`: the escape hatch for what [`Query`] does not
    /// offer. Relation loads chained on it (`find_with_related`, `find_also_related`) are **not** scoped;
    /// use [`Query::find_with_related`] / [`Query::find_also_related`].
    pub fn into_select(self) -> Select<E> {
        self.select
    }

    /// The statement [`Query::all`] sends (SQL and values), e.g. for `EXPLAIN`.
    pub fn statement(&self) -> sea_orm::Statement {
        self.select.build(self.repo.backend())
    }

    /// Every matching row.
    ///
    /// # Errors
    /// Database errors.
    pub async fn all(self) -> Result<Vec<E::Model>, EntityError> {
        let stmt = Prepared::from_statement(self.select.build(self.repo.backend()));
        let rows = self.repo.run(OpKind::Select, stmt, Want::All, &[]).await?.all();
        rows.iter().map(decode::<E>).collect()
    }

    /// The first matching row.
    ///
    /// # Errors
    /// Database errors.
    pub async fn one(self) -> Result<Option<E::Model>, EntityError> {
        let stmt = Prepared::from_statement(QuerySelect::limit(self.select, 1).build(self.repo.backend()));
        let row = self.repo.run(OpKind::Select, stmt, Want::One, &[]).await?.one();
        row.map(|r| decode::<E>(&r)).transpose()
    }

    /// How many rows match.
    ///
    /// # Errors
    /// Database errors.
    pub async fn count(self) -> Result<u64, EntityError> {
        let backend = self.repo.backend();
        let mut q = sea_orm::sea_query::Query::select();
        q.expr(Expr::cust("COUNT(*)"))
            .from_subquery(self.select.into_query(), Alias::new("counted").into_iden());
        let stmt = Prepared::from_statement(backend.build(&q));
        let row = self.repo.run(OpKind::Select, stmt, Want::One, &[]).await?.one();
        let n: i64 = match row {
            Some(r) => r.try_get_by_index(0)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Each matching row with its related rows of `R`, both sides confined to the scope and live rows.
    #[must_use]
    pub fn find_with_related<R>(self) -> WithRelated<'c, E, R, C>
    where
        R: Behaviours,
        E: Related<R>,
    {
        WithRelated {
            query: self,
            _r: std::marker::PhantomData,
        }
    }

    /// Each matching row with its related row of `R` (`belongs_to`/`has_one`), `None` when the related row
    /// is outside the scope or deleted.
    #[must_use]
    pub fn find_also_related<R>(self) -> AlsoRelated<'c, E, R, C>
    where
        R: Behaviours,
        E: Related<R>,
    {
        AlsoRelated {
            query: self,
            _r: std::marker::PhantomData,
        }
    }

    /// The rows of the query left-joined to `R`, with `R`'s scope and deleted-row filter in the join's `ON`;
    /// `E`'s columns prefixed `A_`, `R`'s `B_` (SeaORM's `select_with` / `select_also`).
    async fn joined_rows<R>(self, many: bool) -> Result<Vec<QueryResult>, EntityError>
    where
        R: Behaviours,
        E: Related<R>,
    {
        if <E as Related<R>>::via().is_some() {
            return Err(EntityError::RelationVia {
                entity: E::TABLE,
                related: R::TABLE,
            });
        }
        let related = Repo::<R, C>::new(self.repo.db, self.repo.ctx)?;
        let (business, deleted): (Option<Uuid>, Deleted) = (related.business, related.deleted);
        let mut rel = <E as Related<R>>::to();
        let declared = rel.on_condition.take();
        rel = rel.on_condition(move |left, right| {
            let scope = scope_condition::<R>(right.clone(), business.map(Value::from), deleted);
            match &declared {
                Some(f) => f(left, right).add(scope),
                None => scope,
            }
        });
        let select = QuerySelect::join(self.select, sea_orm::JoinType::LeftJoin, rel);
        let backend = self.repo.backend();
        let stmt = match many {
            true => select.select_with(R::default()).build(backend),
            false => select.select_also(R::default()).build(backend),
        };
        let stmt = Prepared::from_statement(stmt);
        Ok(self.repo.run(OpKind::Select, stmt, Want::All, &[]).await?.all())
    }
}

/// One row of a join: `E`'s model and `R`'s, if the join found one.
fn pair<E: Behaviours, R: Behaviours>(
    row: &QueryResult,
) -> Result<(E::Model, Option<R::Model>), EntityError> {
    Ok((
        E::Model::from_query_result(row, "A_")?,
        R::Model::from_query_result_optional(row, "B_")?,
    ))
}

/// [`Query::find_with_related`], ready to run.
pub struct WithRelated<'c, E: EntityTrait, R, C> {
    query: Query<'c, E, C>,
    _r: std::marker::PhantomData<R>,
}

impl<E, R, C> WithRelated<'_, E, R, C>
where
    E: Behaviours,
    R: Behaviours,
    E: Related<R>,
    C: Executor,
{
    /// Every matching row of `E` with its visible related rows, in the order of `E`'s rows.
    ///
    /// # Errors
    /// [`EntityError::RelationVia`] for a relation through a junction table; database errors.
    pub async fn all(self) -> Result<Vec<(E::Model, Vec<R::Model>)>, EntityError> {
        let rows = self.query.joined_rows::<R>(true).await?;
        let mut out: Vec<(E::Model, Vec<R::Model>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for row in &rows {
            let (left, right) = pair::<E, R>(row)?;
            let i = *index.entry(key_of(&left.get(E::id_column()))).or_insert_with(|| {
                out.push((left, Vec::new()));
                out.len() - 1
            });
            out[i].1.extend(right);
        }
        Ok(out)
    }
}

/// [`Query::find_also_related`], ready to run.
pub struct AlsoRelated<'c, E: EntityTrait, R, C> {
    query: Query<'c, E, C>,
    _r: std::marker::PhantomData<R>,
}

impl<E, R, C> AlsoRelated<'_, E, R, C>
where
    E: Behaviours,
    R: Behaviours,
    E: Related<R>,
    C: Executor,
{
    /// Every matching row of `E` with its related row, `None` when there is none visible.
    ///
    /// # Errors
    /// [`EntityError::RelationVia`] for a relation through a junction table; database errors.
    pub async fn all(self) -> Result<Vec<(E::Model, Option<R::Model>)>, EntityError> {
        let rows = self.query.joined_rows::<R>(false).await?;
        rows.iter().map(pair::<E, R>).collect()
    }
}
