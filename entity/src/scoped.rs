//! Scoped transactions: the way app code works on PostgreSQL with row-level security.
//!
//! [`Scoped::begin`] opens a transaction and, in one more round trip, sets the business, the actor and the
//! all-businesses switch of its [`Ctx`] as **transaction-local** settings (`set_config(.., true)`: `SET` takes
//! no bind parameter, and a session-level setting would stay on the pooled connection for its next user).
//! The generated policy of every business-scoped table (`migration::schema::generate::tenant_predicate`)
//! compares `business_id` with them, so inside the transaction the database itself, not only the
//! [`Repo`], confines every statement, raw SQL included. When the transaction ends, by
//! [`Scoped::commit`], [`Scoped::rollback`] or a drop, the settings read `''` again, which the policy treats
//! as no business: no rows.
//!
//! On SQLite (no row-level security) it is a plain transaction; the [`Repo`]'s filters are the isolation
//! there.

use std::ops::Deref;

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, Statement, TransactionSession, TransactionTrait,
};

use crate::behaviour::Behaviours;
use crate::context::{BusinessScope, Ctx};
use crate::error::EntityError;
use crate::exec::Executor;
use crate::repo::Repo;

/// The setting the policies compare `business_id` with.
pub const BUSINESS_SETTING: &str = "app.business_id";
/// The acting user, for triggers and audit code that want it.
pub const ACTOR_SETTING: &str = "app.actor_id";
/// `'on'` lifts the confinement, as [`Ctx::all_businesses`] does.
pub const ALL_BUSINESSES_SETTING: &str = "app.all_businesses";

/// The one statement that scopes a transaction: three transaction-local settings in one round trip.
const SET_SCOPE: &str = "SELECT set_config('app.business_id', $1, true), set_config('app.actor_id', $2, true), \
                         set_config('app.all_businesses', $3, true)";

/// A transaction whose every statement the database confines to the business of its [`Ctx`]: SeaORM's
/// `DatabaseTransaction`, or the transaction of any connection that implements `TransactionTrait` (the
/// service's gated pool).
///
/// ```no_run
/// # use entity::prelude::*;
/// # async fn demo(db: &sea_orm::DatabaseConnection, me: uuid::Uuid, shop: uuid::Uuid) -> Result<(), EntityError> {
/// let tx = Scoped::begin(db, Ctx::new().business(shop).actor(me)).await?;
/// let users = tx.repo::<Users>()?;       // the Repo, on the transaction's connection
/// let active = users.list().await?;      // filtered by the Repo and by the table's policy
/// tx.commit().await?;                    // the settings end with the transaction
/// # let _ = active; Ok(()) }
/// ```
pub struct Scoped<T = DatabaseTransaction> {
    tx: T,
    ctx: Ctx,
}

impl<T> std::fmt::Debug for Scoped<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped")
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

impl<T: ConnectionTrait + TransactionSession> Scoped<T> {
    /// Opens a transaction on `db` scoped to `ctx`: `BEGIN`, then one `SELECT set_config(..)` on PostgreSQL.
    /// A context without a business sets none: business-scoped tables then show and accept no rows.
    ///
    /// # Errors
    /// [`EntityError::Db`] when the transaction cannot be opened or the settings cannot be set.
    pub async fn begin<C>(db: &C, ctx: Ctx) -> Result<Self, EntityError>
    where
        C: TransactionTrait<Transaction = T> + ?Sized,
    {
        let tx = db.begin().await?;
        if tx.get_database_backend() == DbBackend::Postgres {
            let (business, all) = match ctx.scope() {
                BusinessScope::Business(b) => (b.to_string(), ""),
                BusinessScope::All => (String::new(), "on"),
                BusinessScope::Unset => (String::new(), ""),
            };
            let actor = ctx.actor_id().map(|a| a.to_string()).unwrap_or_default();
            tx.query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                SET_SCOPE,
                [business.into(), actor.into(), all.into()],
            ))
            .await?;
        }
        Ok(Self { tx, ctx })
    }

    /// The context the transaction is scoped to.
    pub fn ctx(&self) -> Ctx {
        self.ctx
    }

    /// A [`Repo`] for `E` on this transaction, in its context.
    ///
    /// # Errors
    /// [`EntityError::MissingScope`] when `E` is business-scoped and the context names no business.
    pub fn repo<E: Behaviours>(&self) -> Result<Repo<'_, E, T>, EntityError>
    where
        T: Executor,
    {
        Repo::new(&self.tx, self.ctx)
    }

    /// Commits; the settings end with the transaction.
    ///
    /// # Errors
    /// [`EntityError::Db`] when the commit fails.
    pub async fn commit(self) -> Result<(), EntityError> {
        Ok(self.tx.commit().await?)
    }

    /// Rolls back (dropping a `Scoped` does too).
    ///
    /// # Errors
    /// [`EntityError::Db`] when the rollback fails.
    pub async fn rollback(self) -> Result<(), EntityError> {
        Ok(self.tx.rollback().await?)
    }
}

/// Raw statements run on the transaction, scoped like the [`Repo`]'s.
impl<T> Deref for Scoped<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.tx
    }
}
