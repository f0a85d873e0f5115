//! Which scope each API operation needs: one table, read by the check in
//! front of the routes and by the OpenAPI document (each operation's
//! security requirement names its scope), so the two cannot disagree. The
//! same check holds a key to its daily audio quota.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::auth::{Caller, SecretUse};
use super::Policy;
use crate::config::{Scope, Tenant};
use crate::error::{ErrorKind, ServiceError};

/// What an operation needs beyond a valid key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Any valid key (reading the model list).
    AnyKey,
    Scope(Scope),
}

/// Every operation behind the key check, by method and route template.
pub const OPERATIONS: &[(&str, &str, Needs)] = &[
    ("GET", "/v1/models", Needs::AnyKey),
    ("GET", "/v1/models/{id}", Needs::AnyKey),
    ("GET", "/v1/models/events", Needs::Scope(Scope::Models)),
    ("GET", "/v1/models/catalog", Needs::AnyKey),
    ("POST", "/v1/models/{id}/load", Needs::Scope(Scope::Models)),
    (
        "POST",
        "/v1/models/{id}/unload",
        Needs::Scope(Scope::Models),
    ),
    (
        "POST",
        "/v1/audio/transcriptions",
        Needs::Scope(Scope::Transcribe),
    ),
    (
        "POST",
        "/v1/audio/translations",
        Needs::Scope(Scope::Transcribe),
    ),
    ("POST", "/v1/transcribe", Needs::Scope(Scope::Transcribe)),
    (
        "POST",
        "/v1/transcribe/stream",
        Needs::Scope(Scope::Transcribe),
    ),
    ("POST", "/v1/jobs", Needs::Scope(Scope::Jobs)),
    ("GET", "/v1/jobs", Needs::Scope(Scope::Jobs)),
    ("GET", "/v1/jobs/{id}", Needs::Scope(Scope::Jobs)),
    ("DELETE", "/v1/jobs/{id}", Needs::Scope(Scope::Jobs)),
    ("GET", "/v1/jobs/{id}/result", Needs::Scope(Scope::Jobs)),
    ("GET", "/v1/jobs/{id}/events", Needs::Scope(Scope::Jobs)),
    ("GET", "/v1/ws", Needs::Scope(Scope::Live)),
    ("GET", "/v1/realtime", Needs::Scope(Scope::Live)),
    (
        "POST",
        "/v1/realtime/client_secrets",
        Needs::Scope(Scope::Live),
    ),
    (
        "POST",
        "/v1/realtime/transcription_sessions",
        Needs::Scope(Scope::Live),
    ),
];

/// What `method path` needs (`HEAD` as its `GET`); an operation missing
/// from the table needs `admin`, so a route added without a line here is
/// closed, not open.
pub fn needs(method: &Method, path: &str) -> Needs {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    OPERATIONS
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map_or(Needs::Scope(Scope::Admin), |(_, _, n)| *n)
}

pub fn missing(scope: Scope) -> ServiceError {
    ServiceError::new(
        ErrorKind::Forbidden,
        "insufficient_scope",
        format!(
            "this API key lacks the '{}' scope this operation needs",
            scope.name()
        ),
    )
}

/// Whether an operation recognises audio (and so counts against a quota).
fn uses_audio(method: &Method, path: &str, needs: Needs) -> bool {
    let minting = path.starts_with("/v1/realtime/");
    matches!(needs, Needs::Scope(Scope::Transcribe | Scope::Live)) && !minting
        || (method == Method::POST && path == "/v1/jobs")
}

/// `429 quota_exceeded` when the caller's key has used its daily audio.
fn check_quota(policy: &Policy, tenant: &Tenant) -> Result<(), ServiceError> {
    let Some(quota) = tenant.audio_seconds_per_day else {
        return Ok(());
    };
    let (used, resets_in) = policy.app.service.usage.today(&tenant.name);
    if used < quota {
        return Ok(());
    }
    let resets_at = std::time::SystemTime::now() + resets_in;
    let resets_at = resets_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    Err(ServiceError::new(
        ErrorKind::RateLimited,
        "quota_exceeded",
        format!(
            "this API key has used {used:.0} of its {quota:.0} audio seconds for today (UTC); \
             the quota resets at {resets_at} (Unix time), in {} s",
            resets_in.as_secs()
        ),
    )
    .retry_after(resets_in))
}

/// Refuses a caller without the operation's scope (`403 insufficient_scope`),
/// or past its daily audio (`429 quota_exceeded`).
pub async fn require_scope(
    State(policy): State<Arc<Policy>>,
    caller: Caller,
    path: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Result<Response, ServiceError> {
    let path = path.as_ref().map_or("", MatchedPath::as_str);
    if let Some(key) = caller.account() {
        metrics::counter!("glagol_key_requests_total", "key" => key, "route" => path.to_string())
            .increment(1);
    }
    // A client secret's scope was checked with the secret, and a refusal
    // is told over the socket it opens (see `auth::SecretUse`).
    let secret = req.extensions().get::<SecretUse>().is_some();
    let needs = needs(req.method(), path);
    if let (Needs::Scope(scope), false) = (needs, secret) {
        if !caller.tenant().may(scope) {
            return Err(missing(scope));
        }
    }
    if uses_audio(req.method(), path, needs) {
        check_quota(&policy, caller.tenant())?;
    }
    Ok(next.run(req).await)
}
