//! The `ActiveModelBehavior` body that `#[behaviour]` installs: a safety net for code that writes through
//! SeaORM's `ActiveModel` directly instead of [`Repo`](crate::Repo).
//!
//! SeaORM 2's hooks receive the active model and the connection only: no request context, and no way to add
//! conditions to the `UPDATE` they precede (see the module docs of [`crate::repo`]). So they stamp what needs
//! no context (id, timestamps, version 1) on insert, keeping values the caller set (a direct insert is the
//! import path, and must set `business_id` and the actor itself). A direct update of a versioned entity is
//! refused, since it would skip the version check silently; a direct update of another entity is refused when
//! it sets a behaviour-owned column (the same list and error text as the repository's rule), so it cannot
//! move a row to another business or rewrite its stamps.

use sea_orm::{ActiveModelTrait, ActiveValue, DbErr};
use uuid::Uuid;

use crate::behaviour::Behaviours;
use crate::error::EntityError;
use crate::repo::now;

/// Stamps an active model saved through SeaORM directly.
///
/// # Errors
/// A direct update of a versioned entity (it must go through `Repo::update`), or one that sets a
/// behaviour-owned column other than the primary key.
pub fn before_save<E>(mut am: E::ActiveModel, insert: bool) -> Result<E::ActiveModel, DbErr>
where
    E: Behaviours,
{
    let now = now();
    if insert {
        if am.is_not_set(E::id_column()) {
            am.set(E::id_column(), Uuid::now_v7().into());
        }
        if am.is_not_set(E::created_at_column()) {
            am.set(E::created_at_column(), now.into());
        }
        if am.is_not_set(E::updated_at_column()) {
            am.set(E::updated_at_column(), now.into());
        }
        if let Some(col) = E::version_column()
            && am.is_not_set(col)
        {
            am.set(col, 1i32.into());
        }
        return Ok(am);
    }
    if E::version_column().is_some() {
        return Err(DbErr::Custom(format!(
            "{} is versioned: update it through entity::Repo::update, which checks the version",
            E::TABLE
        )));
    }
    // SeaORM finds the row by the primary key the active model carries: that one says which row, not what.
    let id = E::id_column();
    let id = sea_orm::IdenStatic::as_str(&id);
    if let Some(o) = E::owned_columns()
        .iter()
        .find(|o| o.name != id && matches!(am.get(o.column), ActiveValue::Set(_)))
    {
        let refused = EntityError::OwnedColumn {
            entity: E::TABLE,
            column: o.name,
            behaviour: o.behaviour,
            hint: "SeaORM's direct update cannot check it; use entity::Repo",
        };
        return Err(DbErr::Custom(refused.to_string()));
    }
    am.set(E::updated_at_column(), now.into());
    Ok(am)
}
