//! `/v1/models`: list, inspect, load, unload, and lifecycle events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Json;
use futures_util::Stream;
use serde_json::json;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use crate::error::ApiError;
use crate::manager::{rss_bytes, LoadOutcome};
use crate::AppState;

/// `GET /v1/models`: OpenAI's list shape plus glagol's fields.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses(
        (status = 200, description = "Installed models with their state", body = crate::openapi::ModelList),
        (status = 401, description = "API key missing or invalid", body = crate::openapi::ErrorBody),
    ))]
pub async fn list(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    Json(json!({ "object": "list", "data": state.manager.list() }))
}

/// `GET /v1/models/{id}`.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "models", params(("id" = String, Path, description = "Model id or alias")),
    responses(
        (status = 200, description = "The model and its state", body = crate::manager::ModelInfo),
        (status = 401, description = "API key missing or invalid", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such model installed (`model_not_found`)", body = crate::openapi::ErrorBody),
    ))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = state.resolve_alias(&id);
    state.manager.info(&id).map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("model '{id}' is not installed"),
        )
    })
}

/// `POST /v1/models/{id}/load`: 202 `load_initiated` or 200 `already_ready`.
#[utoipa::path(post, path = "/v1/models/{id}/load", tag = "models", params(("id" = String, Path, description = "Model id or alias")),
    responses(
        (status = 200, description = "Already loaded (`already_ready`)", body = crate::openapi::LoadStatus),
        (status = 202, description = "Loading started or under way (`load_initiated`); watch /v1/models/events", body = crate::openapi::LoadStatus),
        (status = 401, description = "API key missing or invalid", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such model installed (`model_not_found`)", body = crate::openapi::ErrorBody),
    ))]
pub async fn load(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = state.resolve_alias(&id);
    Ok(match state.manager.load(&id)? {
        LoadOutcome::AlreadyReady => (
            StatusCode::OK,
            Json(json!({ "id": id, "status": "already_ready" })),
        ),
        LoadOutcome::Initiated => (
            StatusCode::ACCEPTED,
            Json(json!({ "id": id, "status": "load_initiated" })),
        ),
    })
}

/// `POST /v1/models/{id}/unload`: frees the model; reports RSS before/after.
#[utoipa::path(post, path = "/v1/models/{id}/unload", tag = "models", params(("id" = String, Path, description = "Model id or alias")),
    responses(
        (status = 200, description = "Unloaded (or was not loaded), with process RSS before and after", body = crate::openapi::UnloadStatus),
        (status = 401, description = "API key missing or invalid", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such model installed (`model_not_found`)", body = crate::openapi::ErrorBody),
    ))]
pub async fn unload(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = state.resolve_alias(&id);
    let before = rss_bytes();
    let manager = state.manager.clone();
    let id2 = id.clone();
    let was_loaded = tokio::task::spawn_blocking(move || manager.unload(&id2))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    let after = rss_bytes();
    Ok(Json(json!({
        "id": id,
        "status": if was_loaded { "unloaded" } else { "not_loaded" },
        "rss_before_bytes": before,
        "rss_after_bytes": after,
    })))
}

/// `GET /v1/models/events`: lifecycle events as server-sent events.
#[utoipa::path(get, path = "/v1/models/events", tag = "models",
    responses(
        (status = 200, description = "Server-sent events `model_loading`, `model_ready`, `model_unloaded`, \
            `model_waiting_for_memory`, `model_failed`; data `{event, model, message?}`; keep-alive comments every 15 s",
            content_type = "text/event-stream", body = String),
        (status = 401, description = "API key missing or invalid", body = crate::openapi::ErrorBody),
    ))]
pub async fn events(
    State(state): State<Arc<AppState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(state.manager.subscribe()).filter_map(|e| {
        let e = e.ok()?;
        Some(Ok(Event::default()
            .event(e.event)
            .data(serde_json::to_string(&e).unwrap_or_default())))
    });
    Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    )
}
