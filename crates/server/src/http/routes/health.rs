//! Liveness and readiness.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::http::types::{Health, JobsHealth, Readiness};
use crate::state::AppState;

/// Below this much free space on the job disk, health is `degraded`.
const LOW_DISK: u64 = 256 << 20;

/// `GET /health`: the process answers, and what of it is failing.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "The process is alive: `ok`, or `degraded` with the reason \
        (the job store unreachable, the job disk nearly full) while transcription goes on", body = Health)))]
pub async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    let mut reason = None;
    let jobs = match state.jobs() {
        Some(jobs) => {
            let stats = jobs.store.stats().await;
            if let Err(e) = &stats {
                reason = Some(e.to_string());
            }
            let disk_free_bytes = jobs.files.free_bytes();
            if disk_free_bytes.is_some_and(|free| free < LOW_DISK) {
                reason.get_or_insert_with(|| "the job disk is nearly full".to_string());
            }
            let stats = stats.ok();
            Some(JobsHealth {
                node: jobs.node.clone(),
                store: if stats.is_some() { "ok" } else { "unavailable" },
                queued: stats.as_ref().map(|s| s.queued),
                running: stats.as_ref().map(|s| s.running),
                oldest_queued_seconds: stats.as_ref().map(|s| {
                    s.oldest_queued_at.map_or(0.0, |t| {
                        (crate::jobs::model::now_ms() - t).max(0) as f64 / 1000.0
                    })
                }),
                disk_free_bytes,
            })
        }
        None => None,
    };
    Json(Health {
        status: if reason.is_some() { "degraded" } else { "ok" },
        reason,
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
