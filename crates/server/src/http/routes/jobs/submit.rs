//! `POST /v1/jobs`: the upload is streamed to disk (limit, running
//! SHA-256, flushed), the fields checked, and the job committed; only then
//! 202. An `Idempotency-Key` the caller used before returns that job (the
//! same file and settings) or 409 `idempotency_key_reused` (different ones).

use std::sync::Arc;

use axum::extract::multipart::Field;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::jobs_of;
use crate::error::{ErrorKind, ServiceError};
use crate::http::extract::{second_file, Multipart};
use crate::http::policy::auth::Caller;
use crate::http::types::{JobErrors, JobForm};
use crate::jobs::files::UploadError;
use crate::jobs::model::{new_job_id, now_ms, JobParams, JobRecord, NewJob};
use crate::jobs::{Inserted, Job, Jobs};
use crate::state::AppState;

/// Largest text field; metadata has its own, smaller limit.
const MAX_FIELD_BYTES: usize = 64 << 10;
const MAX_METADATA_BYTES: usize = 16 << 10;
const MAX_KEY_BYTES: usize = 255;

impl From<UploadError> for ServiceError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::TooLarge(limit) => ServiceError::new(
                ErrorKind::TooLarge,
                "payload_too_large",
                format!("the file is larger than the job upload limit of {limit} bytes"),
            ),
            UploadError::Io(e) if crate::sys::is_disk_full(&e) => no_room(&e.to_string()),
            UploadError::Io(e) => {
                ServiceError::internal(format!("the upload could not be stored: {e}"))
            }
        }
    }
}

/// Room kept free beyond an upload's size, so the store can still record
/// jobs and their results.
const DISK_RESERVE: u64 = 16 << 20;

fn no_room(why: &str) -> ServiceError {
    ServiceError::new(
        ErrorKind::InsufficientStorage,
        "insufficient_storage",
        format!("the server has no disk space for this upload ({why}); retry later"),
    )
}

/// Refuses an upload whose declared size does not fit on the job disk,
/// before any of it is read.
fn check_room(jobs: &Jobs, headers: &HeaderMap) -> Result<(), ServiceError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match (declared, jobs.files.free_bytes()) {
        (Some(size), Some(free)) if size.saturating_add(DISK_RESERVE) > free => {
            Err(no_room(&format!("{size} bytes sent, {free} bytes free")))
        }
        _ => Ok(()),
    }
}

/// The text fields of the form, as sent.
#[derive(Default)]
struct Fields {
    model: Option<String>,
    language: Option<String>,
    task: Option<String>,
    word_timestamps: Option<String>,
    vad: Option<String>,
    prompt: Option<String>,
    diarize: Option<String>,
    num_speakers: Option<String>,
    min_speakers: Option<String>,
    max_speakers: Option<String>,
    webhook_url: Option<String>,
    metadata: Option<String>,
    priority: Option<String>,
}

async fn text(mut field: Field<'_>) -> Result<String, ServiceError> {
    let name = field.name().unwrap_or_default().to_string();
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await? {
        if bytes.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(ServiceError::invalid(
                "invalid_request",
                format!("the field '{name}' is longer than {MAX_FIELD_BYTES} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| {
        ServiceError::invalid(
            "invalid_request",
            format!("the field '{name}' is not UTF-8"),
        )
    })
}

fn flag(name: &str, value: Option<&str>) -> Result<bool, ServiceError> {
    match value.map(str::trim) {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(ServiceError::invalid(
            "invalid_request",
            format!("{name} must be true or false, got {other:?}"),
        )),
    }
}

fn count(name: &str, value: Option<&str>) -> Result<Option<usize>, ServiceError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ServiceError::invalid(
                "invalid_request",
                format!("{name} must be a whole number, got {v:?}"),
            )
        }),
    }
}

/// Checks the fields; the parts of the job that come from them.
async fn checked(
    state: &AppState,
    jobs: &Jobs,
    f: Fields,
) -> Result<
    (
        String,
        JobParams,
        Option<serde_json::Value>,
        Option<String>,
        i64,
    ),
    ServiceError,
> {
    let config = state.config();
    let model = config.resolve_model(f.model.as_deref());
    state.registry.installed(&model)?;
    let task = match f.task.as_deref().map(str::trim) {
        None | Some("") | Some("transcribe") => "transcribe",
        Some("translate") => "translate",
        Some(other) => {
            return Err(ServiceError::invalid(
                "invalid_request",
                format!("task must be transcribe or translate, got {other:?}"),
            ))
        }
    };
    let params = JobParams {
        language: f.language.filter(|l| !l.trim().is_empty()),
        task: task.into(),
        word_timestamps: flag("word_timestamps", f.word_timestamps.as_deref())?,
        vad: flag("vad", f.vad.as_deref())?,
        prompt: f.prompt.filter(|p| !p.is_empty()),
        diarize: flag("diarize", f.diarize.as_deref())?,
        num_speakers: count("num_speakers", f.num_speakers.as_deref())?,
        min_speakers: count("min_speakers", f.min_speakers.as_deref())?,
        max_speakers: count("max_speakers", f.max_speakers.as_deref())?,
    };
    params.diarize_request()?;
    crate::service::validate(&glagol_core::engine::TranscribeOptions {
        language: params.language.clone(),
        ..Default::default()
    })?;
    let metadata = match f.metadata.filter(|m| !m.trim().is_empty()) {
        None => None,
        Some(m) if m.len() > MAX_METADATA_BYTES => {
            return Err(ServiceError::invalid(
                "invalid_metadata",
                format!(
                    "metadata is {} bytes; the limit is {MAX_METADATA_BYTES}",
                    m.len()
                ),
            ))
        }
        Some(m) => match serde_json::from_str::<serde_json::Value>(&m) {
            Ok(v) if v.is_object() => Some(v),
            _ => {
                return Err(ServiceError::invalid(
                    "invalid_metadata",
                    "metadata must be a JSON object",
                ))
            }
        },
    };
    let webhook_url = match f.webhook_url.filter(|u| !u.trim().is_empty()) {
        None => None,
        Some(url) => {
            let url = url.trim().to_string();
            if url.len() > 2048 {
                return Err(ServiceError::invalid(
                    "invalid_webhook_url",
                    "webhook_url is longer than 2048 bytes",
                ));
            }
            jobs.guard.check_url(&url).await.map_err(|why| {
                ServiceError::invalid(
                    "invalid_webhook_url",
                    format!("webhook_url is not allowed: {why}"),
                )
            })?;
            Some(url)
        }
    };
    let priority = match f.priority.as_deref().map(str::trim) {
        None | Some("") => 0,
        Some(p) => p
            .parse::<i64>()
            .ok()
            .filter(|p| (-100..=100).contains(p))
            .ok_or_else(|| {
                ServiceError::invalid(
                    "invalid_request",
                    format!("priority must be an integer from -100 to 100, got {p:?}"),
                )
            })?,
    };
    Ok((model, params, metadata, webhook_url, priority))
}

fn accepted(job: &JobRecord, replayed: bool) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(job.document(now_ms()))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// `POST /v1/jobs`.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", operation_id = "submit_job",
    params(("Idempotency-Key" = Option<String>, Header,
        description = "A repeat with the same key (per API key), file and settings returns the first job instead \
            of a new one; the same key with another file or settings is refused with 409 `idempotency_key_reused`")),
    request_body(content = JobForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Accepted: the upload and the job are on disk; `Location` names the job. \
            A replayed idempotent request carries `Idempotent-Replayed: true`", body = Job),
        JobErrors,
    ))]
pub async fn submit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    Multipart(mut form): Multipart,
) -> Result<Response, ServiceError> {
    accept(&state, caller, &headers, &mut form).await
}

async fn accept(
    state: &Arc<AppState>,
    caller: Caller,
    headers: &HeaderMap,
    form: &mut axum::extract::Multipart,
) -> Result<Response, ServiceError> {
    let jobs = jobs_of(state)?;
    if state.config().settings.role == "worker" {
        return Err(ServiceError::unavailable(
            "jobs_not_accepted",
            "this node only runs jobs (--role worker); submit them to a node with the api role",
        ));
    }
    check_room(jobs, headers)?;
    let owner = caller.tenant().owner.clone();
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_BYTES)
                .ok_or_else(|| {
                    ServiceError::invalid(
                        "invalid_request",
                        format!(
                            "Idempotency-Key must be 1 to {MAX_KEY_BYTES} visible ASCII characters"
                        ),
                    )
                })?
                .to_string(),
        ),
    };
    let id = new_job_id();
    let server_limit = state.config().settings.max_job_bytes;
    let limit = caller
        .tenant()
        .max_job_bytes
        .map_or(server_limit, |l| l.min(server_limit));
    let mut upload = None;
    let mut file_name = None;
    let mut fields = Fields::default();
    while let Some(mut field) = form.next_field().await? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            if upload.is_some() {
                return Err(second_file());
            }
            file_name = field.file_name().map(|n| n.chars().take(255).collect());
            let mut up = jobs
                .files
                .upload(&id, limit)
                .await
                .map_err(UploadError::from)?;
            while let Some(chunk) = field.chunk().await? {
                up.write(&chunk).await?;
            }
            upload = Some(up);
            continue;
        }
        let slot = match name.as_str() {
            "model" => &mut fields.model,
            "language" => &mut fields.language,
            "task" => &mut fields.task,
            "word_timestamps" => &mut fields.word_timestamps,
            "vad" => &mut fields.vad,
            "prompt" => &mut fields.prompt,
            "diarize" => &mut fields.diarize,
            "num_speakers" => &mut fields.num_speakers,
            "min_speakers" => &mut fields.min_speakers,
            "max_speakers" => &mut fields.max_speakers,
            "webhook_url" => &mut fields.webhook_url,
            "metadata" => &mut fields.metadata,
            "priority" => &mut fields.priority,
            other => {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    format!(
                        "unknown form field {:?}",
                        other.chars().take(64).collect::<String>()
                    ),
                ))
            }
        };
        *slot = Some(text(field).await?);
    }
    let upload = upload.ok_or_else(|| {
        ServiceError::invalid("invalid_request", "the multipart body has no 'file' field")
    })?;
    if upload.bytes() == 0 {
        return Err(ServiceError::invalid(
            "empty_file",
            "the uploaded file is empty",
        ));
    }
    let (model, params, metadata, webhook_url, priority) = checked(state, jobs, fields).await?;
    let stored = upload.finish().await?;
    let new = NewJob {
        id,
        owner,
        idempotency_key: key,
        model: model.clone(),
        params: params.clone(),
        file_name,
        audio_path: stored.relative.clone(),
        audio_bytes: stored.bytes,
        audio_sha256: stored.sha256.clone(),
        metadata,
        webhook_url,
        priority,
        max_attempts: state.config().settings.job_attempts,
        created_at: now_ms(),
    };
    match jobs.store.insert(new).await {
        Ok(Inserted::New(job)) => {
            jobs.queued();
            // Start loading now, so the model is ready when the job's turn comes.
            let _ = state.registry.load(&model);
            tracing::info!(job = %job.id, %model, bytes = job.audio_bytes, "job accepted");
            Ok(accepted(&job, false))
        }
        Ok(Inserted::Existing(job)) => {
            jobs.files.remove(&[stored.relative]).await;
            if (&job.audio_sha256, &job.model, &job.params) != (&stored.sha256, &model, &params) {
                return Err(ServiceError::new(
                    ErrorKind::Conflict,
                    "idempotency_key_reused",
                    format!(
                        "Idempotency-Key was used for job {} with another file or other settings",
                        job.id
                    ),
                ));
            }
            Ok(accepted(&job, true))
        }
        Err(e) => {
            jobs.files.remove(&[stored.relative]).await;
            Err(e.into())
        }
    }
}
