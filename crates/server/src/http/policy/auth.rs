//! API keys: `Authorization: Bearer KEY` (the scheme in any case) or
//! `X-API-Key: KEY`, when keys are configured. The caller — the tenant a
//! valid key stands for, or nobody in particular on a server without keys —
//! is left in the request for the scope check, the rate limiter and the
//! handlers, and its name in the request's log line. Failed attempts are
//! throttled per client address, so keys cannot be guessed at speed.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;

use super::{client_secret, scope, Policy};
use crate::config::{hash_key, Scope, Tenant};
use crate::error::{ErrorKind, ServiceError};

/// Who is calling, as far as policy is concerned.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A configured key's tenant.
    Key(Arc<Tenant>),
    /// A server without keys: one open tenant that may do everything.
    Anonymous,
}

impl Caller {
    pub fn tenant(&self) -> &Tenant {
        static OPEN: OnceLock<Tenant> = OnceLock::new();
        match self {
            Caller::Key(t) => t,
            Caller::Anonymous => OPEN.get_or_init(Tenant::open),
        }
    }

    /// The key's name usage is counted for (None: a server without keys).
    pub fn account(&self) -> Option<String> {
        match self {
            Caller::Key(t) => Some(t.name.clone()),
            Caller::Anonymous => None,
        }
    }

    /// Whose limits apply: the key's tenant, or the client address.
    pub fn limit_key(&self, ip: IpAddr) -> String {
        match self {
            Caller::Key(t) => format!("key:{}", t.name),
            Caller::Anonymous => format!("ip:{ip}"),
        }
    }
}

/// Handlers take the caller that [`require_key`] found. A route outside it
/// has no caller and is refused rather than treated as anyone.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ServiceError::internal("the route has no caller: it is outside the key check")
        })
    }
}

/// Leaves the caller in the request and its name in the request's log line.
fn admit(req: &mut Request, caller: Caller) {
    tracing::Span::current().record("key", caller.tenant().name.as_str());
    req.extensions_mut().insert(caller);
}

/// The key a request presents, if any: the `Authorization` header, the
/// `X-API-Key` header, or — for browser WebSocket clients, which cannot set
/// headers — a `glagol-key.KEY` or `openai-insecure-api-key.KEY` WebSocket
/// subprotocol.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        });
    let subprotocol = || {
        headers
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())?
            .split(',')
            .find_map(|p| {
                let p = p.trim();
                p.strip_prefix("glagol-key.")
                    .or_else(|| p.strip_prefix("openai-insecure-api-key."))
            })
    };
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .or_else(subprotocol)
}

/// The client's address (loopback when unknown, as in in-process tests).
pub fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip())
}

/// The one route a client secret opens.
const SECRET_PATH: &str = "/v1/realtime";

/// A client secret presented to the Realtime route: the session it grants,
/// or why it was refused. A refusal is told over the socket (an `error`,
/// then close 1008): a browser never sees the status of a failed upgrade,
/// and OpenAI's client would retry the 1006 it reports.
#[derive(Debug, Clone)]
pub enum SecretUse {
    Granted(serde_json::Value),
    Refused(ServiceError),
}

pub async fn require_key(
    State(policy): State<Arc<Policy>>,
    mut req: Request,
    next: Next,
) -> Result<Response, ServiceError> {
    let config = policy.app.config();
    let secret = presented_key(req.headers())
        .filter(|k| k.starts_with(client_secret::PREFIX))
        .map(str::to_owned);
    if let Some(secret) = secret {
        // A server without keys checks secrets against the empty key.
        let open = [String::new()];
        let keys = if config.keys.is_empty() {
            open.iter().collect::<Vec<_>>()
        } else {
            config.keys.keys().collect()
        };
        let on_realtime = req.uri().path() == SECRET_PATH;
        let (caller, used) =
            match client_secret::verify(&secret, keys) {
                Ok(_) if !on_realtime => return Err(ServiceError::new(
                    ErrorKind::Forbidden,
                    "client_secret_not_allowed",
                    "a client secret opens Realtime sessions (/v1/realtime) only; use an API key",
                )),
                Ok(grant) => match config.keys.get(&grant.key_hash) {
                    // A secret opens no more than its key's live scope allows.
                    Some(t) if !t.may(Scope::Live) => (
                        Caller::Key(t.clone()),
                        SecretUse::Refused(scope::missing(Scope::Live)),
                    ),
                    Some(t) => (Caller::Key(t.clone()), SecretUse::Granted(grant.session)),
                    None => (Caller::Anonymous, SecretUse::Granted(grant.session)),
                },
                Err(e) => {
                    policy.failed_attempt(client_ip(&req))?;
                    if !on_realtime {
                        return Err(e);
                    }
                    (Caller::Anonymous, SecretUse::Refused(e))
                }
            };
        admit(&mut req, caller);
        req.extensions_mut().insert(used);
        return Ok(next.run(req).await);
    }
    if config.keys.is_empty() {
        admit(&mut req, Caller::Anonymous);
        return Ok(next.run(req).await);
    }
    let failure = match presented_key(req.headers()) {
        Some(key) => {
            if let Some(tenant) = config.keys.get(&hash_key(key)) {
                admit(&mut req, Caller::Key(tenant.clone()));
                return Ok(next.run(req).await);
            }
            ServiceError::new(
                ErrorKind::Unauthenticated,
                "invalid_api_key",
                "the API key is not valid",
            )
        }
        None => ServiceError::new(
            ErrorKind::Unauthenticated,
            "missing_api_key",
            "send an API key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
        ),
    };
    policy.failed_attempt(client_ip(&req))?;
    Err(failure)
}
