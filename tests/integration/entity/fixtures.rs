//! Builders for rows the behaviour tests need.

use entity::prelude::*;
use entity::{businesses, user_preferences, user_sessions, users};
use sea_orm::{ActiveValue::Set, DatabaseConnection};
use uuid::Uuid;

/// Inserts a business and returns it.
pub async fn business(db: &DatabaseConnection, slug: &str) -> businesses::Model {
    Businesses::repo(db, Ctx::new())
        .expect("businesses are not scoped")
        .insert(businesses::ActiveModel {
            name: Set(format!("Business {slug}")),
            slug: Set(slug.to_owned()),
            status: Set("active".into()),
            ..Default::default()
        })
        .await
        .expect("insert business")
}

/// A new user with a phone number and e-mail derived from `n`.
pub fn user(n: u32) -> users::ActiveModel {
    users::ActiveModel {
        phone_number: Set(format!("+1555{n:07}")),
        email: Set(Some(format!("user{n}@example.com"))),
        display_name: Set(Some(format!("User {n}"))),
        status: Set("active".into()),
        ..Default::default()
    }
}

/// A new live session of `user_id` whose token hash is derived from `n`.
pub fn session(user_id: Uuid, n: u32) -> user_sessions::ActiveModel {
    user_sessions::ActiveModel {
        user_id: Set(user_id),
        token_hash: Set(format!("{n:064}")),
        is_active: Set(true),
        expires_at: Set(entity::repo::now() + chrono::Duration::hours(1)),
        ..Default::default()
    }
}

/// A context acting as `actor` in `business`.
pub fn ctx(business: Uuid, actor: Uuid) -> Ctx {
    Ctx::new().business(business).actor(actor)
}

/// Inserts preferences for a new user of `business` holding `{"n": 0}`.
pub async fn counter(db: &DatabaseConnection, business: Uuid) -> user_preferences::Model {
    let cx = Ctx::new().business(business);
    let u = Users::repo(db, cx)
        .expect("scoped")
        .insert(user(1))
        .await
        .expect("insert user");
    UserPreferences::repo(db, cx)
        .expect("scoped")
        .insert(user_preferences::ActiveModel {
            user_id: Set(u.id),
            preferences: Set(serde_json::json!({ "n": 0 })),
            ..Default::default()
        })
        .await
        .expect("insert preferences")
}
