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

use super::chunking::Chunking;
use crate::error::ServiceError;
use crate::http::error::sse_event;
use crate::http::extract::{file_field, second_file, Multipart};
use crate::http::policy::auth::Caller;
use crate::http::types::TranscriptionErrors;
use crate::http::types::{
    LanguageCode, Logprob, OpenAiTranscription, OpenAiVerbose, TextDelta, TextDone, TokenUsage,
    TranscriptionJson, Usage,
};
use crate::scheduler::Class;
use crate::service::{Event, TranscribeRequest, Transcription};
use crate::state::AppState;

/// The model name OpenAI's clients use for speakers.
const DIARIZE_MODEL: &str = "gpt-4o-transcribe-diarize";

/// How the transcript is answered.
struct Answer {
    format: OutputFormat,
    words: bool,
    segments: bool,
    stream: bool,
    /// `include[]=logprobs`.
    logprobs: bool,
}

fn bad(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid("invalid_request", message)
}

async fn parse(
    Multipart(mut multipart): Multipart,
    task: Task,
) -> Result<(TranscribeRequest, Answer), ServiceError> {
    let mut audio = None;
    let mut options = TranscribeOptions {
        task,
        ..Default::default()
    };
    let (mut model, mut format, mut stream) = (None, OutputFormat::Json, false);
    let mut granularities: Vec<String> = Vec::new();
    let (mut keywords, mut chunking) = (Vec::new(), Chunking::default());
    let mut logprobs = false;
    // The field that asked for speakers, which this server cannot give yet.
    let mut diarization: Option<&str> = None;
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
            "model" if value.trim() == DIARIZE_MODEL => {
                diarization = Some("model=gpt-4o-transcribe-diarize")
            }
            "model" => model = Some(value),
            "language" => options.language = Some(value),
            "languages[]" | "languages" => options.languages.push(value.trim().to_string()),
            "prompt" => options.initial_prompt = Some(value),
            "keywords[]" | "keywords" => keywords.push(value.trim().to_string()),
            "include[]" | "include" => match value.trim() {
                "logprobs" => logprobs = true,
                other => {
                    return Err(bad(format!(
                        "include[] may name logprobs, got {}",
                        glagol_core::engine::quoted(other)
                    )))
                }
            },
            "chunking_strategy" => chunking.whole = Some(value),
            n if n.starts_with("chunking_strategy[") && n.ends_with(']') => {
                let key = &n["chunking_strategy[".len()..n.len() - 1];
                chunking.keys.push((key.to_string(), value));
            }
            "known_speaker_names[]" | "known_speaker_names" => {
                diarization = Some("known_speaker_names[]")
            }
            "known_speaker_references[]" | "known_speaker_references" => {
                diarization = Some("known_speaker_references[]")
            }
            "response_format" if value.trim() == "diarized_json" => {
                diarization = Some("response_format=diarized_json")
            }
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
    if let Some(field) = diarization {
        return Err(ServiceError::invalid(
            "diarization_unavailable",
            format!(
                "{field} asks for speaker diarization, which this server does not offer yet; \
                 ask for response_format json, verbose_json, text, srt or vtt"
            ),
        ));
    }
    let audio = audio.ok_or_else(|| bad("the 'file' field is required"))?;
    // GigaAM has nothing to steer and ignores them.
    options.initial_prompt =
        glagol_core::engine::steered_prompt(options.initial_prompt.as_deref(), &keywords);
    options.languages.retain(|l| !l.is_empty());
    let vad = chunking.parse()?;
    for g in &granularities {
        if g != "word" && g != "segment" {
            return Err(bad(format!(
                "timestamp_granularities[] must be 'word' or 'segment', got {}",
                glagol_core::engine::quoted(g)
            )));
        }
    }
    if logprobs && !matches!(format, OutputFormat::Json) {
        return Err(bad("include[]=logprobs requires response_format=json"));
    }
    let words = granularities.iter().any(|g| g == "word");
    if words && format != OutputFormat::VerboseJson {
        return Err(bad(
            "timestamp_granularities[] requires response_format=verbose_json",
        ));
    }
    options.word_timestamps = words;
    Ok((
        TranscribeRequest {
            model,
            audio,
            options,
            vad,
            class: Class::Interactive,
            account: None,
        },
        Answer {
            format,
            words,
            segments: granularities.is_empty() || granularities.iter().any(|g| g == "segment"),
            stream,
            logprobs,
        },
    ))
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
    caller: Caller,
    multipart: Multipart,
) -> Result<Response, ServiceError> {
    handle(state, caller, multipart, Task::Transcribe).await
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
    caller: Caller,
    multipart: Multipart,
) -> Result<Response, ServiceError> {
    handle(state, caller, multipart, Task::Translate).await
}

async fn handle(
    state: Arc<AppState>,
    caller: Caller,
    multipart: Multipart,
    task: Task,
) -> Result<Response, ServiceError> {
    let (mut request, answer) = parse(multipart, task).await?;
    request.account = caller.account();
    let transcription = state.service.transcribe(request).await?;
    if answer.stream {
        return Ok(Sse::new(deltas(transcription, answer.logprobs)).into_response());
    }
    let transcript = transcription.finish().await?;
    Ok(respond(&transcript, &answer))
}

fn respond(t: &Transcript, form: &Answer) -> Response {
    let (words, segments) = (form.words, form.segments);
    match form.format {
        OutputFormat::Json => Json(OpenAiTranscription::Json(TranscriptionJson {
            text: t.text.clone(),
            logprobs: form.logprobs.then(|| Logprob::of(&t.segments)),
            languages: LanguageCode::of(t),
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
fn deltas(
    transcription: Transcription,
    logprobs: bool,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures_util::stream::unfold(
        (transcription, false),
        move |(mut t, mut sent_any)| async move {
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
                                logprobs: logprobs.then(|| Logprob::of(std::slice::from_ref(&s))),
                            },
                        )
                    }
                    Event::Done(done) => json_event(
                        "transcript.text.done",
                        &TextDone {
                            kind: "transcript.text.done",
                            logprobs: logprobs.then(|| Logprob::of(&done.segments)),
                            languages: LanguageCode::of(&done),
                            usage: TokenUsage::of(&done),
                            text: done.text,
                        },
                    ),
                    Event::Error(e) => sse_event(&e),
                };
                return Some((Ok(event), (t, sent_any)));
            }
        },
    )
}

pub fn json_event(name: &str, data: &impl serde::Serialize) -> SseEvent {
    SseEvent::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_default())
}
