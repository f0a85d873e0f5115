//! OpenAI-compatible `POST /v1/audio/transcriptions` and `/translations`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Multipart, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use glagol_core::engine::{Task, TranscribeOptions, Transcript};
use glagol_core::format::{self, OutputFormat};
use serde_json::json;

use crate::error::ApiError;
use crate::job::{self, Job};
use crate::AppState;

struct Form {
    job: Job,
    format: OutputFormat,
    words: bool,
    segments: bool,
    stream: bool,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_request", msg)
}

async fn parse(mut multipart: Multipart, task: Task) -> Result<Form, ApiError> {
    let mut audio = None;
    let mut extension = None;
    let mut options = TranscribeOptions {
        task,
        ..Default::default()
    };
    let (mut model, mut format, mut stream) = (None, OutputFormat::Json, false);
    let mut granularities: Vec<String> = Vec::new();
    while let Some(field) = multipart.next_field().await? {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            let (bytes, ext) = super::read_file(field).await?;
            audio = Some(bytes);
            extension = ext;
            continue;
        }
        let value = field.text().await?;
        match name.as_str() {
            "model" => model = Some(value),
            "language" => options.language = Some(value),
            "prompt" => options.initial_prompt = Some(value),
            "response_format" => format = value.parse().map_err(bad)?,
            "temperature" => {
                options.temperature = value
                    .parse()
                    .map_err(|_| bad(format!("temperature must be a number, got {value:?}")))?
            }
            "timestamp_granularities[]" | "timestamp_granularities" => granularities.push(value),
            "stream" => stream = value == "true" || value == "1",
            _ => {} // OpenAI ignores fields it does not know
        }
    }
    let audio = audio.ok_or_else(|| bad("the 'file' field is required"))?;
    for g in &granularities {
        if g != "word" && g != "segment" {
            return Err(bad(format!(
                "timestamp_granularities[] must be 'word' or 'segment', got {g:?}"
            )));
        }
    }
    let words = granularities.iter().any(|g| g == "word");
    if words && format != OutputFormat::VerboseJson {
        return Err(bad(
            "timestamp_granularities[] requires response_format=verbose_json",
        ));
    }
    options.word_timestamps = words;
    Ok(Form {
        job: Job {
            model,
            audio,
            extension,
            options,
            vad: false,
        },
        format,
        words,
        segments: granularities.is_empty() || granularities.iter().any(|g| g == "segment"),
        stream,
    })
}

/// `POST /v1/audio/transcriptions`.
#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = "openai",
    request_body(content = crate::openapi::TranscriptionForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The transcript in the requested format; with `stream=true`, server-sent events \
            `transcript.text.delta` (append-only `delta`) and `transcript.text.done` (`text`, `usage`)",
            content(
                (crate::openapi::TranscriptionJson = "application/json"),
                (crate::openapi::VerboseTranscription = "application/json"),
                (String = "text/plain"),
                (String = "text/event-stream"),
            )),
        crate::openapi::TranscriptionErrors,
    ))]
pub async fn transcriptions(
    State(state): State<Arc<AppState>>,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    handle(state, multipart, Task::Transcribe).await
}

/// `POST /v1/audio/translations` (into English).
#[utoipa::path(post, path = "/v1/audio/translations", tag = "openai",
    request_body(content = crate::openapi::TranslationForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The transcript in the requested format; with `stream=true`, server-sent events \
            `transcript.text.delta` (append-only `delta`) and `transcript.text.done` (`text`, `usage`)",
            content(
                (crate::openapi::TranscriptionJson = "application/json"),
                (crate::openapi::VerboseTranscription = "application/json"),
                (String = "text/plain"),
                (String = "text/event-stream"),
            )),
        crate::openapi::TranscriptionErrors,
    ))]
pub async fn translations(
    State(state): State<Arc<AppState>>,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    handle(state, multipart, Task::Translate).await
}

async fn handle(
    state: Arc<AppState>,
    multipart: Multipart,
    task: Task,
) -> Result<Response, ApiError> {
    let form = parse(multipart, task).await?;
    let (format, words, segments, stream) = (form.format, form.words, form.segments, form.stream);
    let (transcript, _model) = job::run(&state, form.job).await?;
    if stream {
        return Ok(sse(transcript).into_response());
    }
    Ok(respond(&transcript, format, words, segments))
}

fn usage(t: &Transcript) -> serde_json::Value {
    json!({ "type": "duration", "seconds": t.duration.ceil() as u64 })
}

fn respond(t: &Transcript, format: OutputFormat, words: bool, segments: bool) -> Response {
    match format {
        OutputFormat::Json => Json(json!({ "text": t.text, "usage": usage(t) })).into_response(),
        OutputFormat::VerboseJson => {
            let mut v = format::verbose_json(t);
            if !words {
                v.as_object_mut().map(|o| o.remove("words"));
            } else if v.get("words").is_none() {
                v["words"] = json!([]);
            }
            if !segments {
                v.as_object_mut().map(|o| o.remove("segments"));
            }
            v["usage"] = usage(t);
            Json(v).into_response()
        }
        other => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format::render(t, other),
        )
            .into_response(),
    }
}

/// `stream=true`: append-only `transcript.text.delta` events, one per
/// segment, then `transcript.text.done`.
fn sse(t: Transcript) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let mut events = Vec::new();
    let mut sent = String::new();
    for s in &t.segments {
        let piece = s.text.trim();
        if piece.is_empty() {
            continue;
        }
        let delta = if sent.is_empty() {
            piece.to_string()
        } else {
            format!(" {piece}")
        };
        sent.push_str(&delta);
        events.push(json!({ "type": "transcript.text.delta", "delta": delta }));
    }
    events.push(json!({ "type": "transcript.text.done", "text": t.text, "usage": usage(&t) }));
    let stream = futures_util::stream::iter(events.into_iter().map(|e| {
        let kind = e["type"].as_str().unwrap_or("message").to_string();
        Ok(Event::default().event(kind).data(e.to_string()))
    }));
    Sse::new(stream)
}
