//! `/v1/models`: list, inspect, load, unload, lifecycle events, and the
//! catalog of models that can be pulled.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::Stream;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use crate::error::ServiceError;
use crate::http::extract::Path;
use crate::http::types::CommonErrors;
use crate::http::types::{
    CatalogList, CatalogModel, LoadStatus, ModelInfo, ModelList, UnloadStatus,
};
use crate::models::LoadOutcome;
use crate::state::AppState;
use crate::sys;

/// `GET /v1/models`: OpenAI's list shape plus glagol's fields.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses(
        (status = 200, description = "Installed models with their state", body = ModelList),
        CommonErrors,
    ))]
pub async fn list(State(state): State<Arc<AppState>>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: state
            .registry
            .list()
            .into_iter()
            .map(|(m, s)| ModelInfo::new(&m, s))
            .collect(),
    })
}

/// `GET /v1/models/catalog`: the transcription models glagol can pull by
/// name, and whether each is installed here.
#[utoipa::path(get, path = "/v1/models/catalog", tag = "models",
    responses(
        (status = 200, description = "The catalog; install one with `glagol models pull NAME` on the server", body = CatalogList),
        CommonErrors,
    ))]
pub async fn catalog(State(state): State<Arc<AppState>>) -> Json<CatalogList> {
    let data = glagol_core::models::catalog::CATALOG
        .iter()
        .filter(|e| e.engine.transcribes())
        .map(|e| CatalogModel {
            id: e.name,
            engine: e.engine,
            description: e.description,
            languages: e.languages,
            size_bytes: e.size(),
            installed: state.registry.installed_any(e.name).is_some(),
        })
        .collect();
    Json(CatalogList {
        object: "list",
        data,
    })
}

/// `GET /v1/models/{id}`.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "models", params(("id" = String, Path, description = "Model id or alias")),
    responses(
        (status = 200, description = "The model and its state", body = ModelInfo),
        (status = 404, description = "No such model installed (`model_not_found`)", body = crate::http::types::ErrorBody),
        CommonErrors,
    ))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<ModelInfo>, ServiceError> {
    let id = state.config().resolve_model(Some(&id));
    let (model, status) = state.registry.get(&id)?;
    Ok(Json(ModelInfo::new(&model, status)))
}

/// `POST /v1/models/{id}/load`: 202 `load_initiated` or 200 `already_ready`.
#[utoipa::path(post, path = "/v1/models/{id}/load", tag = "models", params(("id" = String, Path, description = "Model id or alias")),
    responses(
        (status = 200, description = "Already loaded (`already_ready`)", body = LoadStatus),
        (status = 202, description = "Loading started or under way (`load_initiated`); watch /v1/models/events", body = LoadStatus),
        (status = 404, description = "No such model installed (`model_not_found`)", body = crate::http::types::ErrorBody),
        CommonErrors,
    ))]
pub async fn load(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<LoadStatus>), ServiceError> {
    let id = state.config().resolve_model(Some(&id));
    let (code, status) = match state.registry.load(&id)? {
        LoadOutcome::AlreadyReady => (StatusCode::OK, "already_ready"),
        LoadOutcome::Initiated => (StatusCode::ACCEPTED, "load_initiated"),
    };
    Ok((code, Json(LoadStatus { id, status })))
}

/// `POST /v1/models/{id}/unload`: frees the model; reports RSS before/after.
#[utoipa::path(post, path = "/v1/models/{id}/unload", tag = "models", params(("id" = String, Path, description = "Model id or alias")),
    responses(
        (status = 200, description = "Unloaded (or was not loaded), with process RSS before and after", body = UnloadStatus),
        (status = 404, description = "No such model installed (`model_not_found`)", body = crate::http::types::ErrorBody),
        CommonErrors,
    ))]
pub async fn unload(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<UnloadStatus>, ServiceError> {
    let id = state.config().resolve_model(Some(&id));
    let before = sys::rss_bytes();
    let registry = state.registry.clone();
    let name = id.clone();
    let was_loaded = tokio::task::spawn_blocking(move || registry.unload(&name))
        .await
        .map_err(|e| ServiceError::internal(e.to_string()))??;
    Ok(Json(UnloadStatus {
        id,
        status: if was_loaded { "unloaded" } else { "not_loaded" },
        rss_before_bytes: before,
        rss_after_bytes: sys::rss_bytes(),
    }))
}

/// `GET /v1/models/events`: lifecycle events as server-sent events.
#[utoipa::path(get, path = "/v1/models/events", tag = "models",
    responses(
        (status = 200, description = "Server-sent events `model_loading`, `model_ready`, `model_unloaded`, \
            `model_waiting_for_memory`, `model_failed`; data `{event, model, message?}`; keep-alive comments every 15 s",
            content_type = "text/event-stream", body = crate::models::ModelEvent),
        CommonErrors,
    ))]
pub async fn events(
    State(state): State<Arc<AppState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(state.registry.subscribe()).filter_map(|e| {
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
