//! `collex-bench bare`: the reference HTTP server. A bare axum app with `/live` (no I/O), `/ready` and
//! `/health/database` (`SELECT 1` on a raw sqlx pool), so the service's figures have a floor measured on the
//! same machine in the same run.

use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use sea_orm::sqlx::PgPool;
use sea_orm::sqlx::postgres::PgPoolOptions;
use serde_json::{Value, json};

/// Serves until killed. Reads `DATABASE_URL` and `SERVER_ADDR` (default `127.0.0.1:8080`).
///
/// # Errors
/// When the address cannot be bound or the database cannot be reached at start.
pub fn serve() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("bare needs DATABASE_URL")?;
    let addr = std::env::var("SERVER_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            // The spec's default pool size, as the service uses.
            let pool = PgPoolOptions::new()
                .max_connections(100)
                .acquire_timeout(Duration::from_secs(30))
                .connect(&url)
                .await
                .context("bare cannot connect to the database")?;
            let app = Router::new()
                .route("/live", get(live))
                .route("/ready", get(database))
                .route("/health/database", get(database))
                .with_state(pool);
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .with_context(|| format!("bare cannot bind {addr}"))?;
            axum::serve(listener, app).await?;
            Ok(())
        })
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

async fn database(State(pool): State<PgPool>) -> (StatusCode, Json<Value>) {
    match sea_orm::sqlx::query("SELECT 1").execute(&pool).await {
        Ok(_) => (
            StatusCode::OK,
            Json(json!({
                "status": "healthy",
                "pool_stats": { "open_connections": pool.size(), "idle": pool.num_idle() },
            })),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unhealthy", "error": e.to_string() })),
        ),
    }
}
