//! API keys: `Authorization: Bearer KEY` (the scheme in any case) or
//! `X-API-Key: KEY`, when keys are configured. The caller's identity is
//! left in the request for the rate limiter: a valid key, or nobody in
//! particular (then the client address counts). Failed attempts are
//! throttled per client address, so keys cannot be guessed at speed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;

use super::{client_secret, Policy};
use crate::config::hash_key;
use crate::error::{ErrorKind, ServiceError};

/// Who is calling, as far as policy is concerned.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A configured key, by its hash.
    Key(String),
    /// No keys configured (loopback), or none needed.
    Anonymous,
}

/// The key a request presents, if any: the `Authorization` header, the
/// `X-API-Key` header, or — for browser WebSocket clients, which cannot set
/// headers — an `openai-insecure-api-key.KEY` WebSocket subprotocol.
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
            .find_map(|p| p.trim().strip_prefix("openai-insecure-api-key."))
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
        let keys = if config.key_hashes.is_empty() {
            open.iter().collect::<Vec<_>>()
        } else {
            config.key_hashes.iter().collect()
        };
        let on_realtime = req.uri().path() == SECRET_PATH;
        let (caller, used) =
            match client_secret::verify(&secret, keys) {
                Ok(_) if !on_realtime => return Err(ServiceError::new(
                    ErrorKind::Forbidden,
                    "client_secret_not_allowed",
                    "a client secret opens Realtime sessions (/v1/realtime) only; use an API key",
                )),
                Ok(grant) if grant.key_hash.is_empty() => {
                    (Caller::Anonymous, SecretUse::Granted(grant.session))
                }
                Ok(grant) => (
                    Caller::Key(grant.key_hash),
                    SecretUse::Granted(grant.session),
                ),
                Err(e) => {
                    policy.failed_attempt(client_ip(&req))?;
                    if !on_realtime {
                        return Err(e);
                    }
                    (Caller::Anonymous, SecretUse::Refused(e))
                }
            };
        req.extensions_mut().insert(caller);
        req.extensions_mut().insert(used);
        return Ok(next.run(req).await);
    }
    if config.key_hashes.is_empty() {
        req.extensions_mut().insert(Caller::Anonymous);
        return Ok(next.run(req).await);
    }
    let failure = match presented_key(req.headers()) {
        Some(key) => {
            let hash = hash_key(key);
            if config.key_hashes.contains(&hash) {
                req.extensions_mut().insert(Caller::Key(hash));
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
