//! glagol-server: recognition as a network service, on top of `glagol-core`.
//!
//! Layers, top down (each only uses the ones below it):
//! - [`http`]: the transport — router, policy middleware, routes, wire
//!   types, OpenAPI, and the one mapping of errors to HTTP; [`wyoming`]
//!   beside it, Home Assistant's protocol on its own listener.
//! - [`jobs`]: durable jobs — uploads on disk, a store, a runner that goes
//!   through the service, signed webhooks.
//! - [`service`]: transport-neutral recognition — a file in, a stream of
//!   events out.
//! - [`scheduler`]: one per loaded model — a queue with work classes and
//!   the worker threads that call the engine, in batches where it pays.
//! - [`models`]: the registry of installed and loaded models, the loader,
//!   and leases.
//! - Ground floor: [`config`] (each setting declared once), [`error`] (the
//!   domain error), [`state`], and `sys` (the operating system).

pub mod config;
pub mod error;
pub mod http;
pub mod jobs;
pub mod models;
pub mod scheduler;
pub mod service;
pub mod state;
mod sys;
pub mod wyoming;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::signal::unix::{signal, Signal, SignalKind};

pub use config::{Config, Overrides, Settings};
pub use state::{AppState, Reloader};

/// Binds, prints the address, serves until SIGTERM/SIGINT, then drains;
/// SIGHUP calls `reloader` and applies what it may (see [`AppState::reload`]).
pub async fn serve(config: Config, reloader: Option<Reloader>) -> anyhow::Result<()> {
    // The recorder first: metrics recorded before it exists are lost (a
    // preloaded model's load time, its first states).
    http::metrics::handle();
    let listener = tokio::net::TcpListener::bind(config.settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.settings.listen))?;
    let addr = listener.local_addr()?;
    let state = AppState::new(config, reloader, models::real_engines());
    for name in &state.config().settings.preload {
        let name = state.config().resolve_model(Some(name));
        state
            .registry
            .load(&name)
            .map_err(|e| anyhow::anyhow!("preload {name}: {}", e.message))?;
    }
    let jobs = jobs::Jobs::start(&state)
        .await
        .map_err(|e| anyhow::anyhow!("jobs: {e:#}"))?;
    state.set_jobs(jobs.clone());
    // Signal handlers exist before the address is announced: a signal sent
    // as soon as the server answers must not hit the default action.
    let hangup = signal(SignalKind::hangup())?;
    let stop = [
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
    ];
    tokio::spawn(reap_idle(state.clone()));
    tokio::spawn(reload_on_hangup(state.clone(), hangup));
    if let Some(metrics_addr) = state.config().metrics_addr {
        let ml = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {metrics_addr}: {e}"))?;
        println!("glagol metrics on http://{}/metrics", ml.local_addr()?);
        let app = Router::new()
            .route("/metrics", get(http::metrics::render))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(ml, app).await;
        });
    }
    let wyoming_uri = state.config().settings.wyoming.clone();
    if !wyoming_uri.is_empty() {
        let address =
            wyoming::Address::parse(&wyoming_uri).map_err(|e| anyhow::anyhow!("wyoming: {e}"))?;
        let state_for_wyoming = state.clone();
        let listener = wyoming::Listener::bind(&address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for Wyoming on {wyoming_uri}: {e}"))?;
        println!("glagol wyoming on {}", listener.uri());
        let zeroconf = state.config().settings.wyoming_zeroconf.clone();
        let announced = match listener.tcp_addr().filter(|_| !zeroconf.is_empty()) {
            Some(addr) => Some(
                wyoming::zeroconf::announce(&zeroconf, addr)
                    .map_err(|e| anyhow::anyhow!("wyoming zeroconf: {e}"))?,
            ),
            None => None,
        };
        tokio::spawn(async move {
            wyoming::serve(listener, state_for_wyoming).await;
            drop(announced);
        });
    }
    println!("glagol listening on http://{addr}");
    tracing::info!(%addr, "listening");

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let shutdown_state = state.clone();
    let shutdown = async move {
        let [mut term, mut int] = stop;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        shutdown_state.begin_shutdown();
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop_tx.send(true);
    };
    let header_timeout = Duration::from_secs(state.config().settings.header_read_timeout);
    let http = http::listen::serve(
        listener,
        http::router(state.clone()),
        header_timeout,
        shutdown,
    );
    // Live sessions outlive their connection's upgrade: wait for them too.
    let sessions = state.service.sessions.clone();
    let server = async move {
        http.await;
        sessions.all_closed().await;
    };
    tokio::pin!(server);
    let deadline = async {
        let _ = stop_rx.wait_for(|s| *s).await;
        tokio::time::sleep(state.config().drain()).await;
    };
    let drained = tokio::select! {
        () = &mut server => true,
        () = deadline => false,
    };
    if drained {
        jobs.handed_back(Duration::from_secs(5)).await;
    } else {
        // Requests still waiting for a worker get a proper answer, not a reset.
        tracing::warn!(
            "drain window of {} s passed; refusing waiting requests, exiting with running ones",
            state.config().drain().as_secs()
        );
        state
            .registry
            .abandon_queued(&error::ServiceError::shutting_down());
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut server).await;
        jobs.handed_back(Duration::from_secs(2)).await;
    }
    stop_engines(&state, Duration::from_secs(10)).await;
    Ok(())
}

/// Waits, up to `limit`, for every engine thread to return (see
/// [`models::Registry::stop_all`]). A plain thread, not `spawn_blocking`:
/// the runtime's drop would wait for a blocking task without a bound.
async fn stop_engines(state: &Arc<AppState>, limit: Duration) {
    let (done, stopped) = tokio::sync::oneshot::channel();
    let registry = state.registry.clone();
    let spawned = std::thread::Builder::new()
        .name("stop-engines".into())
        .spawn(move || {
            registry.stop_all();
            let _ = done.send(());
        });
    if spawned.is_ok() && tokio::time::timeout(limit, stopped).await.is_err() {
        tracing::warn!(
            "engines still busy {} s after the drain; exiting anyway",
            limit.as_secs()
        );
    }
}

/// Unloads idle models; the TTL is read each round, so a reload applies.
async fn reap_idle(state: Arc<AppState>) {
    loop {
        let ttl = state.config().idle_ttl();
        let tick = ttl.map_or(Duration::from_secs(1), |t| {
            (t / 4).clamp(Duration::from_millis(250), Duration::from_secs(10))
        });
        tokio::time::sleep(tick).await;
        if let Some(ttl) = state.config().idle_ttl() {
            let registry = state.registry.clone();
            let speakers = state.service.speakers.clone();
            let _ = tokio::task::spawn_blocking(move || {
                registry.reap_idle(ttl);
                speakers.reap_idle(ttl);
            })
            .await;
        }
    }
}

async fn reload_on_hangup(state: Arc<AppState>, mut hup: Signal) {
    while hup.recv().await.is_some() {
        match state.reload() {
            Ok(notes) if notes.is_empty() => {
                tracing::info!("configuration reloaded: nothing changed")
            }
            Ok(notes) => tracing::info!("configuration reloaded: {}", notes.join("; ")),
            Err(e) => tracing::error!("configuration not reloaded, keeping the old one: {e:#}"),
        }
    }
}
