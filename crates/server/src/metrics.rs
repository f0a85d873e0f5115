//! Prometheus metrics, served on their own listener so they can stay on
//! loopback while the API is public. Request metrics are labelled with the
//! route *template* (`/v1/models/{id}`), never the raw path.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::manager::State as ModelState;
use crate::AppState;

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The process-wide recorder (installed once).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .expect("static, non-empty buckets")
            .install_recorder()
            .expect("the metrics recorder is installed once per process")
    })
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
    metrics::gauge!("glagol_http_requests_in_flight").increment(1.0);
    let response = next.run(req).await;
    metrics::gauge!("glagol_http_requests_in_flight").decrement(1.0);
    let status = response.status().as_u16().to_string();
    metrics::counter!("glagol_http_requests_total", "route" => route.clone(), "method" => method, "status" => status).increment(1);
    metrics::histogram!("glagol_http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

/// Records one finished recognition.
pub fn record_inference(model: &str, audio_seconds: f64, inference_seconds: f64) {
    metrics::counter!("glagol_audio_milliseconds_total", "model" => model.to_string())
        .increment((audio_seconds * 1000.0) as u64);
    metrics::histogram!("glagol_inference_seconds", "model" => model.to_string())
        .record(inference_seconds);
}

/// `GET /metrics` on the metrics listener.
pub async fn render(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    for m in state.manager.list() {
        for s in [
            ModelState::Unloaded,
            ModelState::Loading,
            ModelState::Ready,
            ModelState::WaitingForMemory,
            ModelState::Failed,
        ] {
            let name = serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            metrics::gauge!("glagol_model_state", "model" => m.id.clone(), "state" => name)
                .set(if m.state == s { 1.0 } else { 0.0 });
        }
        metrics::gauge!("glagol_queue_depth", "model" => m.id.clone()).set(m.queued as f64);
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        handle().render(),
    )
}
