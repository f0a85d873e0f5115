//! Minting client secrets for browsers' Realtime sessions
//! ([`crate::http::policy::client_secret`] says what a secret is): OpenAI's
//! GA `POST /v1/realtime/client_secrets` and beta
//! `POST /v1/realtime/transcription_sessions`. Minting needs an API key
//! (a secret cannot mint another).

use axum::Json;
use serde_json::{json, Value};

use crate::error::ServiceError;
use crate::http::extract::JsonBody;
use crate::http::policy::auth::Caller;
use crate::http::policy::client_secret;
use crate::http::realtime::openai::minted_session;
use crate::http::types::{
    BetaSecret, ClientSecret, ClientSecretRequest, TranscriptionSessionRequest,
    TranscriptionSessionSecret,
};

// The request types document the bodies; the handlers read them as JSON
// values, since serde would take a struct from an array too.

/// How long a secret lives unless asked otherwise: OpenAI's defaults.
const GA_TTL: u64 = 600;
const BETA_TTL: u64 = 60;

fn object<'a>(
    v: &'a Value,
    what: &str,
) -> Result<&'a serde_json::Map<String, Value>, ServiceError> {
    v.as_object().ok_or_else(|| {
        ServiceError::invalid("invalid_request", format!("{what} must be a JSON object"))
    })
}

/// `seconds` of an `{anchor, seconds}` object, when there is one.
fn seconds(v: Option<&Value>, what: &str) -> Result<Option<u64>, ServiceError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match object(v, what)?.get("seconds") {
        None | Some(Value::Null) => Ok(None),
        Some(s) => s.as_u64().map(Some).ok_or_else(|| {
            ServiceError::invalid(
                "invalid_expires_after",
                format!("{what}.seconds must be a whole number of seconds"),
            )
        }),
    }
}

/// `POST /v1/realtime/client_secrets`.
#[utoipa::path(post, path = "/v1/realtime/client_secrets", tag = "live",
    request_body = ClientSecretRequest,
    responses(
        (status = 200, description = "A client secret that opens `/v1/realtime` (as `Authorization: Bearer` \
            or the `openai-insecure-api-key.` subprotocol) with this session's settings until `expires_at`; \
            it is bound to the key that minted it and opens nothing else", body = ClientSecret),
        (status = 415, description = "The body is not `application/json`", body = crate::http::types::ErrorBody),
        crate::http::types::CommonErrors,
    ))]
pub async fn client_secrets(
    caller: Caller,
    JsonBody(request): JsonBody<Value>,
) -> Result<Json<ClientSecret>, ServiceError> {
    let request = object(&request, "the body")?;
    let session = match request.get("session") {
        None | Some(Value::Null) => json!({"type": "transcription"}),
        Some(s) => Value::Object(object(s, "session")?.clone()),
    };
    match session.get("type").and_then(Value::as_str) {
        Some("transcription") | None => {}
        Some(other) => {
            return Err(ServiceError::invalid(
                "unsupported_session_type",
                format!(
                    "this server mints transcription sessions only, not {}",
                    glagol_core::engine::quoted(other)
                ),
            ))
        }
    }
    let shown = minted_session(&session, false)?;
    let ttl = seconds(request.get("expires_after"), "expires_after")?.unwrap_or(GA_TTL);
    let (value, expires_at) = client_secret::mint(&caller.tenant().key_hash, ttl, &session)?;
    Ok(Json(ClientSecret {
        value,
        expires_at,
        session: shown,
    }))
}

/// `POST /v1/realtime/transcription_sessions` (beta).
#[utoipa::path(post, path = "/v1/realtime/transcription_sessions", tag = "live",
    request_body = TranscriptionSessionRequest,
    responses(
        (status = 200, description = "The session, with a `client_secret` that opens `/v1/realtime` with it \
            (see `POST /v1/realtime/client_secrets`)", body = TranscriptionSessionSecret),
        (status = 415, description = "The body is not `application/json`", body = crate::http::types::ErrorBody),
        crate::http::types::CommonErrors,
    ))]
pub async fn transcription_sessions(
    caller: Caller,
    JsonBody(request): JsonBody<Value>,
) -> Result<Json<TranscriptionSessionSecret>, ServiceError> {
    let mut session = object(&request, "the body")?.clone();
    let ttl = match session.remove("client_secret") {
        None | Some(Value::Null) => None,
        Some(c) => seconds(
            object(&c, "client_secret")?.get("expires_at"),
            "client_secret.expires_at",
        )?,
    }
    .unwrap_or(BETA_TTL);
    let session = Value::Object(session);
    let shown = minted_session(&session, true)?;
    let (value, expires_at) = client_secret::mint(&caller.tenant().key_hash, ttl, &session)?;
    Ok(Json(TranscriptionSessionSecret {
        client_secret: BetaSecret { value, expires_at },
        session: shown,
    }))
}
