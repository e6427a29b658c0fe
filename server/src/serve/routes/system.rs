//! Health, readiness, metrics and the OpenAPI document (no API key needed).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::OnceLock;

use super::reply;
use crate::serve::problem::Problem;
use crate::serve::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "The process is up", body = serde_json::Value)))]
pub async fn healthz() -> Response {
    reply(StatusCode::OK, &json!({"status": "ok"}))
}

/// The store answers and the rulesets are loaded.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses(
        (status = 200, description = "Ready to take orders", body = serde_json::Value),
        (status = 503, description = "The store does not answer", body = super::ProblemDoc,
            content_type = "application/problem+json")))]
pub async fn readyz(State(app): State<AppState>) -> Result<Response, Problem> {
    app.store
        .tenant("")
        .await
        .map_err(|e| Problem::unavailable(format!("the store does not answer: {e}")))?;
    Ok(reply(
        StatusCode::OK,
        &json!({"status": "ready", "backend": app.store.backend().name()}),
    ))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain")))]
pub async fn metrics(State(app): State<AppState>) -> Response {
    let stats = app.store.writer_stats();
    app.metrics
        .writer_batches
        .set(i64::try_from(stats.batches).unwrap_or(i64::MAX));
    app.metrics
        .writer_orders
        .set(i64::try_from(stats.orders).unwrap_or(i64::MAX));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

/// This API's OpenAPI 3.1 document, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "system",
    responses((status = 200, description = "OpenAPI document", body = serde_json::Value)))]
pub async fn openapi() -> Response {
    // The document is a function of the code alone: built once, on the first request.
    static DOCUMENT: OnceLock<serde_json::Value> = OnceLock::new();
    reply(
        StatusCode::OK,
        DOCUMENT.get_or_init(crate::serve::openapi::document),
    )
}
