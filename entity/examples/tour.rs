//! A complete program on the entity crate: creates a business and a user and runs each behaviour, printing
//! what happens. `make test` runs it against PostgreSQL and SQLite.
//!
//! ```sh
//! cargo run -p entity --example tour                              # SQLite in memory, tables from the entities
//! DATABASE_URL=postgres://user:pass@host/db cargo run -p entity --example tour   # a migrated database
//! ```
//!
//! It creates the tables from the entities when the database has none (`make migrate` makes them for real).

use entity::prelude::*;
use entity::{businesses, user_sessions, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, Database, DatabaseConnection, IntoActiveModel, Schema,
};
use uuid::Uuid;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".to_owned());
    let db = Database::connect(&url).await?;
    create_tables_if_missing(&db).await?;

    // A business: `businesses` is not business-scoped, so any context may create one.
    let admin = Uuid::now_v7();
    let shop = new_business(&db, admin, "Corner Shop", "corner-shop").await?;
    println!("business {} created", shop.slug);

    // A user of that business, created by `admin`.
    let users = Users::repo(&db, Ctx::new().business(shop.id).actor(admin))?;
    let ada = users
        .insert(users::ActiveModel {
            phone_number: Set(phone()),
            display_name: Set(Some("Ada".into())),
            status: Set("active".into()),
            ..Default::default()
        })
        .await?;
    println!(
        "BaseModel: id {} is a UUID v{}, created_at = updated_at = {}",
        ada.id,
        ada.id.get_version_num(),
        ada.created_at
    );
    println!("AuditableEntity: created_by = updated_by = {:?}", ada.created_by);
    println!(
        "BusinessScoped: business_id = the context's business: {}",
        ada.business_id == shop.id
    );

    // Versioned: an update carries the version it was read at; the second writer of version 1 is stale.
    let mut rename = ada.clone().into_active_model();
    rename.display_name = Set(Some("Ada L.".into()));
    let saved = users.update(rename).await?;
    println!("Versioned: update -> version {}", saved.version);
    let mut late = ada.clone().into_active_model();
    late.status = Set("blocked".into());
    match users.update(late).await {
        Err(EntityError::StaleVersion { expected, found, .. }) => {
            println!("Versioned: a writer still at version {expected} gets StaleVersion (found {found})")
        }
        other => return Err(format!("expected StaleVersion, got {other:?}").into()),
    }

    // The behaviours own their columns: setting one is an error that names it.
    let mut backdate = saved.clone().into_active_model();
    backdate.updated_at = Set(saved.created_at);
    if let Err(e @ EntityError::OwnedColumn { .. }) = users.update(backdate).await {
        println!("owned columns: {e}");
    }

    // BusinessScoped: another business neither sees nor reaches the user.
    let other = new_business(&db, admin, "Elsewhere", "elsewhere").await?;
    let elsewhere = Users::repo(&db, Ctx::new().business(other.id))?;
    println!(
        "BusinessScoped: another business finds the user: {}",
        elsewhere.find_by_id(ada.id).await?.is_some()
    );

    // Unique constraints come back typed: the phone number is taken.
    let taken = users::ActiveModel {
        phone_number: Set(ada.phone_number.clone()),
        status: Set("active".into()),
        ..Default::default()
    };
    if let Err(EntityError::UniqueViolation {
        columns, constraint, ..
    }) = users.insert(taken).await
    {
        println!("unique: {} is taken ({constraint})", columns.join(", "));
    }

    // Relation loads from the repository stay in scope and skip deleted rows.
    let sessions = UserSessions::repo(&db, Ctx::new().business(shop.id).actor(admin))?;
    let session = sessions
        .insert(user_sessions::ActiveModel {
            user_id: Set(ada.id),
            token_hash: Set(format!("{:064x}", Uuid::now_v7().as_u128())),
            is_active: Set(true),
            expires_at: Set(entity::repo::now() + chrono::Duration::hours(8)),
            ..Default::default()
        })
        .await?;
    let with_sessions = users
        .find()
        .filter(users::Column::Id.eq(ada.id))
        .find_with_related::<UserSessions>()
        .all()
        .await?;
    println!(
        "relations: {} has {} live session(s)",
        ada.id,
        with_sessions[0].1.len()
    );
    sessions.soft_delete(session.id).await?;

    // SoftDeletable: gone from default reads, back with restore.
    users.soft_delete(ada.id).await?;
    println!(
        "SoftDeletable: after soft_delete, find_by_id finds it: {}; only_deleted lists {}",
        users.find_by_id(ada.id).await?.is_some(),
        users.only_deleted().list().await?.len()
    );
    let back = users.restore(ada.id).await?;
    println!("SoftDeletable: restored at version {}", back.version);

    // Bulk writes are stamped and scoped too.
    let n = users
        .update_many()
        .col_expr(users::Column::Status, Expr::val("inactive"))
        .exec()
        .await?;
    println!("bulk: {n} user(s) of the shop set inactive");
    Ok(())
}

/// A business with a slug unique across repeated runs against one database.
async fn new_business(
    db: &DatabaseConnection,
    actor: Uuid,
    name: &str,
    slug: &str,
) -> Result<businesses::Model, EntityError> {
    Businesses::repo(db, Ctx::new().actor(actor))?
        .insert(businesses::ActiveModel {
            name: Set(name.to_owned()),
            slug: Set(format!("{slug}-{}", Uuid::now_v7().simple())),
            status: Set("active".into()),
            ..Default::default()
        })
        .await
}

/// A phone number unique enough for repeated runs against one database.
fn phone() -> String {
    format!("+1{:010}", Uuid::now_v7().as_u128() % 10_000_000_000)
}

/// The entities' tables, when the database has none yet (an in-memory SQLite database).
async fn create_tables_if_missing(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    let schema = Schema::new(db.get_database_backend());
    let probe =
        sea_orm::Statement::from_string(db.get_database_backend(), "SELECT 1 FROM businesses LIMIT 1");
    if db.query_one_raw(probe).await.is_ok() {
        return Ok(());
    }
    println!("no tables yet: creating them from the entities");
    for meta in entity::registry::all() {
        db.execute(&(meta.create_table)(&schema)).await?;
    }
    Ok(())
}
