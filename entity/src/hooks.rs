//! The `ActiveModelBehavior` body that `#[behaviour]` installs: a safety net for code that writes through
//! SeaORM's `ActiveModel` directly instead of [`Repo`](crate::Repo).
//!
//! Hooks get no context and cannot add conditions to the `UPDATE` (NOTES.md), so they stamp what needs no
//! context (id, timestamps, version 1) and refuse a direct update of a versioned entity, which would
//! otherwise bypass the version check silently.

use sea_orm::{ActiveModelTrait, DbErr};
use uuid::Uuid;

use crate::behaviour::Behaviours;
use crate::repo::now;

/// Stamps an active model saved through SeaORM directly.
///
/// # Errors
/// A direct update of a versioned entity: it must go through `Repo::update`.
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
    } else {
        if E::version_column().is_some() {
            return Err(DbErr::Custom(format!(
                "{} is versioned: update it through entity::Repo::update, which checks the version",
                E::TABLE
            )));
        }
        am.set(E::updated_at_column(), now.into());
    }
    Ok(am)
}
