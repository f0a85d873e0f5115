//! Extractors with the documented error shape, and reading an upload.
//!
//! axum's own `Query`, `Path` and `Multipart` answer a bad request with
//! plain text; these wrappers answer with [`ServiceError`]'s JSON instead
//! (the rejection is mapped in the extractor, not in each handler).

use axum::body::Bytes;
use axum::extract::multipart::Field;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;

use crate::error::ServiceError;
use crate::service::AudioInput;

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ServiceError))]
pub struct Query<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ServiceError))]
pub struct Path<T>(pub T);

/// A JSON request body.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ServiceError))]
pub struct JsonBody<T>(pub T);

pub struct Multipart(pub axum::extract::Multipart);

impl<S: Send + Sync> FromRequest<S> for Multipart {
    type Rejection = ServiceError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Multipart::from_request(req, state)
            .await
            .map(Multipart)
            .map_err(ServiceError::from)
    }
}

/// An uploaded file's bytes with its (lowercased) extension as a decoding hint.
pub async fn file_field(field: Field<'_>) -> Result<AudioInput, ServiceError> {
    let extension = field
        .file_name()
        .and_then(|f| f.rsplit_once('.').map(|(_, e)| e.to_lowercase()))
        .filter(|e| e.len() <= 8 && e.bytes().all(|b| b.is_ascii_alphanumeric()));
    Ok(AudioInput::Encoded {
        bytes: field.bytes().await?.to_vec(),
        extension,
    })
}

/// Whether the request carries a multipart form.
pub fn is_multipart(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// The audio of a native request: the raw body, or the `file` field of a
/// multipart form (exactly one).
pub async fn native_upload(req: Request) -> Result<AudioInput, ServiceError> {
    if !is_multipart(&req) {
        let bytes = Bytes::from_request(req, &()).await?;
        return Ok(AudioInput::Encoded {
            bytes: bytes.to_vec(),
            extension: None,
        });
    }
    let Multipart(mut form) = Multipart::from_request(req, &()).await?;
    let mut found = None;
    while let Some(field) = form.next_field().await? {
        if field.name() == Some("file") {
            if found.is_some() {
                return Err(second_file());
            }
            found = Some(file_field(field).await?);
        }
    }
    found.ok_or_else(|| {
        ServiceError::invalid("invalid_request", "the multipart body has no 'file' field")
    })
}

pub fn second_file() -> ServiceError {
    ServiceError::invalid(
        "invalid_request",
        "the form has more than one 'file' field; send one file per request",
    )
}
