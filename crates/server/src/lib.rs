//! glagol-server: the HTTP service around `glagol-core`.
//!
//! It owns what exists only because there is a network in front of the
//! engines: routes (health, models, the OpenAI-compatible API, the native
//! API), the model manager (load on demand with warm-up, idle unload, a
//! bounded worker pool and queue per model), and policy (loopback by
//! default, API keys, body limits, inference timeouts, graceful drain).
//! Recognition itself stays in `glagol-core`; handlers only parse, schedule
//! and format.

pub mod config;
mod error;
mod job;
pub mod manager;
mod metrics;
mod policy;
mod routes;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use glagol_core::engine::EngineConfig;
use glagol_core::models::ModelStore;
use glagol_core::vad::VadModel;

pub use config::{FileConfig, ServerConfig};
use error::ApiError;
use manager::ModelManager;

/// Shared by every handler.
pub struct AppState {
    pub config: ServerConfig,
    pub manager: Arc<ModelManager>,
    pub shutting_down: AtomicBool,
    rate_limiter: Option<policy::RateLimiter>,
    vad: OnceLock<Result<Arc<VadModel>, String>>,
}

impl AppState {
    pub fn new(config: ServerConfig) -> Arc<AppState> {
        let engine_config = EngineConfig {
            threads: config.threads,
            ..Default::default()
        };
        let manager = ModelManager::new(
            ModelStore::new(&config.models_dir),
            engine_config,
            config.workers,
            config.queue_depth,
        );
        Arc::new(AppState {
            rate_limiter: config.rate_limit_per_minute.map(policy::RateLimiter::new),
            config,
            manager,
            shutting_down: AtomicBool::new(false),
            vad: OnceLock::new(),
        })
    }

    /// Request model names (`whisper-1`, configured aliases) → installed names.
    pub fn resolve_alias(&self, name: &str) -> String {
        if let Some(target) = self.config.aliases.get(name) {
            return target.clone();
        }
        if name == "whisper-1" || name.is_empty() {
            return self.config.default_model.clone();
        }
        name.to_string()
    }
}

/// `Authorization: Bearer KEY` or `X-API-Key: KEY`, when keys are configured.
async fn require_key(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if state.config.api_key_hashes.is_empty() {
        return Ok(next.run(req).await);
    }
    let headers = req.headers();
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    match presented {
        Some(key) if state.config.api_key_hashes.contains(&config::hash_key(key)) => {
            Ok(next.run(req).await)
        }
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "the API key is not valid",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
            "send an API key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
        )),
    }
}

/// The application router.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/models", get(routes::models::list))
        .route("/v1/models/events", get(routes::models::events))
        .route("/v1/models/{id}", get(routes::models::get))
        .route("/v1/models/{id}/load", post(routes::models::load))
        .route("/v1/models/{id}/unload", post(routes::models::unload))
        .route(
            "/v1/audio/transcriptions",
            post(routes::openai::transcriptions),
        )
        .route("/v1/audio/translations", post(routes::openai::translations))
        .route("/v1/transcribe", post(routes::transcribe::transcribe))
        .route("/v1/transcribe/stream", post(routes::transcribe::stream))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            policy::rate_limit,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .route("/health", get(routes::health::health))
        .route("/ready", get(routes::health::ready))
        .merge(api)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), policy::cors))
        .route_layer(middleware::from_fn(metrics::track))
        .layer(middleware::from_fn(policy::request_id))
        .with_state(state)
}

/// Binds, prints the address, serves until SIGTERM/SIGINT, then drains.
pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let state = AppState::new(config);
    for name in &state.config.preload {
        let name = state.resolve_alias(name);
        state
            .manager
            .load(&name)
            .map_err(|e| anyhow::anyhow!("preload {name}: {}", e.message))?;
    }
    if let Some(ttl) = state.config.idle_ttl {
        let manager = state.manager.clone();
        tokio::spawn(async move {
            let tick = (ttl / 4).clamp(Duration::from_millis(250), Duration::from_secs(10));
            loop {
                tokio::time::sleep(tick).await;
                let m = manager.clone();
                let _ = tokio::task::spawn_blocking(move || m.reap_idle(ttl)).await;
            }
        });
    }
    metrics::handle();
    if let Some(metrics_addr) = state.config.metrics_listen {
        let ml = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {metrics_addr}: {e}"))?;
        println!("glagol metrics on http://{}/metrics", ml.local_addr()?);
        let app = Router::new()
            .route("/metrics", get(metrics::render))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(ml, app).await;
        });
    }
    println!("glagol listening on http://{addr}");
    tracing::info!(%addr, "listening");

    let drain = state.config.drain;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown_state = state.clone();
    let shutdown = async move {
        wait_for_signal().await;
        shutdown_state.shutting_down.store(true, Ordering::SeqCst);
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop_tx.send(true);
    };
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let mut stop_rx2 = stop_rx.clone();
    tokio::select! {
        r = server => r?,
        _ = async move {
            let _ = stop_rx2.wait_for(|s| *s).await;
            tokio::time::sleep(drain).await;
        } => {
            tracing::warn!("drain window of {} s passed; exiting with requests still open", drain.as_secs());
        }
    }
    drop(stop_rx);
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
