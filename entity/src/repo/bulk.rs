//! [`BulkUpdate`]: a bulk update of a repository's visible rows, stamped like every update, that refuses a
//! behaviour-owned column in `set` and `col_expr` alike.

use sea_orm::sea_query::{IntoCondition, SimpleExpr};
use sea_orm::{EntityTrait, QueryFilter, UpdateMany};

use super::Repo;
use super::write::{WritePath, check_owned, owned, owned_error};
use crate::behaviour::Behaviours;
use crate::error::EntityError;
use crate::exec::{Executor, OpKind};

/// A bulk update through a [`Repo`]; see [`Repo::update_many`].
pub struct BulkUpdate<'c, E: EntityTrait, C> {
    repo: Repo<'c, E, C>,
    query: UpdateMany<E>,
    /// The first behaviour-owned column the caller tried to write: `exec` reports it and writes nothing.
    refused: Option<EntityError>,
}

impl<'c, E, C> Repo<'c, E, C>
where
    E: Behaviours,
    C: Executor,
{
    /// A bulk update of the visible rows: stamps `updated_at`, `updated_by` and `version + 1` on every
    /// row it changes. Add columns with [`BulkUpdate::set`] / [`BulkUpdate::col_expr`] and narrow it with
    /// [`BulkUpdate::filter`]. A behaviour-owned column in either is [`EntityError::OwnedColumn`].
    pub fn update_many(&self) -> BulkUpdate<'c, E, C> {
        BulkUpdate {
            repo: self.clone(),
            query: E::update_many(),
            refused: None,
        }
    }
}

impl<E, C> BulkUpdate<'_, E, C>
where
    E: Behaviours,
    C: Executor,
{
    /// Sets the columns that are `Set` on `am`.
    #[must_use]
    pub fn set(mut self, am: E::ActiveModel) -> Self {
        if self.refused.is_none()
            && let Err(e) = check_owned::<E>(&am, WritePath::Bulk, self.repo.business)
        {
            self.refused = Some(e);
        }
        self.query = self.query.set(am);
        self
    }

    /// Sets a column to an expression.
    #[must_use]
    pub fn col_expr(mut self, col: E::Column, expr: impl Into<SimpleExpr>) -> Self {
        if let Some(o) = owned::<E>(col) {
            self.refused.get_or_insert_with(|| owned_error::<E>(o));
        }
        self.query = self.query.col_expr(col, expr.into());
        self
    }

    /// Narrows the rows updated.
    #[must_use]
    pub fn filter(mut self, filter: impl IntoCondition) -> Self {
        self.query = self.query.filter(filter);
        self
    }

    /// Runs the update; returns how many rows changed.
    ///
    /// # Errors
    /// [`EntityError::OwnedColumn`] (nothing written) when `set` or `col_expr` named a behaviour column;
    /// database errors.
    pub async fn exec(self) -> Result<u64, EntityError> {
        if let Some(e) = self.refused {
            return Err(e);
        }
        let q = self.repo.stamp_update(self.query, super::now());
        self.repo.exec_affected(OpKind::Update, q).await
    }
}
