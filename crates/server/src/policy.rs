//! Policy layers in front of the API: request ids, the CORS origin
//! policy, and per-client rate limits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::ApiError;
use crate::AppState;

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
    let span =
        tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
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

/// Whether a browser origin is allowed: loopback origins always are,
/// others only when listed.
fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin)
        .split('/')
        .next()
        .unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// CORS: requests from a foreign browser origin get 403 `origin_not_allowed`;
/// allowed origins get the CORS headers, preflights included.
pub async fn cors(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(origin) = req
        .headers()
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
    else {
        return next.run(req).await;
    };
    if !origin_allowed(&origin, &state.config().allowed_origins) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!("origin {origin} is not allowed; add it to allowed_origins"),
        )
        .into_response();
    }
    let preflight = req.method() == Method::OPTIONS;
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&origin) {
        h.insert("access-control-allow-origin", v);
    }
    h.insert("vary", HeaderValue::from_static("origin"));
    if preflight {
        h.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            "access-control-allow-headers",
            HeaderValue::from_static("authorization, x-api-key, content-type, x-request-id"),
        );
        h.insert("access-control-max-age", HeaderValue::from_static("600"));
    }
    response
}

/// Caps the request body at the configured limit; reading past it makes
/// the extractors answer 413 `payload_too_large`. The limit is read per
/// request, so a reload applies to the next one. (No early refusal on
/// `Content-Length`: a client still sending its body would see a reset
/// connection instead of the 413.)
pub async fn body_limit(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let limit = state.config().max_body_bytes;
    let req = req.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
    next.run(req).await
}

/// Token buckets keyed by API key (when one is sent) or client IP.
pub struct RateLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute: per_minute as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token; on refusal, the seconds until one is available.
    fn take(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, t)| now.duration_since(*t).as_secs() < 120);
        }
        let (tokens, last) = buckets
            .entry(key.to_string())
            .or_insert((self.per_minute, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_minute / 60.0)
            .min(self.per_minute);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) * 60.0 / self.per_minute).ceil().max(1.0) as u64)
        }
    }
}

/// 429 `rate_limited` with `Retry-After` once a client's bucket is empty.
pub async fn rate_limit(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(limiter) = state.rate_limiter() else {
        return Ok(next.run(req).await);
    };
    let key = req
        .headers()
        .get("authorization")
        .or_else(|| req.headers().get("x-api-key"))
        .and_then(|v| v.to_str().ok())
        .map(|k| {
            format!(
                "key:{}",
                crate::config::hash_key(k.trim_start_matches("Bearer "))
            )
        })
        .or_else(|| {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| format!("ip:{}", c.0.ip()))
        })
        .unwrap_or_else(|| "anonymous".into());
    match limiter.take(&key) {
        Ok(()) => Ok(next.run(req).await),
        Err(wait) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; slow down",
        )
        .retry_after(wait)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_are_always_allowed() {
        for o in [
            "http://localhost:3000",
            "http://127.0.0.1",
            "https://127.0.0.5:8443",
            "http://[::1]:8080",
        ] {
            assert!(origin_allowed(o, &[]), "{o}");
        }
        assert!(!origin_allowed("https://evil.example", &[]));
        assert!(origin_allowed(
            "https://app.example",
            &["https://app.example".into()]
        ));
        assert!(!origin_allowed("http://localhost.evil.example", &[]));
    }

    #[test]
    fn buckets_refill_over_time() {
        let r = RateLimiter::new(2);
        assert!(r.take("a").is_ok() && r.take("a").is_ok());
        let wait = r.take("a").unwrap_err();
        assert!((1..=30).contains(&wait), "{wait}");
        assert!(r.take("b").is_ok());
    }
}
