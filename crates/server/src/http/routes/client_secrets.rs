//! Minting client secrets for browsers' Realtime sessions
//! ([`crate::http::policy::client_secret`] says what a secret is): OpenAI's
//! GA `POST /v1/realtime/client_secrets` and beta
//! `POST /v1/realtime/transcription_sessions`. Minting needs an API key
//! (a secret cannot mint another).

use axum::Extension;
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

/// How long a secret lives unless asked otherwise: OpenAI's defaults.
const GA_TTL: u64 = 600;
const BETA_TTL: u64 = 60;

fn minter(caller: Option<Extension<Caller>>) -> String {
    match caller {
        Some(Extension(Caller::Key(hash))) => hash,
        _ => String::new(),
    }
}

/// `POST /v1/realtime/client_secrets`.
#[utoipa::path(post, path = "/v1/realtime/client_secrets", tag = "live",
    request_body = ClientSecretRequest,
    responses(
        (status = 200, description = "A client secret that opens `/v1/realtime` (as `Authorization: Bearer` \
            or the `openai-insecure-api-key.` subprotocol) with this session's settings until `expires_at`; \
            it is bound to the key that minted it and opens nothing else", body = ClientSecret),
        crate::http::types::CommonErrors,
    ))]
pub async fn client_secrets(
    caller: Option<Extension<Caller>>,
    JsonBody(request): JsonBody<ClientSecretRequest>,
) -> Result<Json<ClientSecret>, ServiceError> {
    let session = request
        .session
        .unwrap_or_else(|| json!({"type": "transcription"}));
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
    let ttl = request
        .expires_after
        .and_then(|e| e.seconds)
        .unwrap_or(GA_TTL);
    let (value, expires_at) = client_secret::mint(&minter(caller), ttl, &session)?;
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
        crate::http::types::CommonErrors,
    ))]
pub async fn transcription_sessions(
    caller: Option<Extension<Caller>>,
    JsonBody(request): JsonBody<TranscriptionSessionRequest>,
) -> Result<Json<TranscriptionSessionSecret>, ServiceError> {
    let session = Value::Object(request.session);
    let shown = minted_session(&session, true)?;
    let ttl = request
        .client_secret
        .and_then(|c| c.expires_at)
        .and_then(|e| e.seconds)
        .unwrap_or(BETA_TTL);
    let (value, expires_at) = client_secret::mint(&minter(caller), ttl, &session)?;
    Ok(Json(TranscriptionSessionSecret {
        client_secret: BetaSecret { value, expires_at },
        session: shown,
    }))
}
