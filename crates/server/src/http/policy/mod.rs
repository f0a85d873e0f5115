//! Policy in front of the API, as middleware: request ids, the browser
//! origin policy, the `Host` check, body limits, API keys, scopes and rate
//! limits.

pub mod auth;
pub mod client_secret;
pub mod cors;
pub mod rate_limit;
pub mod request_id;
pub mod scope;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use self::rate_limit::Buckets;
use crate::error::{ErrorKind, ServiceError};
use crate::state::AppState;

/// Failed key attempts allowed per client address per minute.
const FAILED_KEYS_PER_MINUTE: u32 = 20;

/// The policy middleware's state: the app, and the rate-limit buckets per
/// configured rate (a key with its own rate has buckets of that rate).
pub struct Policy {
    pub app: Arc<AppState>,
    buckets: Mutex<HashMap<u32, Arc<Buckets>>>,
    failed_keys: Buckets,
}

impl Policy {
    pub fn new(app: Arc<AppState>) -> Arc<Policy> {
        Arc::new(Policy {
            app,
            buckets: Mutex::new(HashMap::new()),
            failed_keys: Buckets::new(FAILED_KEYS_PER_MINUTE).expect("a positive constant"),
        })
    }

    /// The buckets for `rate` requests per minute (None: unlimited).
    fn buckets(&self, rate: u32) -> Option<Arc<Buckets>> {
        let mut all = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = all.get(&rate) {
            return Some(b.clone());
        }
        let b = Arc::new(Buckets::new(rate)?);
        all.insert(rate, b.clone());
        Some(b)
    }

    /// Counts a failed key attempt; too many → `rate_limited`.
    fn failed_attempt(&self, ip: IpAddr) -> Result<(), ServiceError> {
        self.failed_keys.take(&ip.to_string()).map_err(|wait| {
            rate_limit::limited(wait, "too many failed API key attempts; slow down")
        })
    }
}

/// Refuses bodies over the configured limit: at once when `Content-Length`
/// says so (a client that asked `Expect: 100-continue` never sends the
/// body), else as the body is read (the extractors then answer 413
/// `payload_too_large`). Read per request, so a reload applies to the next.
pub async fn body_limit(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let settings = &state.config().settings;
    // Job uploads stream to disk and have their own limit (plus the form's framing).
    let limit = if req.method() == axum::http::Method::POST && req.uri().path() == "/v1/jobs" {
        settings.max_job_bytes.saturating_add(1 << 20)
    } else {
        settings.max_body_bytes
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared.filter(|n| *n > limit) {
        let mut response = ServiceError::new(
            ErrorKind::TooLarge,
            "payload_too_large",
            format!("the body is {declared} bytes; the limit is {limit} bytes"),
        )
        .into_response();
        response.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return response;
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let req = req.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
    next.run(req).await
}

/// Defends a loopback server without keys against DNS rebinding: a page on
/// a foreign name that resolves to 127.0.0.1 sends that name as `Host`;
/// only loopback names and the listen address are accepted then.
pub async fn host_check(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let config = state.config();
    let listen = config.settings.listen;
    if !config.keys.is_empty() || !listen.ip().is_loopback() {
        return next.run(req).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| cors::host_of(&h.to_ascii_lowercase()).to_string());
    match host {
        Some(h) if !cors::is_loopback_host(&h) && h != listen.ip().to_string() => ServiceError::new(
            ErrorKind::Forbidden,
            "host_not_allowed",
            "this server answers only to loopback host names; configure API keys to serve other names",
        )
        .into_response(),
        _ => next.run(req).await,
    }
}
