//! glagol-server: the HTTP service around `glagol-core`.
//!
//! It owns what exists only because there is a network in front of the
//! engines: routes (health, models, the OpenAI-compatible API, the native
//! API), the model manager (load on demand with warm-up, idle unload, a
//! bounded worker pool and queue per model), and policy (loopback by
//! default, API keys, body limits, inference timeouts, graceful drain).
//! Recognition itself stays in `glagol-core`; handlers only parse, schedule
//! and format.

mod batch;
pub mod config;
mod error;
mod gate;
mod job;
pub mod manager;
mod metrics;
mod openapi;
mod policy;
mod routes;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
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

/// Re-reads the configuration (flags, environment, file) on SIGHUP.
pub type Reloader = Box<dyn Fn() -> anyhow::Result<ServerConfig> + Send + Sync>;

/// Shared by every handler.
pub struct AppState {
    /// Swapped whole on SIGHUP; handlers take a snapshot per request.
    config: RwLock<Arc<ServerConfig>>,
    pub manager: Arc<ModelManager>,
    pub shutting_down: AtomicBool,
    rate_limiter: RwLock<Option<Arc<policy::RateLimiter>>>,
    vad: OnceLock<Result<Arc<VadModel>, String>>,
    reloader: Option<Reloader>,
}

impl AppState {
    pub fn new(config: ServerConfig, reloader: Option<Reloader>) -> Arc<AppState> {
        let engine_config = EngineConfig {
            threads: config.threads,
            ..Default::default()
        };
        let manager = ModelManager::new(
            ModelStore::new(&config.models_dir),
            engine_config,
            config.workers,
            config.queue_depth,
            manager::Batching {
                max_batch: config.max_batch,
                max_wait: config.batch_wait,
            },
        );
        manager.set_memory_policy(config.memory_limit, config.memory_retry);
        Arc::new(AppState {
            rate_limiter: RwLock::new(
                config
                    .rate_limit_per_minute
                    .map(|n| Arc::new(policy::RateLimiter::new(n))),
            ),
            config: RwLock::new(Arc::new(config)),
            manager,
            shutting_down: AtomicBool::new(false),
            vad: OnceLock::new(),
            reloader,
        })
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn rate_limiter(&self) -> Option<Arc<policy::RateLimiter>> {
        self.rate_limiter
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the configuration and applies its reloadable settings
    /// (keys, origins, rate limit, body/audio limits, timeouts, TTL,
    /// aliases, default model, memory limit). Settings bound at start (listen address,
    /// models dir, workers, queue, threads, metrics address, preload) keep
    /// their value; a change to them is reported as needing a restart. On
    /// any error the old settings stay.
    pub fn reload(&self) -> anyhow::Result<Vec<String>> {
        let Some(reloader) = &self.reloader else {
            anyhow::bail!("this server was started without a reloadable configuration");
        };
        let old = self.config();
        let mut new = reloader()?;
        let mut notes = Vec::new();
        macro_rules! fixed {
            ($($field:ident),*) => {$(
                if new.$field != old.$field {
                    notes.push(format!("{} changed; restart to apply it", stringify!($field)));
                    new.$field = old.$field.clone();
                }
            )*};
        }
        fixed!(
            listen,
            insecure_no_auth,
            models_dir,
            preload,
            workers,
            queue_depth,
            max_batch,
            batch_wait,
            threads,
            metrics_listen
        );
        new.validate()?;
        macro_rules! changed {
            ($($field:ident),*) => {$(
                if new.$field != old.$field {
                    notes.push(format!("{} reloaded", stringify!($field)));
                }
            )*};
        }
        changed!(
            api_key_hashes,
            allowed_origins,
            rate_limit_per_minute,
            max_body_bytes,
            max_audio_seconds,
            inference_timeout,
            idle_ttl,
            wait_for_load,
            aliases,
            default_model,
            drain,
            memory_limit,
            memory_retry
        );
        self.manager
            .set_memory_policy(new.memory_limit, new.memory_retry);
        if new.rate_limit_per_minute != old.rate_limit_per_minute {
            *self.rate_limiter.write().unwrap_or_else(|p| p.into_inner()) = new
                .rate_limit_per_minute
                .map(|n| Arc::new(policy::RateLimiter::new(n)));
        }
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
        Ok(notes)
    }

    /// Request model names (`whisper-1`, configured aliases) → installed names.
    pub fn resolve_alias(&self, name: &str) -> String {
        let config = self.config();
        if let Some(target) = config.aliases.get(name) {
            return target.clone();
        }
        if name == "whisper-1" || name.is_empty() {
            return config.default_model.clone();
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
    let config = state.config();
    if config.api_key_hashes.is_empty() {
        return Ok(next.run(req).await);
    }
    let headers = req.headers();
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    match presented {
        Some(key) if config.api_key_hashes.contains(&config::hash_key(key)) => {
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
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(openapi::docs))
        .route("/docs/{file}", get(openapi::docs_asset))
        .merge(api)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            policy::body_limit,
        ))
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), policy::cors))
        .route_layer(middleware::from_fn(metrics::track))
        .layer(middleware::from_fn(policy::request_id))
        .with_state(state)
}

/// Binds, prints the address, serves until SIGTERM/SIGINT, then drains;
/// SIGHUP calls `reloader` and applies what it may (see [`AppState::reload`]).
pub async fn serve(config: ServerConfig, reloader: Option<Reloader>) -> anyhow::Result<()> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let state = AppState::new(config, reloader);
    for name in &state.config().preload {
        let name = state.resolve_alias(name);
        state
            .manager
            .load(&name)
            .map_err(|e| anyhow::anyhow!("preload {name}: {}", e.message))?;
    }
    let reaper_state = state.clone();
    tokio::spawn(async move {
        loop {
            // The TTL is read each round, so a reload takes effect.
            let ttl = reaper_state.config().idle_ttl;
            let tick = ttl.map_or(Duration::from_secs(1), |t| {
                (t / 4).clamp(Duration::from_millis(250), Duration::from_secs(10))
            });
            tokio::time::sleep(tick).await;
            if let Some(ttl) = reaper_state.config().idle_ttl {
                let m = reaper_state.manager.clone();
                let _ = tokio::task::spawn_blocking(move || m.reap_idle(ttl)).await;
            }
        }
    });
    let hup_state = state.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            match hup_state.reload() {
                Ok(notes) if notes.is_empty() => {
                    tracing::info!("configuration reloaded: nothing changed")
                }
                Ok(notes) => tracing::info!("configuration reloaded: {}", notes.join("; ")),
                Err(e) => tracing::error!("configuration not reloaded, keeping the old one: {e:#}"),
            }
        }
    });
    metrics::handle();
    if let Some(metrics_addr) = state.config().metrics_listen {
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

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown_state = state.clone();
    let shutdown = async move {
        wait_for_signal().await;
        shutdown_state.shutting_down.store(true, Ordering::SeqCst);
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop_tx.send(true);
    };
    let drain_state = state.clone();
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let mut stop_rx2 = stop_rx.clone();
    tokio::select! {
        r = server => r?,
        drain = async move {
            let _ = stop_rx2.wait_for(|s| *s).await;
            let drain = drain_state.config().drain;
            tokio::time::sleep(drain).await;
            drain
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
