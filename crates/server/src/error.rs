//! The one domain error of the server: what went wrong, as a kind, a stable
//! code, a message and, where waiting helps, a retry delay.
//!
//! Everything below the transports (service, scheduler, models) returns
//! [`ServiceError`]; each transport maps it exactly once (HTTP: status and
//! JSON body; SSE: an `error` event). Nothing here knows about HTTP.

use std::time::Duration;

use glagol_core::audio::AudioError;
use glagol_core::engine::EngineError;
use glagol_core::pipeline::PipelineError;
use glagol_core::vad::VadError;

/// What kind of failure, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or names something impossible.
    InvalidRequest,
    /// No or an invalid credential.
    Unauthenticated,
    /// The credential or origin is not allowed to do this.
    Forbidden,
    NotFound,
    /// The resource exists but not with this method.
    MethodNotAllowed,
    /// The request conflicts with the resource's state.
    Conflict,
    /// Body or audio over a limit.
    TooLarge,
    /// The body's media type is not accepted.
    UnsupportedMediaType,
    /// Too many requests from this client.
    RateLimited,
    /// The server cannot take it now (loading, busy, shutting down); retry.
    Unavailable,
    /// It took longer than allowed.
    Timeout,
    /// The server's disk has no room for it.
    InsufficientStorage,
    /// A fault of the server.
    Internal,
}

/// A failure as every layer reports it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub kind: ErrorKind,
    /// Stable machine-readable code, e.g. `model_not_ready`, `busy`.
    pub code: &'static str,
    pub message: String,
    /// When a retry may succeed.
    pub retry_after: Option<Duration>,
}

impl ServiceError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        ServiceError {
            kind,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, code, message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, "internal", message)
    }

    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The server is stopping and takes no more work.
    pub fn shutting_down() -> Self {
        Self::unavailable("shutting_down", "the server is shutting down")
            .retry_after(Duration::from_secs(5))
    }

    /// All workers busy and the queue full.
    pub fn busy() -> Self {
        Self::unavailable(
            "busy",
            "all workers are busy and the queue is full; retry shortly",
        )
        .retry_after(Duration::from_secs(1))
    }
}

impl From<AudioError> for ServiceError {
    fn from(e: AudioError) -> Self {
        if matches!(e, AudioError::NoMemory) {
            return ServiceError::unavailable(e.code(), e.to_string())
                .retry_after(Duration::from_secs(2));
        }
        let kind = match e {
            AudioError::TooLarge { .. } | AudioError::TooLong { .. } => ErrorKind::TooLarge,
            AudioError::Io { .. } => ErrorKind::Internal,
            _ => ErrorKind::InvalidRequest,
        };
        ServiceError::new(kind, e.code(), e.to_string())
    }
}

impl From<EngineError> for ServiceError {
    fn from(e: EngineError) -> Self {
        let kind = match e {
            EngineError::UnsupportedLanguage(_) | EngineError::InvalidOptions(_) => {
                ErrorKind::InvalidRequest
            }
            _ => ErrorKind::Internal,
        };
        ServiceError::new(kind, e.code(), e.to_string())
    }
}

impl From<PipelineError> for ServiceError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Engine(e) => e.into(),
            other => ServiceError::new(ErrorKind::Internal, other.code(), other.to_string()),
        }
    }
}

impl From<VadError> for ServiceError {
    fn from(e: VadError) -> Self {
        ServiceError::unavailable("vad_unavailable", e.to_string())
    }
}
