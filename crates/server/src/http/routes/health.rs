//! Liveness and readiness.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::http::types::{Health, JobsHealth, Readiness};
use crate::state::AppState;

/// `GET /health`: the process answers.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    let jobs = match state.jobs() {
        Some(jobs) => jobs.store.stats().await.ok().map(|s| JobsHealth {
            node: jobs.node.clone(),
            queued: s.queued,
            running: s.running,
            oldest_queued_seconds: s.oldest_queued_at.map_or(0.0, |t| {
                (crate::jobs::model::now_ms() - t).max(0) as f64 / 1000.0
            }),
        }),
        None => None,
    };
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        jobs,
    })
}

/// `GET /ready`: 200 when requests can be served, else 503 with a reason.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses(
        (status = 200, description = "Requests can be served", body = Readiness),
        (status = 503, description = "Nothing can serve now: no models, every queue full, or shutting down", body = Readiness),
    ))]
pub async fn ready(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Readiness>) {
    let reason = if state.shutting_down() {
        Err("shutting down".to_string())
    } else {
        state.registry.readiness()
    };
    match reason {
        Ok(()) => (
            StatusCode::OK,
            Json(Readiness {
                status: "ready",
                reason: None,
            }),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                status: "not_ready",
                reason: Some(reason),
            }),
        ),
    }
}
