//! The OpenAPI 3.1 description of the HTTP API (served at `/openapi.json`)
//! and the Swagger UI that renders it (at `/docs`, vendored: the server
//! needs no network to show its own documentation).
//!
//! The types here only describe wire shapes for the document; handlers
//! build their bodies with `serde_json` and the tests check that the two
//! agree where it matters.

#![allow(dead_code)] // schema types are read by the derive only

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::manager::{ModelInfo, State};
use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "glagol",
        description = "Private on-device speech-to-text: an OpenAI-compatible transcription API, \
                       glagol's native API with server-sent events, and model lifecycle control.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        routes::health::health,
        routes::health::ready,
        routes::models::list,
        routes::models::get,
        routes::models::load,
        routes::models::unload,
        routes::models::events,
        routes::openai::transcriptions,
        routes::openai::translations,
        routes::transcribe::transcribe,
        routes::transcribe::stream,
        openapi_json,
        docs,
    ),
    components(schemas(ModelInfo, State)),
    modifiers(&Security),
    // Keys are needed only when the server is configured with some.
    security((), ("bearer" = []), ("api_key" = [])),
    tags(
        (name = "health", description = "Liveness and readiness probes (never need a key)"),
        (name = "models", description = "Installed models and their lifecycle"),
        (name = "openai", description = "OpenAI-compatible audio API"),
        (name = "native", description = "glagol's native transcription API"),
        (name = "meta", description = "This document and its viewer"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The failures every transcription route can answer with.
#[derive(utoipa::IntoResponses)]
pub enum TranscriptionErrors {
    /// Bad form field or undecodable audio (`invalid_request`, `not_audio`, `unsupported_codec`, …)
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// API key missing or invalid
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Browser origin not allowed (`origin_not_allowed`)
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such model installed (`model_not_found`)
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Body or audio over the limits (`payload_too_large`, `audio_too_long`)
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Rate limit exceeded (`rate_limited`); see Retry-After
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// Model loading (`model_not_ready`) or queue full (`busy`); see Retry-After
    #[response(status = 503)]
    Unavailable(ErrorBody),
    /// Recognition exceeded the inference timeout (`inference_timeout`)
    #[response(status = 504)]
    Timeout(ErrorBody),
}

/// The error body every failure carries (OpenAI's shape).
#[derive(ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `model_not_ready`, `busy`, `not_audio`.
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
    /// OpenAI's error class: `invalid_request_error`, `authentication_error`, …
    #[schema(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
}

#[derive(ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    pub version: String,
}

#[derive(ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// Why not ready: no models, saturated, shutting down.
    pub reason: Option<String>,
}

#[derive(ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<ModelInfo>,
}

#[derive(ToSchema)]
pub struct LoadStatus {
    pub id: String,
    /// `load_initiated` or `already_ready`.
    pub status: String,
}

#[derive(ToSchema)]
pub struct UnloadStatus {
    pub id: String,
    /// `unloaded` or `not_loaded`.
    pub status: String,
    /// Process resident memory before the unload, in bytes.
    pub rss_before_bytes: Option<u64>,
    /// … and after it (freed heap is returned to the system).
    pub rss_after_bytes: Option<u64>,
}

/// `multipart/form-data` of `POST /v1/audio/transcriptions`.
#[derive(ToSchema)]
pub struct TranscriptionForm {
    /// The audio file: WAV, MP3, FLAC, Ogg (Vorbis/Opus), WebM, M4A/AAC.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub file: String,
    /// A model id from `GET /v1/models`, or an alias (`whisper-1` = the default model).
    pub model: Option<String>,
    /// ISO-639-1 language code; detected when absent (Whisper).
    pub language: Option<String>,
    /// Text that guides the style or vocabulary.
    pub prompt: Option<String>,
    pub response_format: Option<ResponseFormat>,
    /// Sampling temperature; 0 = greedy with fallback.
    pub temperature: Option<f32>,
    /// `word` and/or `segment`; needs `response_format=verbose_json`.
    #[schema(rename = "timestamp_granularities[]")]
    pub timestamp_granularities: Option<Vec<Granularity>>,
    /// Answer with server-sent events (`transcript.text.delta`, `transcript.text.done`).
    pub stream: Option<bool>,
}

/// `multipart/form-data` of `POST /v1/audio/translations` (into English).
#[derive(ToSchema)]
pub struct TranslationForm {
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub file: String,
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub response_format: Option<ResponseFormat>,
    pub temperature: Option<f32>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ResponseFormat {
    Json,
    Text,
    Srt,
    VerboseJson,
    Vtt,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Granularity {
    Word,
    Segment,
}

/// `multipart/form-data` variant of the native API.
#[derive(ToSchema)]
pub struct NativeForm {
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub file: String,
}

#[derive(ToSchema)]
pub struct Usage {
    /// Always `duration`.
    #[schema(rename = "type")]
    pub kind: String,
    /// Audio seconds, rounded up.
    pub seconds: u64,
}

/// `response_format=json`.
#[derive(ToSchema)]
pub struct TranscriptionJson {
    pub text: String,
    pub usage: Usage,
}

#[derive(ToSchema)]
pub struct SegmentJson {
    pub id: u32,
    pub seek: u32,
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: Vec<i64>,
    pub temperature: f32,
    pub avg_logprob: f32,
    pub compression_ratio: f32,
    pub no_speech_prob: f32,
}

#[derive(ToSchema)]
pub struct WordJson {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// `response_format=verbose_json` (OpenAI's shape; glagol adds
/// `language_probability`, and `model` on the native API).
#[derive(ToSchema)]
pub struct VerboseTranscription {
    /// `transcribe` or `translate`.
    pub task: String,
    /// Language name in English, lower case (`russian`).
    pub language: String,
    pub language_probability: Option<f32>,
    /// Audio seconds.
    pub duration: f64,
    pub text: String,
    /// Present unless only `word` granularity was asked for.
    pub segments: Option<Vec<SegmentJson>>,
    /// Present with `timestamp_granularities[]=word` / `word_timestamps=true`.
    pub words: Option<Vec<WordJson>>,
    /// OpenAI API only.
    pub usage: Option<Usage>,
    /// Native API only: the model that answered.
    pub model: Option<String>,
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this server", content_type = "application/json"))
)]
pub async fn openapi_json() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// `GET /docs`: Swagger UI over `/openapi.json`.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "meta",
    responses((status = 200, description = "Swagger UI, an HTML page", content_type = "text/html"))
)]
pub async fn docs() -> impl IntoResponse {
    Html(include_str!("../assets/swagger-ui/index.html"))
}

/// Swagger UI's script and stylesheet (swagger-ui-dist, Apache-2.0).
pub async fn docs_asset(
    axum::extract::Path(file): axum::extract::Path<String>,
) -> axum::response::Response {
    let (body, mime): (&'static [u8], &str) = match file.as_str() {
        "swagger-ui-bundle.js" => (
            include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js"),
            "text/javascript; charset=utf-8",
        ),
        "swagger-ui.css" => (
            include_bytes!("../assets/swagger-ui/swagger-ui.css"),
            "text/css; charset=utf-8",
        ),
        _ => {
            return crate::error::ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "no such file",
            )
            .into_response()
        }
    };
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}
