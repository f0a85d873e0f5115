//! Prometheus metrics, served on their own listener so they can stay on
//! loopback while the API is public. Request metrics are labelled with the
//! route *template* (`/v1/models/{id}`), never the raw path.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::models::State as ModelState;
use crate::state::AppState;

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The process-wide recorder (installed once).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .expect("static, non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder (a second server in one test process) keeps its own.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Decrements the in-flight gauge however the request ends (a client that
/// disconnects drops the future mid-way).
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
        metrics::gauge!("glagol_http_requests_in_flight").increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("glagol_http_requests_in_flight").decrement(1.0);
    }
}

/// Counts requests, their latency and how many are in flight.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let start = Instant::now();
    let in_flight = InFlight::enter();
    let response = next.run(req).await;
    drop(in_flight);
    let status = response.status().as_u16().to_string();
    metrics::counter!("glagol_http_requests_total", "route" => route.clone(), "method" => method, "status" => status).increment(1);
    metrics::histogram!("glagol_http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

/// `GET /metrics` on the metrics listener.
pub async fn render(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    for (model, status) in state.registry.list() {
        for s in ModelState::ALL {
            metrics::gauge!("glagol_model_state", "model" => model.name.clone(), "state" => s.name())
                .set(if status.state == s { 1.0 } else { 0.0 });
        }
        metrics::gauge!("glagol_queue_depth", "model" => model.name.clone())
            .set(status.queued as f64);
    }
    metrics::gauge!("glagol_audio_memory_bytes").set(state.service.audio_memory_used() as f64);
    (
        [("content-type", "text/plain; version=0.0.4")],
        handle().render(),
    )
}
