//! Request ids: the client's `X-Request-Id` or a new one, on the response
//! and in the request's log span (with one access-log line per request).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Echoes the client's `X-Request-Id` or assigns one, on the response and
/// in the request's log span.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(String::from)
        .unwrap_or_else(|| {
            format!(
                "req-{:x}-{}",
                std::process::id(),
                NEXT_ID.fetch_add(1, Ordering::Relaxed)
            )
        });
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    req.headers_mut().insert("x-request-id", value.clone());
    let span = tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path(), key = tracing::field::Empty);
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, ms, "request failed");
        } else {
            tracing::info!(status, ms, "request");
        }
    });
    response.headers_mut().insert("x-request-id", value);
    response
}
