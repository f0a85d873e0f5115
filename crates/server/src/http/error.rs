//! The HTTP mapping of [`ServiceError`] — the only one: a status code, the
//! JSON body `{"error": {"code", "message", "type", "param"}}`, the
//! `Retry-After` header; and, once an event stream has started, an SSE
//! `error` event with the same body. axum's own rejections are mapped here
//! too, so every failure has the documented shape.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::types::{ErrorBody, ErrorDetail};
use crate::error::{ErrorKind, ServiceError};

pub fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// OpenAI's error class for a kind.
fn openai_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Unauthenticated => "authentication_error",
        ErrorKind::Forbidden => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::Unavailable
        | ErrorKind::Timeout
        | ErrorKind::InsufficientStorage
        | ErrorKind::Internal => "server_error",
        _ => "invalid_request_error",
    }
}

pub fn body(e: &ServiceError) -> ErrorBody {
    ErrorBody {
        error: ErrorDetail {
            code: e.code,
            message: e.message.clone(),
            kind: openai_type(e.kind),
            param: None,
        },
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let mut response = (status(self.kind), Json(body(&self))).into_response();
        if let Some(after) = self.retry_after {
            let seconds = after.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.kind == ErrorKind::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"glagol\""),
            );
        }
        response
    }
}

/// The SSE `error` event of a stream that has already started.
pub fn sse_event(e: &ServiceError) -> SseEvent {
    SseEvent::default()
        .event("error")
        .data(serde_json::to_string(&body(e)).unwrap_or_default())
}

/// A rejection axum produced, as a typed error: the status it chose, a
/// code for it, and its text.
pub fn rejection(status: StatusCode, text: String) -> ServiceError {
    let (kind, code) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorKind::TooLarge, "payload_too_large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            (ErrorKind::UnsupportedMediaType, "unsupported_media_type")
        }
        s if s.is_server_error() => (ErrorKind::Internal, "internal"),
        _ => (ErrorKind::InvalidRequest, "invalid_request"),
    };
    ServiceError::new(kind, code, text)
}

impl From<axum::extract::multipart::MultipartError> for ServiceError {
    fn from(e: axum::extract::multipart::MultipartError) -> Self {
        let mut err = rejection(e.status(), e.body_text());
        if err.code == "invalid_request" {
            err.code = "invalid_multipart";
        }
        err
    }
}

impl From<axum::extract::multipart::MultipartRejection> for ServiceError {
    fn from(e: axum::extract::multipart::MultipartRejection) -> Self {
        let mut err = rejection(e.status(), e.body_text());
        if err.code == "invalid_request" {
            err.code = "invalid_multipart";
        }
        err
    }
}

impl From<axum::extract::rejection::BytesRejection> for ServiceError {
    fn from(e: axum::extract::rejection::BytesRejection) -> Self {
        let mut err = rejection(e.status(), e.body_text());
        if err.code == "invalid_request" {
            err.code = "invalid_body";
        }
        err
    }
}

impl From<axum::extract::rejection::QueryRejection> for ServiceError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        rejection(e.status(), e.body_text())
    }
}

impl From<axum::extract::rejection::JsonRejection> for ServiceError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        let mut err = rejection(e.status(), e.body_text());
        if err.code == "invalid_request" {
            err.code = "invalid_json";
        }
        err
    }
}

impl From<axum::extract::rejection::PathRejection> for ServiceError {
    fn from(e: axum::extract::rejection::PathRejection) -> Self {
        rejection(e.status(), e.body_text())
    }
}
