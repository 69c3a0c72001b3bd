//! `Repo`: the default read and write path for entities with behaviours.
//!
//! Every query built here is confined to the context's business and skips soft-deleted rows; every write
//! stamps ids, timestamps, the actor and the version. Leaving a default takes a visibly named call
//! (`with_deleted`, `only_deleted`, `force_delete`, `Ctx::all_businesses`, [`Query::into_select`]).
//!
//! The columns the behaviours add are the repository's alone (`Behaviours::owned_columns`, one list per
//! entity): a caller's `Set` of one of them, on any write path, is [`EntityError::OwnedColumn`] naming it,
//! and nothing is written. The exceptions say which row a write is about, never what it writes: an insert
//! may choose its `id`, and may name the scope's business (or must, under `all_businesses`); an update reads
//! `id` and `version` (the version it was read at) from the active model, and a `business_id` equal to the
//! scope's. An error rather than silently dropping the value, because a caller who sets `updated_at` or moves
//! a row to another business believes it happened: the first test run should say it did not.
//!
//! Writes are explicit `UPDATE`/`DELETE` statements with the scope's filters rather than
//! `ActiveModel::update`, because SeaORM's hooks cannot add the `version = $n` and `business_id = $b`
//! conditions and skip no-op updates entirely (`Updater::is_noop`), which would skip the version check with
//! them. Every statement runs through [`crate::exec`]; the reads are in `repo/read.rs`, the query builder
//! and relation loads in `repo/query.rs`, the writes in `repo/write.rs` and `repo/bulk.rs`.

mod bulk;
mod query;
mod read;
mod write;

use std::marker::PhantomData;

use chrono::{SubsecRound, Utc};
use sea_orm::prelude::DateTimeUtc;
use sea_orm::sea_query::{DynIden, Expr, ExprTrait, IntoIden, Value};
use sea_orm::{Condition, DbBackend, FromQueryResult, IdenStatic, Iterable, QueryResult};
use uuid::Uuid;

pub use bulk::BulkUpdate;
pub use query::{AlsoRelated, Query, WithRelated};

use crate::behaviour::Behaviours;
use crate::cache::{Backend, Deleted, ReadKey};
use crate::context::{BusinessScope, Ctx};
use crate::error::EntityError;
use crate::exec::{self, Executor, Op, OpKind, Output, Pending, Prepared, Want};
use crate::violation;

/// The current time at the precision PostgreSQL stores (microseconds), so a stamped value round-trips.
pub fn now() -> DateTimeUtc {
    Utc::now().trunc_subsecs(6)
}

/// Scoped, soft-delete-aware, version-checking access to one entity.
///
/// ```no_run
/// # use entity::prelude::*;
/// # async fn demo(db: &sea_orm::DatabaseConnection, me: uuid::Uuid, shop: uuid::Uuid, id: uuid::Uuid)
/// # -> Result<(), EntityError> {
/// let users = Users::repo(db, Ctx::new().actor(me).business(shop))?;
/// let u = users.get(id).await?;
/// # Ok(()) }
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
    fn repo<C: Executor>(db: &C, ctx: Ctx) -> Result<Repo<'_, Self, C>, EntityError> {
        Repo::new(db, ctx)
    }
}

impl<E: Behaviours> RepoExt for E {}

impl<'c, E, C> Repo<'c, E, C>
where
    E: Behaviours,
    C: Executor,
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
        self.condition_on(E::default().into_iden())
    }

    /// [`Repo::condition`] on the rows of `table` (the entity's table or its alias in a join).
    fn condition_on(&self, table: DynIden) -> Condition {
        scope_condition::<E>(table, self.business.map(Value::from), self.deleted)
    }

    fn with_deleted_mode(&self, deleted: Deleted) -> Self {
        Self {
            deleted,
            ..self.clone()
        }
    }

    fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    fn read_key(&self) -> ReadKey {
        ReadKey {
            backend: Backend::of(self.backend()),
            deleted: self.deleted,
            scoped: self.business.is_some(),
        }
    }

    /// Runs one statement through [`crate::exec`]; a unique or foreign-key violation becomes its typed error.
    async fn run(
        &self,
        kind: OpKind,
        stmt: Prepared,
        want: Want,
        written: &[(&'static str, sea_orm::Value)],
    ) -> Result<Output, EntityError> {
        let op = Op {
            entity: E::TABLE,
            kind,
            read: self.ctx.reads(),
        };
        match exec::run(self.db, op, stmt, want).await {
            Ok(out) => Ok(out),
            Err(e) => Err(violation::classify::<E, C>(self.db, e, written).await),
        }
    }

    /// [`Repo::run`] for an update whose outcome only the caller can tell (a stale version): its timing is
    /// reported when the returned [`Pending`] is dropped.
    async fn run_pending(
        &self,
        kind: OpKind,
        stmt: Prepared,
        want: Want,
        written: &[(&'static str, sea_orm::Value)],
    ) -> Result<(Output, Pending<'c>), EntityError> {
        let op = Op {
            entity: E::TABLE,
            kind,
            read: self.ctx.reads(),
        };
        match exec::run_pending(self.db, op, stmt, want).await {
            Ok(done) => Ok(done),
            Err(e) => Err(violation::classify::<E, C>(self.db, e, written).await),
        }
    }
}

/// The scope filter of `E` on the rows of `table`: the business (when given) and the deleted-row mode.
fn scope_condition<E: Behaviours>(table: DynIden, business: Option<Value>, deleted: Deleted) -> Condition {
    let mut cond = Condition::all();
    if let (Some(col), Some(b)) = (E::business_id_column(), business) {
        cond = cond.add(Expr::col((table.clone(), col)).eq(b));
    }
    if let Some(col) = E::deleted_at_column() {
        cond = match deleted {
            Deleted::Exclude => cond.add(Expr::col((table, col)).is_null()),
            Deleted::Only => cond.add(Expr::col((table, col)).is_not_null()),
            Deleted::Include => cond,
        };
    }
    cond
}

/// Decodes a row of `E`'s columns: by position when the select order was checked to match the model's
/// fields (once per entity), by name otherwise.
fn decode<E: Behaviours>(row: &QueryResult) -> Result<E::Model, EntityError> {
    let positional = E::statement_cache().positional(|| {
        E::Column::iter()
            .map(|c| c.as_str())
            .eq(E::decode_columns().iter().map(|c| c.as_str()))
    });
    Ok(if positional {
        E::decode_row(row)?
    } else {
        E::Model::from_query_result(row, "")?
    })
}

/// An identifier quoted for SQL the repository writes around a rendered statement.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
