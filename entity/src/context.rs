//! `Ctx`: who acts and for which business. SeaORM's hooks get no request context, so the caller passes this
//! explicitly to every repository call.

use uuid::Uuid;

/// Which businesses a context may read and write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BusinessScope {
    /// No business chosen: business-scoped entities refuse to work (`EntityError::MissingScope`).
    #[default]
    Unset,
    /// Confined to one business.
    Business(Uuid),
    /// Every business: the visibly named escape for admin and maintenance code.
    All,
}

/// The caller's context: the actor stamped into audit columns and the business scope.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ctx {
    actor: Option<Uuid>,
    scope: BusinessScope,
}

impl Ctx {
    /// A context with no actor and no business.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the acting user, stamped into `created_by`/`updated_by`.
    #[must_use]
    pub fn actor(mut self, actor: Uuid) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Confines the context to one business.
    #[must_use]
    pub fn business(mut self, business: Uuid) -> Self {
        self.scope = BusinessScope::Business(business);
        self
    }

    /// Lifts the business confinement: every business's rows become reachable.
    #[must_use]
    pub fn all_businesses(mut self) -> Self {
        self.scope = BusinessScope::All;
        self
    }

    /// The acting user.
    pub fn actor_id(&self) -> Option<Uuid> {
        self.actor
    }

    /// The business scope.
    pub fn scope(&self) -> BusinessScope {
        self.scope
    }
}
