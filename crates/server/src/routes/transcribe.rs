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

#[derive(Debug, Deserialize)]
pub struct Params {
    model: Option<String>,
    language: Option<String>,
    #[serde(default)]
    task: Option<String>,
    /// txt, json, verbose_json, srt, vtt (default verbose_json).
    format: Option<String>,
    #[serde(default)]
    word_timestamps: bool,
    #[serde(default)]
    vad: bool,
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
        match job::run(&state, job).await {
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
