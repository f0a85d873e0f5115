//! glagol's native API: `POST /v1/transcribe` (any container as the raw
//! body, or multipart with a `file` field) and `POST /v1/transcribe/stream`
//! (the same, answered with server-sent events).

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use glagol_core::engine::{ProgressFn, Task, TranscribeOptions};
use glagol_core::format::{self, OutputFormat};
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::error::ApiError;
use crate::job::{self, Job};
use crate::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// Model id or alias (default: the server's default model).
    model: Option<String>,
    /// ISO-639-1 code; detected when absent (Whisper).
    language: Option<String>,
    /// `transcribe` (default) or `translate` (into English, Whisper).
    #[serde(default)]
    task: Option<String>,
    /// txt, json, verbose_json, srt, vtt (default verbose_json).
    format: Option<String>,
    /// Per-word timings in verbose_json.
    #[serde(default)]
    word_timestamps: bool,
    /// Recognise only the speech the VAD finds.
    #[serde(default)]
    vad: bool,
    /// Text that guides style or vocabulary (Whisper).
    prompt: Option<String>,
}

async fn job_from(params: &Params, req: Request, state: &Arc<AppState>) -> Result<Job, ApiError> {
    let task = match params.task.as_deref() {
        None | Some("transcribe") => Task::Transcribe,
        Some("translate") => Task::Translate,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("task must be transcribe or translate, got {other:?}"),
            ))
        }
    };
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (audio, extension) = if is_multipart {
        let mut mp = Multipart::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_multipart", e.body_text()))?;
        let mut found = None;
        while let Some(field) = mp.next_field().await? {
            if field.name() == Some("file") {
                found = Some(super::read_file(field).await?);
            }
        }
        found.ok_or_else(|| {
            ApiError::bad_request("invalid_request", "the multipart body has no 'file' field")
        })?
    } else {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "payload_too_large"
            } else {
                "invalid_body"
            };
            ApiError::new(e.status(), code, e.body_text())
        })?;
        (bytes.to_vec(), None)
    };
    Ok(Job {
        model: params.model.clone(),
        audio,
        extension,
        options: TranscribeOptions {
            language: params.language.clone(),
            task,
            word_timestamps: params.word_timestamps,
            initial_prompt: params.prompt.clone(),
            ..Default::default()
        },
        vad: params.vad,
    })
}

fn output_format(params: &Params) -> Result<OutputFormat, ApiError> {
    params
        .format
        .as_deref()
        .unwrap_or("verbose_json")
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid_request", e))
}

/// `POST /v1/transcribe`.
#[utoipa::path(post, path = "/v1/transcribe", tag = "native", params(Params),
    request_body(description = "The audio as the raw body (any supported container), or multipart with a `file` field",
        content(
            (Vec<u8> = "application/octet-stream"),
            (crate::openapi::NativeForm = "multipart/form-data"),
        )),
    responses(
        (status = 200, description = "The transcript: verbose_json (with `model`) by default, or txt, json, srt, vtt",
            content(
                (crate::openapi::VerboseTranscription = "application/json"),
                (String = "text/plain"),
                (String = "application/x-subrip"),
                (String = "text/vtt"),
            )),
        crate::openapi::TranscriptionErrors,
    ))]
pub async fn transcribe(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Params>,
    req: Request,
) -> Result<Response, ApiError> {
    let format = output_format(&params)?;
    let job = job_from(&params, req, &state).await?;
    let (t, model) = job::run(&state, job).await?;
    let body = match format {
        OutputFormat::VerboseJson => {
            let mut v = format::verbose_json(&t);
            v["model"] = json!(model);
            v.to_string()
        }
        other => format::render(&t, other),
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.mime())],
        body,
    )
        .into_response())
}

/// `POST /v1/transcribe/stream`: `progress` events while recognising,
/// then one `segment` event per segment, then `done` with the whole
/// transcript (or `error`).
#[utoipa::path(post, path = "/v1/transcribe/stream", tag = "native", params(Params),
    request_body(description = "The audio as the raw body (any supported container), or multipart with a `file` field",
        content(
            (Vec<u8> = "application/octet-stream"),
            (crate::openapi::NativeForm = "multipart/form-data"),
        )),
    responses(
        (status = 200, description = "Server-sent events: `progress` (`{progress}` 0–1), `segment` (`{id, start, end, text, words}`), \
            then `done` (verbose_json with `model`) or `error` (`{error: {code, message}}`)",
            content_type = "text/event-stream", body = String),
        crate::openapi::TranscriptionErrors,
    ))]
pub async fn stream(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Params>,
    req: Request,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let mut job = job_from(&params, req, &state).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let progress_tx = tx.clone();
    job.options.progress = Some(Arc::new(move |f: f32| {
        let _ = progress_tx.send(
            Event::default()
                .event("progress")
                .data(json!({ "progress": f }).to_string()),
        );
    }) as ProgressFn);
    tokio::spawn(async move {
        // A client that hangs up cancels its queued or running work.
        let closed = tx.clone();
        let result = tokio::select! {
            r = job::run(&state, job) => r,
            _ = closed.closed() => return,
        };
        match result {
            Ok((t, model)) => {
                for s in &t.segments {
                    let data = json!({ "id": s.id, "start": s.start, "end": s.end, "text": s.text, "words": s.words });
                    let _ = tx.send(Event::default().event("segment").data(data.to_string()));
                }
                let mut done = format::verbose_json(&t);
                done["model"] = json!(model);
                let _ = tx.send(Event::default().event("done").data(done.to_string()));
            }
            Err(e) => {
                let data = json!({ "error": { "code": e.code, "message": e.message } });
                let _ = tx.send(Event::default().event("error").data(data.to_string()));
            }
        }
    });
    Ok(Sse::new(tokio_stream::StreamExt::map(
        UnboundedReceiverStream::new(rx),
        Ok,
    )))
}
