//! The HTTP transport: the router with its policy layers, the routes, the
//! wire types and the one mapping of errors to responses.

mod assets;
pub mod error;
pub mod extract;
mod linger;
pub mod listen;
pub mod metrics;
pub mod openapi;
pub mod policy;
pub mod realtime;
pub mod routes;
pub mod types;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{delete, get, post};
use axum::Router;

use self::policy::{auth, cors, rate_limit, request_id, scope, Policy};
use self::routes::{client_secrets, health, jobs, models, native, openai};
use crate::error::{ErrorKind, ServiceError};
use crate::state::AppState;

/// The application router.
pub fn router(state: Arc<AppState>) -> Router {
    let policy = Policy::new(state.clone());
    let api = Router::new()
        .route("/v1/models", get(models::list))
        .route("/v1/models/events", get(models::events))
        .route("/v1/models/catalog", get(models::catalog))
        .route("/v1/models/{id}", get(models::get))
        .route("/v1/models/{id}/load", post(models::load))
        .route("/v1/models/{id}/unload", post(models::unload))
        .route("/v1/audio/transcriptions", post(openai::transcriptions))
        .route("/v1/audio/translations", post(openai::translations))
        .route("/v1/transcribe", post(native::transcribe))
        .route("/v1/transcribe/stream", post(native::stream))
        .route("/v1/jobs", post(jobs::submit::submit).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::get).merge(delete(jobs::cancel)))
        .route("/v1/jobs/{id}/result", get(jobs::result))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        .route("/v1/ws", get(realtime::native::ws))
        .route("/v1/realtime", get(realtime::openai::realtime))
        .route(
            "/v1/realtime/client_secrets",
            post(client_secrets::client_secrets),
        )
        .route(
            "/v1/realtime/transcription_sessions",
            post(client_secrets::transcription_sessions),
        )
        .route_layer(from_fn_with_state(policy.clone(), scope::require_scope))
        .route_layer(from_fn_with_state(policy.clone(), rate_limit::rate_limit))
        .route_layer(from_fn_with_state(policy, auth::require_key));
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/", get(assets::app))
        .route("/ui/{*file}", get(assets::app_file))
        .route("/docs", get(assets::docs))
        .route("/docs/{file}", get(assets::docs_file))
        .merge(api)
        .fallback(|| async { ServiceError::new(ErrorKind::NotFound, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ServiceError::new(
                ErrorKind::MethodNotAllowed,
                "method_not_allowed",
                "this route does not answer to this method; see the Allow header",
            )
        })
        .layer(from_fn_with_state(state.clone(), policy::body_limit))
        .layer(DefaultBodyLimit::disable())
        .layer(from_fn_with_state(state.clone(), cors::cors))
        .layer(from_fn_with_state(state.clone(), policy::host_check))
        .route_layer(from_fn(metrics::track))
        .layer(from_fn(request_id::request_id))
        .with_state(state)
}
