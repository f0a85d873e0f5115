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
use glagol_core::format::{self, DiarizedJson, DiarizedSegment, OutputFormat, VerboseJson};

use super::chunking::Chunking;
use crate::error::ServiceError;
use crate::http::error::sse_event;
use crate::http::extract::{file_field, second_file, Multipart};
use crate::http::policy::auth::Caller;
use crate::http::types::TranscriptionErrors;
use crate::http::types::{
    LanguageCode, Logprob, OpenAiDiarized, OpenAiTranscription, OpenAiVerbose, TextDelta, TextDone,
    TokenUsage, TranscriptionJson, Usage,
};
use crate::scheduler::Class;
use crate::service::diarization::{self, DiarizeRequest, MAX_KNOWN_SPEAKERS};
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
    let mut diarize = false;
    let (mut speaker_names, mut speaker_clips) = (Vec::new(), Vec::new());
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
            "model" if value.trim() == DIARIZE_MODEL => diarize = true,
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
            "known_speaker_names[]" | "known_speaker_names" => speaker_names.push(value),
            "known_speaker_references[]" | "known_speaker_references" => speaker_clips.push(value),
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
    let diarize = diarize || format.needs_speakers() || !speaker_names.is_empty();
    let diarize = match diarize {
        true => Some(known_speakers(speaker_names, speaker_clips)?),
        false => None,
    };
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
            diarize,
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

/// Diarization with the named speakers' clips.
fn known_speakers(names: Vec<String>, clips: Vec<String>) -> Result<DiarizeRequest, ServiceError> {
    if names.len() != clips.len() {
        return Err(ServiceError::invalid(
            "invalid_known_speaker",
            format!(
                "known_speaker_names[] has {} entries and known_speaker_references[] {}; give one clip per name",
                names.len(),
                clips.len()
            ),
        ));
    }
    if names.len() > MAX_KNOWN_SPEAKERS {
        return Err(ServiceError::invalid(
            "invalid_known_speaker",
            format!(
                "at most {MAX_KNOWN_SPEAKERS} known speakers, got {}",
                names.len()
            ),
        ));
    }
    let mut request = DiarizeRequest::default();
    for (name, clip) in names.iter().zip(&clips) {
        let (name, samples) = diarization::known_speaker(name, clip)?;
        if request.known.iter().any(|(n, _)| *n == name) {
            return Err(ServiceError::invalid(
                "invalid_known_speaker",
                format!(
                    "known speaker {} is named twice",
                    glagol_core::engine::quoted(&name)
                ),
            ));
        }
        request.known.push((name, samples));
    }
    Ok(request)
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
    let diarized = request.diarize.is_some();
    let transcription = state.service.transcribe(request).await?;
    if answer.stream {
        return Ok(Sse::new(deltas(transcription, answer.logprobs, diarized)).into_response());
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
        OutputFormat::DiarizedJson => Json(OpenAiTranscription::Diarized(OpenAiDiarized {
            transcript: DiarizedJson::new(t),
            usage: Usage::of(t),
        }))
        .into_response(),
        other => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format::render(t, other),
        )
            .into_response(),
    }
}

/// `stream=true`: an append-only `transcript.text.delta` per segment as it
/// is decoded, then `transcript.text.done`; the concatenated deltas are the
/// done event's text. With speakers, each delta names its segment and is
/// followed by that `transcript.text.segment` (segments wait for
/// diarization, so they come together at the end).
fn deltas(
    transcription: Transcription,
    logprobs: bool,
    diarized: bool,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let queued: std::collections::VecDeque<SseEvent> = Default::default();
    futures_util::stream::unfold(
        (transcription, false, queued),
        move |(mut t, mut sent_any, mut queued)| async move {
            loop {
                if let Some(event) = queued.pop_front() {
                    return Some((Ok(event), (t, sent_any, queued)));
                }
                match t.next().await? {
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
                        let segment = diarized.then(|| DiarizedSegment::new(&s));
                        queued.push_back(json_event(
                            "transcript.text.delta",
                            &TextDelta {
                                kind: "transcript.text.delta",
                                delta,
                                logprobs: logprobs.then(|| Logprob::of(std::slice::from_ref(&s))),
                                segment_id: segment.as_ref().map(|g| g.id.clone()),
                            },
                        ));
                        if let Some(segment) = segment {
                            queued.push_back(json_event("transcript.text.segment", &segment));
                        }
                    }
                    Event::Done(done) => queued.push_back(json_event(
                        "transcript.text.done",
                        &TextDone {
                            kind: "transcript.text.done",
                            logprobs: logprobs.then(|| Logprob::of(&done.segments)),
                            languages: LanguageCode::of(&done),
                            usage: TokenUsage::of(&done),
                            text: done.text,
                        },
                    )),
                    Event::Error(e) => queued.push_back(sse_event(&e)),
                }
            }
        },
    )
}

pub fn json_event(name: &str, data: &impl serde::Serialize) -> SseEvent {
    SseEvent::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_default())
}
