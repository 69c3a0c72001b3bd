//! The start-up check of the database role the service connects as.
//!
//! Row-level security confines every statement to the business of its scoped transaction
//! (`entity::Scoped`), but PostgreSQL never applies it to a superuser or a role with `BYPASSRLS`: connected
//! as one, the service would see every business and nothing would say so. The check is one catalog read,
//! once, after the database is ready, on a connection of its own (outside the service's pool: it neither
//! queues behind the pool's users nor counts in its statistics); it only warns (the service still works, with the repository's own
//! filters as the isolation).

use sea_orm::{ConnectionTrait, DbBackend, Statement};

/// What the role is allowed to bypass, when it bypasses row-level security; `None` when it does not (or the
/// database is not PostgreSQL, or the catalog could not be read).
pub async fn rls_bypass(db: &impl ConnectionTrait) -> Option<String> {
    if db.get_database_backend() != DbBackend::Postgres {
        return None;
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_user::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
        ))
        .await
        .ok()??;
    let user: String = row.try_get_by_index(0).ok()?;
    let superuser: bool = row.try_get_by_index(1).ok()?;
    let bypass: bool = row.try_get_by_index(2).ok()?;
    let what = match (superuser, bypass) {
        (true, _) => "a superuser",
        (false, true) => "a role with BYPASSRLS",
        (false, false) => return None,
    };
    Some(format!(
        "the service connects as {user}, {what}: row-level security does not apply to it, so the database does \
         not confine its statements to one business (only the repository's filters do); connect as the \
         application role (NOSUPERUSER NOBYPASSRLS, owning no table: see the README's \"Roles\")"
    ))
}

/// Logs the warning of [`rls_bypass`], if any.
pub async fn warn_if_rls_bypassed(db: &impl ConnectionTrait) {
    if let Some(warning) = rls_bypass(db).await {
        tracing::warn!("{warning}");
    }
}

/// [`warn_if_rls_bypassed`] for the role `cfg` connects as, on a one-connection pool of its own, closed
/// afterwards (PostgreSQL only; a connection failure is only logged at debug level: the pool reports those).
pub async fn warn_if_rls_bypassed_as(cfg: &config::DbConfig) {
    if !matches!(cfg.target, config::DbTarget::Postgres(_)) {
        return;
    }
    match config::connect(cfg).await {
        Ok(db) => {
            warn_if_rls_bypassed(&db).await;
            let _ = db.close().await;
        }
        Err(e) => tracing::debug!("the row-level security check could not connect: {e}"),
    }
}
