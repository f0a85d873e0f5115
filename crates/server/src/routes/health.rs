//! Liveness and readiness.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::AppState;

/// `GET /health`: the process answers.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "The process is alive", body = crate::openapi::Health)))]
pub async fn health() -> impl IntoResponse {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// `GET /ready`: 200 when requests can be served, else 503 with a reason.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses(
        (status = 200, description = "Requests can be served", body = crate::openapi::Readiness),
        (status = 503, description = "Nothing can serve now: no models, every queue full, or shutting down", body = crate::openapi::Readiness),
    ))]
pub async fn ready(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let reason = if state.shutting_down.load(Ordering::SeqCst) {
        Err("shutting down".to_string())
    } else {
        state.manager.readiness()
    };
    match reason {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": reason })),
        ),
    }
}
