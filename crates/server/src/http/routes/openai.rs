//! OpenAI-compatible `POST /v1/audio/transcriptions` and `/translations`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::Stream;
use glagol_core::engine::{Task, TranscribeOptions, Transcript};
use glagol_core::format::{self, OutputFormat, VerboseJson};

use crate::error::ServiceError;
use crate::http::error::sse_event;
use crate::http::extract::{file_field, second_file, Multipart};
use crate::http::types::TranscriptionErrors;
use crate::http::types::{
    OpenAiTranscription, OpenAiVerbose, TextDelta, TextDone, TranscriptionJson, Usage,
};
use crate::scheduler::Class;
use crate::service::{Event, TranscribeRequest, Transcription};
use crate::state::AppState;

struct Form {
    request: TranscribeRequest,
    format: OutputFormat,
    words: bool,
    segments: bool,
    stream: bool,
}

fn bad(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid("invalid_request", message)
}

async fn parse(Multipart(mut multipart): Multipart, task: Task) -> Result<Form, ServiceError> {
    let mut audio = None;
    let mut options = TranscribeOptions {
        task,
        ..Default::default()
    };
    let (mut model, mut format, mut stream) = (None, OutputFormat::Json, false);
    let mut granularities: Vec<String> = Vec::new();
    while let Some(field) = multipart.next_field().await? {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            if audio.is_some() {
                return Err(second_file());
            }
            audio = Some(file_field(field).await?);
            continue;
        }
        let value = field.text().await?;
        match name.as_str() {
            "model" => model = Some(value),
            "language" => options.language = Some(value),
            "prompt" => options.initial_prompt = Some(value),
            "response_format" => format = value.trim().parse().map_err(|e: String| bad(e))?,
            "temperature" => {
                options.temperature = value.trim().parse().map_err(|_| {
                    bad(format!(
                        "temperature must be a number between 0 and 1, got {}",
                        glagol_core::engine::quoted(&value)
                    ))
                })?
            }
            "timestamp_granularities[]" | "timestamp_granularities" => granularities.push(value),
            "stream" => {
                stream = match value.trim() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    other => {
                        return Err(bad(format!(
                            "stream must be true or false, got {}",
                            glagol_core::engine::quoted(other)
                        )))
                    }
                }
            }
            _ => {} // OpenAI ignores fields it does not know
        }
    }
    let audio = audio.ok_or_else(|| bad("the 'file' field is required"))?;
    for g in &granularities {
        if g != "word" && g != "segment" {
            return Err(bad(format!(
                "timestamp_granularities[] must be 'word' or 'segment', got {}",
                glagol_core::engine::quoted(g)
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
        request: TranscribeRequest {
            model,
            audio,
            options,
            vad: false,
            class: Class::Interactive,
        },
        format,
        words,
        segments: granularities.is_empty() || granularities.iter().any(|g| g == "segment"),
        stream,
    })
}

/// `POST /v1/audio/transcriptions`.
#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = "openai",
    request_body(content = crate::http::types::TranscriptionForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The transcript in the requested format; with `stream=true`, server-sent events \
            `transcript.text.delta` (append-only `delta`, sent as each segment is decoded) and `transcript.text.done` (`text`, `usage`)",
            content(
                (OpenAiTranscription = "application/json"),
                (String = "text/plain"),
                (TextDelta = "text/event-stream"),
            )),
        TranscriptionErrors,
    ))]
pub async fn transcriptions(
    State(state): State<Arc<AppState>>,
    multipart: Multipart,
) -> Result<Response, ServiceError> {
    handle(state, multipart, Task::Transcribe).await
}

/// `POST /v1/audio/translations` (into English).
#[utoipa::path(post, path = "/v1/audio/translations", tag = "openai",
    request_body(content = crate::http::types::TranslationForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The transcript in the requested format; with `stream=true`, server-sent events \
            `transcript.text.delta` (append-only `delta`) and `transcript.text.done` (`text`, `usage`)",
            content(
                (OpenAiTranscription = "application/json"),
                (String = "text/plain"),
                (TextDelta = "text/event-stream"),
            )),
        TranscriptionErrors,
    ))]
pub async fn translations(
    State(state): State<Arc<AppState>>,
    multipart: Multipart,
) -> Result<Response, ServiceError> {
    handle(state, multipart, Task::Translate).await
}

async fn handle(
    state: Arc<AppState>,
    multipart: Multipart,
    task: Task,
) -> Result<Response, ServiceError> {
    let form = parse(multipart, task).await?;
    let transcription = state.service.transcribe(form.request).await?;
    if form.stream {
        return Ok(Sse::new(deltas(transcription)).into_response());
    }
    let transcript = transcription.finish().await?;
    Ok(respond(&transcript, form.format, form.words, form.segments))
}

fn respond(t: &Transcript, format: OutputFormat, words: bool, segments: bool) -> Response {
    match format {
        OutputFormat::Json => Json(OpenAiTranscription::Json(TranscriptionJson {
            text: t.text.clone(),
            usage: Usage::of(t),
        }))
        .into_response(),
        OutputFormat::VerboseJson => {
            let mut v = VerboseJson::new(t);
            if !words {
                v.words = None;
            } else if v.words.is_none() {
                v.words = Some(Vec::new());
            }
            if !segments {
                v.segments = None;
            }
            Json(OpenAiTranscription::Verbose(OpenAiVerbose {
                transcript: v,
                usage: Usage::of(t),
            }))
            .into_response()
        }
        other => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format::render(t, other),
        )
            .into_response(),
    }
}

/// `stream=true`: an append-only `transcript.text.delta` per segment as it
/// is decoded, then `transcript.text.done`; the concatenated deltas are the
/// done event's text.
fn deltas(transcription: Transcription) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures_util::stream::unfold((transcription, false), |(mut t, mut sent_any)| async move {
        loop {
            let event = match t.next().await? {
                Event::Progress(_) => continue,
                Event::Segment(s) => {
                    let piece = s.text.trim();
                    if piece.is_empty() {
                        continue;
                    }
                    let delta = if sent_any {
                        format!(" {piece}")
                    } else {
                        piece.to_string()
                    };
                    sent_any = true;
                    json_event(
                        "transcript.text.delta",
                        &TextDelta {
                            kind: "transcript.text.delta",
                            delta,
                        },
                    )
                }
                Event::Done(done) => json_event(
                    "transcript.text.done",
                    &TextDone {
                        kind: "transcript.text.done",
                        usage: Usage::of(&done),
                        text: done.text,
                    },
                ),
                Event::Error(e) => sse_event(&e),
            };
            return Some((Ok(event), (t, sent_any)));
        }
    })
}

pub fn json_event(name: &str, data: &impl serde::Serialize) -> SseEvent {
    SseEvent::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_default())
}
