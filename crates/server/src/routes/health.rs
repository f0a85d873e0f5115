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
pub async fn health() -> impl IntoResponse {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// `GET /ready`: 200 when requests can be served, else 503 with a reason.
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
