//! Every body the HTTP API sends or documents, as typed structs: handlers
//! build these and the OpenAPI document is derived from the same types,
//! so the two cannot drift.

#![allow(dead_code)] // form structs are read by the OpenAPI derive only

use glagol_core::engine::{Progress, Segment};
use glagol_core::format::{VerboseJson, VerboseWord};
use glagol_core::models::{EngineKind, InstalledModel};
use serde::Serialize;
use utoipa::ToSchema;

use crate::models::{ModelStatus, State};

mod openai;
pub use openai::*;

/// The error body every failure carries (OpenAI's shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `model_not_ready`, `busy`, `not_audio`.
    pub code: &'static str,
    /// What went wrong and what to do about it.
    pub message: String,
    /// OpenAI's error class: `invalid_request_error`, `authentication_error`, …
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub param: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when a part is failing (`reason` says which);
    /// the process answers either way.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// What is failing, when degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub version: &'static str,
    /// The durable job queue (absent where jobs do not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs: Option<JobsHealth>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobsHealth {
    /// This node's name in leases (`--node-id`).
    pub node: String,
    /// `ok`, or `unavailable` when the job store cannot be reached (the
    /// counts are then absent).
    pub store: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<u64>,
    /// Seconds the oldest queued job has waited (0 when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_queued_seconds: Option<f64>,
    /// Bytes free on the job directory's disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_free_bytes: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// Why not ready: no models, saturated, shutting down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A model as `/v1/models` reports it: OpenAI's fields plus glagol's.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// When the model was installed (Unix seconds).
    pub created: u64,
    pub owned_by: &'static str,
    /// The model file's size on disk.
    pub size_bytes: u64,
    /// `whisper` or `gigaam`.
    #[schema(value_type = String)]
    pub engine: EngineKind,
    /// ISO-639-1 codes; `*` = any (Whisper).
    pub languages: Vec<&'static str>,
    pub state: State,
    /// Unix seconds.
    pub loaded_at: Option<u64>,
    /// Process RSS growth measured when the model loaded.
    pub resident_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Items waiting for a worker of this model.
    pub queued: usize,
}

/// Bytes a model takes on disk: its file, or the files of its directory.
fn disk_size(path: &std::path::Path) -> u64 {
    match std::fs::read_dir(path) {
        Ok(entries) => entries.flatten().map(|e| disk_size(&e.path())).sum(),
        Err(_) => std::fs::metadata(path).map_or(0, |md| md.len()),
    }
}

impl ModelInfo {
    pub fn new(model: &InstalledModel, status: ModelStatus) -> ModelInfo {
        ModelInfo {
            created: std::fs::metadata(&model.path)
                .and_then(|md| md.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0),
            size_bytes: disk_size(&model.path),
            id: model.name.clone(),
            object: "model",
            owned_by: "glagol",
            engine: model.engine,
            languages: match model.engine {
                EngineKind::Gigaam => vec!["ru"],
                EngineKind::Whisper => vec!["*"],
                EngineKind::Vad | EngineKind::Segmentation | EngineKind::SpeakerEmbedding => vec![],
            },
            state: status.state,
            loaded_at: status.loaded_at,
            resident_bytes: status.resident_bytes,
            error: status.error,
            queued: status.queued,
        }
    }
}

/// A model glagol can download by name (`glagol models pull NAME`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogModel {
    pub id: &'static str,
    /// `whisper` or `gigaam`.
    #[schema(value_type = String)]
    pub engine: EngineKind,
    pub description: &'static str,
    /// ISO-639-1 codes; `*` = any (Whisper).
    pub languages: &'static [&'static str],
    /// The download's size, where the catalog knows it.
    pub size_bytes: Option<u64>,
    /// Whether it is in this server's model store (then `/v1/models` lists it).
    pub installed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<CatalogModel>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoadStatus {
    pub id: String,
    /// `load_initiated` or `already_ready`.
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnloadStatus {
    pub id: String,
    /// `unloaded` or `not_loaded`.
    pub status: &'static str,
    /// Process resident memory before the unload, in bytes.
    pub rss_before_bytes: Option<u64>,
    /// … and after it (freed heap is returned to the system).
    pub rss_after_bytes: Option<u64>,
}

/// `format=verbose_json` on the native API, and its SSE `done` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct NativeVerbose {
    #[serde(flatten)]
    pub transcript: VerboseJson,
    /// The model that answered.
    pub model: String,
}

/// SSE `progress` (native).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressEvent {
    /// Fraction of the audio recognised, 0–1.
    pub progress: f32,
    /// Chunks (GigaAM) or segments (Whisper) finished.
    pub segments_done: usize,
    /// Chunks in all, where known in advance (GigaAM).
    pub segments_total: Option<usize>,
    /// Audio seconds recognised so far.
    pub seconds: f64,
    /// Audio seconds in all.
    pub duration: f64,
}

impl From<Progress> for ProgressEvent {
    fn from(p: Progress) -> Self {
        ProgressEvent {
            progress: p.fraction(),
            segments_done: p.done,
            segments_total: p.total,
            seconds: (p.seconds * 1000.0).round() / 1000.0,
            duration: p.duration,
        }
    }
}

/// SSE `segment` (native): a decoded segment, as soon as it is decoded.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentEvent {
    pub id: usize,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub words: Vec<VerboseWord>,
    /// The speaker (with diarization).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

impl From<&Segment> for SegmentEvent {
    fn from(s: &Segment) -> Self {
        SegmentEvent {
            id: s.id,
            start: s.start,
            end: s.end,
            text: s.text.clone(),
            words: s.words.iter().map(VerboseWord::new).collect(),
            speaker: s.speaker.clone(),
        }
    }
}

/// `multipart/form-data` variant of the native API.
#[derive(ToSchema)]
pub struct NativeForm {
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub file: String,
}

/// The failures every API route can answer with.
#[derive(utoipa::IntoResponses)]
pub enum CommonErrors {
    /// Malformed request (`invalid_request`, …)
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// API key missing or invalid (`missing_api_key`, `invalid_api_key`)
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Browser origin or host name not allowed (`origin_not_allowed`, `host_not_allowed`)
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Rate limit exceeded (`rate_limited`); see Retry-After
    #[response(status = 429)]
    RateLimited(ErrorBody),
}

/// The failures every transcription route can answer with.
#[derive(utoipa::IntoResponses)]
pub enum TranscriptionErrors {
    /// Bad form field or undecodable audio (`invalid_request`, `not_audio`, `unsupported_codec`, `unsupported_language`, `invalid_known_speaker`, …)
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// API key missing or invalid
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Browser origin or host name not allowed (`origin_not_allowed`, `host_not_allowed`)
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such model installed (`model_not_found`, `diarization_model_not_found`)
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Body or audio over the limits (`payload_too_large`, `audio_too_long`, `input_too_large`, `diarization_too_long`)
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Rate limit exceeded (`rate_limited`); see Retry-After
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// Model loading or failed (`model_not_ready`, `model_failed`), queue full (`busy`), shutting down; see Retry-After
    #[response(status = 503)]
    Unavailable(ErrorBody),
    /// Recognition exceeded the inference timeout (`inference_timeout`)
    #[response(status = 504)]
    Timeout(ErrorBody),
}

/// `GET /v1/jobs`: a page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<crate::jobs::Job>,
    /// Whether older jobs follow; ask for them with `after=<last_id>`.
    pub has_more: bool,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
}

/// `DELETE /v1/jobs/{id}` answered 200: the cancelled job, or with `purge` the deletion.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CancelAnswer {
    Job(Box<crate::jobs::Job>),
    Deleted(JobDeleted),
}

/// `DELETE /v1/jobs/{id}?purge=true`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobDeleted {
    pub id: String,
    /// Always `transcription.job.deleted`.
    pub object: &'static str,
    pub deleted: bool,
}

/// `multipart/form-data` of `POST /v1/jobs`.
#[derive(ToSchema)]
pub struct JobForm {
    /// The audio file (any supported container), streamed to disk.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub file: String,
    /// Model id or alias (default: the server's default model).
    pub model: Option<String>,
    /// ISO-639-1 code; detected when absent (Whisper).
    pub language: Option<String>,
    /// `transcribe` (default) or `translate`.
    pub task: Option<String>,
    pub word_timestamps: Option<bool>,
    /// Recognise only the speech the VAD finds.
    pub vad: Option<bool>,
    pub prompt: Option<String>,
    /// Label segments and words with speakers (`speaker`).
    pub diarize: Option<bool>,
    /// The number of speakers, when known (with `diarize`).
    pub num_speakers: Option<u32>,
    pub min_speakers: Option<u32>,
    pub max_speakers: Option<u32>,
    /// Gets a signed POST when the job ends (Standard Webhooks).
    pub webhook_url: Option<String>,
    /// A JSON object of at most 16 KiB, echoed on every read and webhook.
    pub metadata: Option<String>,
    /// -100…100; higher runs first (default 0).
    pub priority: Option<i64>,
}

/// One message of `GET /v1/jobs/{id}/events`, as the SSE framing carries it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobSseEvent {
    /// The event's sequence number in the job's log (`Last-Event-ID`).
    pub id: String,
    /// `queued`, `started`, `progress`, `segment`, `done`, `failed` or `cancelled`.
    pub event: String,
    /// JSON: see `JobEventData`.
    pub data: String,
}

/// The data of each event of `GET /v1/jobs/{id}/events`. Every event names
/// its attempt; `queued` may say why (a retry), `started` names the node,
/// `progress` carries the counters and `percent`, `segment` is a decoded
/// segment (`id`, `start`, `end`, `text`, `words`), and the terminal `done`,
/// `failed` and `cancelled` carry the whole job (see `Job`).
#[derive(Debug, Serialize, ToSchema)]
pub struct JobEventData {
    /// The attempt the event belongs to (0 before the first start).
    pub attempt: u32,
    pub reason: Option<String>,
    pub node: Option<String>,
    pub segments_done: Option<u64>,
    pub segments_total: Option<u64>,
    pub seconds_processed: Option<f64>,
    pub duration: Option<f64>,
    /// 0–100.
    pub percent: Option<f64>,
    pub text: Option<String>,
    pub status: Option<String>,
}

/// Errors of the job routes.
#[derive(utoipa::IntoResponses)]
pub enum JobErrors {
    /// Bad form field, webhook URL or metadata (`invalid_request`, `invalid_webhook_url`, `invalid_metadata`, …)
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// API key missing or invalid
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// No such job or model (`job_not_found`, `model_not_found`)
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The job's state does not allow it (`job_finished`, `job_not_done`, `job_not_finished`)
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The upload is over the limit (`payload_too_large`)
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Jobs are not available on this server (`jobs_unavailable`), or the job store cannot be
    /// reached now (`job_store_unavailable`, with `Retry-After`)
    #[response(status = 503)]
    Unavailable(ErrorBody),
    /// The job disk has no room for the upload or the job (`insufficient_storage`)
    #[response(status = 507)]
    InsufficientStorage(ErrorBody),
}

/// `POST /v1/realtime/client_secrets`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ClientSecretRequest {
    pub expires_after: Option<ExpiresAfter>,
    /// A transcription session as `session.update` takes it (`{"type": "transcription",
    /// "audio": {"input": {"format", "transcription", "turn_detection", "noise_reduction"}}}`).
    #[schema(value_type = Option<Object>)]
    pub session: Option<serde_json::Value>,
}

/// When a client secret expires.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ExpiresAfter {
    /// Always `created_at`.
    pub anchor: Option<String>,
    /// Seconds from now, 10–7200 (default 600; 60 on the beta route).
    pub seconds: Option<u64>,
}

/// A minted client secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientSecret {
    /// `ek_…`: send it as a key to `/v1/realtime`.
    pub value: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// The session the secret opens, as `session.created` will show it.
    #[schema(value_type = Object)]
    pub session: serde_json::Value,
}

/// `POST /v1/realtime/transcription_sessions` (beta): the session's fields
/// (`input_audio_format`, `input_audio_transcription`, `turn_detection`,
/// `input_audio_noise_reduction`) and the secret's lifetime.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct TranscriptionSessionRequest {
    pub client_secret: Option<BetaSecretOptions>,
    /// `pcm16`, `g711_ulaw` or `g711_alaw`.
    pub input_audio_format: Option<String>,
    /// `{model, language, prompt, languages, keywords}`.
    #[schema(value_type = Option<Object>)]
    pub input_audio_transcription: Option<serde_json::Value>,
    /// `server_vad` / `semantic_vad` settings, or null (the client commits).
    #[schema(value_type = Option<Object>)]
    pub turn_detection: Option<serde_json::Value>,
    /// `{type: near_field | far_field}` or null; echoed, not applied.
    #[schema(value_type = Option<Object>)]
    pub input_audio_noise_reduction: Option<serde_json::Value>,
    /// `item.input_audio_transcription.logprobs`.
    pub include: Option<Vec<String>>,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct BetaSecretOptions {
    pub expires_at: Option<ExpiresAfter>,
}

/// The beta route's answer: the session with its `client_secret`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TranscriptionSessionSecret {
    pub client_secret: BetaSecret,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub session: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BetaSecret {
    pub value: String,
    pub expires_at: u64,
}
