//! `EntityError`: what the repository reports, as variants a caller can match.

use uuid::Uuid;

use crate::behaviour::Behaviour;

/// An error of the behaviour layer. Database errors pass through as [`EntityError::Db`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntityError {
    /// No row with this id is visible in the current scope (deleted rows and other businesses' rows are
    /// not visible, so this does not tell them apart from absent ones).
    #[error("{entity} {id} not found")]
    NotFound {
        /// Table name.
        entity: &'static str,
        /// The id looked for.
        id: Uuid,
    },
    /// The row changed since it was read: `expected` is the version the caller held, `found` a newer
    /// version the row had when the update ran (it may have moved on since).
    #[error("{entity} {id} is stale: expected version {expected}, found {found}")]
    StaleVersion {
        /// Table name.
        entity: &'static str,
        /// Row id.
        id: Uuid,
        /// The version the update was based on.
        expected: i32,
        /// The version in the database.
        found: i32,
    },
    /// An update of a versioned entity did not say which version it was based on.
    #[error("{entity}: update needs the version it was read at (set `version` on the active model)")]
    MissingVersion {
        /// Table name.
        entity: &'static str,
    },
    /// The write names a business other than the scope's.
    #[error("{entity}: business {found} is outside the current scope (business {scope})")]
    CrossBusiness {
        /// Table name.
        entity: &'static str,
        /// The scope's business.
        scope: Uuid,
        /// The business the write named.
        found: Uuid,
    },
    /// A business-scoped entity was used without a business in the context.
    #[error(
        "{entity} is business-scoped: give the context a business (`Ctx::business`) or opt out visibly \
         (`Ctx::all_businesses`)"
    )]
    MissingScope {
        /// Table name.
        entity: &'static str,
    },
    /// An insert into a business-scoped table under `all_businesses` did not set `business_id`.
    #[error("{entity}: insert under `all_businesses` must set business_id")]
    MissingBusiness {
        /// Table name.
        entity: &'static str,
    },
    /// An update or delete needs the row id.
    #[error("{entity}: the active model has no id")]
    MissingId {
        /// Table name.
        entity: &'static str,
    },
    /// The write names a column that a behaviour owns (ids, timestamps, actor, business, version, deletion):
    /// only the repository writes those, through its named methods.
    #[error(
        "{entity}.{column} is written by the repository (#[behaviour({behaviour})]), not by the caller: \
         leave it unset ({hint})"
    )]
    OwnedColumn {
        /// Table name.
        entity: &'static str,
        /// The column written.
        column: &'static str,
        /// The behaviour that owns it.
        behaviour: Behaviour,
        /// Who writes it instead, or what to call.
        hint: &'static str,
    },
    /// A unique constraint refused the write: another row already holds these values.
    #[error("{entity}: another row already has this {} (unique constraint {constraint})", columns.join(", "))]
    UniqueViolation {
        /// Table name.
        entity: &'static str,
        /// The constraint (or unique index) as the database names it.
        constraint: String,
        /// Its columns.
        columns: Vec<String>,
        /// The database's error.
        #[source]
        source: Box<sea_orm::DbErr>,
    },
    /// A foreign key refused the write: the row it names does not exist (or, on a delete, rows still
    /// name this one).
    #[error(
        "{entity}: foreign key {constraint} is violated: {table}({}) must name an existing row of {references}{}",
        columns.join(", "),
        same_business(columns)
    )]
    ForeignKeyViolation {
        /// Table name of the repository that wrote.
        entity: &'static str,
        /// The constraint as the database names it.
        constraint: String,
        /// The table that holds the foreign key.
        table: String,
        /// Its columns.
        columns: Vec<String>,
        /// The table it refers to.
        references: String,
        /// The database's error.
        #[source]
        source: Box<sea_orm::DbErr>,
    },
    /// A relation load that the repository cannot confine to the scope (a many-to-many relation through a
    /// junction table): load it through the junction entity's repository.
    #[error(
        "{entity}: the relation to {related} goes through a junction table; load it through its repository"
    )]
    RelationVia {
        /// Table name.
        entity: &'static str,
        /// The related table.
        related: &'static str,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl EntityError {
    /// Whether retrying the read-modify-write can succeed (a lost optimistic-locking race).
    pub fn is_stale(&self) -> bool {
        matches!(self, Self::StaleVersion { .. })
    }
}

/// The cause a composite tenant key adds to a foreign-key violation: the row named may exist, but in another
/// business (`(business_id, x_id) → (business_id, id)` refuses a link across businesses).
fn same_business(columns: &[String]) -> &'static str {
    if columns.len() > 1 && columns.first().is_some_and(|c| c == "business_id") {
        " of the same business (a row may not link two businesses)"
    } else {
        ""
    }
}
