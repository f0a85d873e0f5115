//! glagol's native API: `POST /v1/transcribe` (any container as the raw
//! body, or multipart with a `file` field) and `POST /v1/transcribe/stream`
//! (the same, answered with server-sent events while recognition runs).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::Stream;
use glagol_core::engine::{quoted, Task, TranscribeOptions, Transcript};
use glagol_core::format::{self, DiarizedJson, OutputFormat, VerboseJson};
use serde::Deserialize;

use super::openai::json_event;
use crate::error::ServiceError;
use crate::http::error::sse_event;
use crate::http::extract::{native_upload, Query};
use crate::http::policy::auth::Caller;
use crate::http::types::TranscriptionErrors;
use crate::http::types::{NativeVerbose, ProgressEvent, SegmentEvent};
use crate::scheduler::Class;
use crate::service::diarization::DiarizeRequest;
use crate::service::{Event, TranscribeRequest, Transcription};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// Model id or alias (default: the server's default model).
    model: Option<String>,
    /// ISO-639-1 code; detected when absent (Whisper).
    language: Option<String>,
    /// `transcribe` (default) or `translate` (into English, Whisper).
    task: Option<String>,
    /// txt, json, verbose_json, srt, vtt (default verbose_json).
    format: Option<String>,
    /// Per-word timings in verbose_json.
    #[serde(default)]
    word_timestamps: bool,
    /// Recognise only the speech the VAD finds.
    #[serde(default)]
    vad: bool,
    /// Text that guides style or vocabulary (Whisper; the last 1000 characters are used).
    prompt: Option<String>,
    /// Label segments and words with speakers (`speaker`; also implied by format=diarized_json).
    #[serde(default)]
    diarize: bool,
    /// The number of speakers, when known (diarization).
    num_speakers: Option<usize>,
    /// At least this many speakers (diarization).
    min_speakers: Option<usize>,
    /// At most this many speakers (diarization).
    max_speakers: Option<usize>,
}

async fn request_from(
    params: Params,
    caller: &Caller,
    req: Request,
) -> Result<TranscribeRequest, ServiceError> {
    let task = match params.task.as_deref() {
        None | Some("transcribe") => Task::Transcribe,
        Some("translate") => Task::Translate,
        Some(other) => {
            return Err(ServiceError::invalid(
                "invalid_request",
                format!(
                    "task must be transcribe or translate, got {}",
                    quoted(other)
                ),
            ))
        }
    };
    let diarize =
        params.diarize || params.format.as_deref() == Some(OutputFormat::DiarizedJson.name());
    let diarize = match diarize {
        true => Some(DiarizeRequest::with_counts(
            params.num_speakers,
            params.min_speakers,
            params.max_speakers,
        )?),
        false => None,
    };
    Ok(TranscribeRequest {
        diarize,
        model: params.model,
        audio: native_upload(req).await?,
        options: TranscribeOptions {
            language: params.language,
            task,
            word_timestamps: params.word_timestamps,
            initial_prompt: params.prompt,
            ..Default::default()
        },
        vad: params.vad.then(Default::default),
        class: Class::Interactive,
        account: caller.account(),
    })
}

/// A native `format` parameter (default verbose_json).
pub fn output_format(format: Option<&str>) -> Result<OutputFormat, ServiceError> {
    format
        .unwrap_or("verbose_json")
        .parse()
        .map_err(|e: String| ServiceError::invalid("invalid_request", e))
}

/// A transcript as the native API answers it: verbose_json with `model`,
/// or the format's text with its media type.
pub fn transcript_response(t: &Transcript, model: String, format: OutputFormat) -> Response {
    match format {
        OutputFormat::DiarizedJson => Json(DiarizedJson::new(t)).into_response(),
        OutputFormat::VerboseJson => Json(NativeVerbose {
            transcript: VerboseJson::new(t),
            model,
        })
        .into_response(),
        other => (
            [(header::CONTENT_TYPE, other.mime())],
            format::render(t, other),
        )
            .into_response(),
    }
}

/// `POST /v1/transcribe`.
#[utoipa::path(post, path = "/v1/transcribe", tag = "native", params(Params),
    request_body(description = "The audio as the raw body (any supported container), or multipart with a `file` field",
        content(
            (Vec<u8> = "application/octet-stream"),
            (crate::http::types::NativeForm = "multipart/form-data"),
        )),
    responses(
        (status = 200, description = "The transcript: verbose_json (with `model`) by default, or txt, json, srt, vtt",
            content(
                (NativeVerbose = "application/json"),
                (String = "text/plain"),
                (String = "application/x-subrip"),
                (String = "text/vtt"),
            )),
        TranscriptionErrors,
    ))]
pub async fn transcribe(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(params): Query<Params>,
    req: Request,
) -> Result<Response, ServiceError> {
    let format = output_format(params.format.as_deref())?;
    let transcription = state
        .service
        .transcribe(request_from(params, &caller, req).await?)
        .await?;
    let model = transcription.model.clone();
    let t = transcription.finish().await?;
    Ok(transcript_response(&t, model, format))
}

/// `POST /v1/transcribe/stream`: events while recognising.
#[utoipa::path(post, path = "/v1/transcribe/stream", tag = "native", params(Params),
    request_body(description = "The audio as the raw body (any supported container), or multipart with a `file` field",
        content(
            (Vec<u8> = "application/octet-stream"),
            (crate::http::types::NativeForm = "multipart/form-data"),
        )),
    responses(
        (status = 200, description = "Server-sent events: `progress` (ProgressEvent), `segment` (SegmentEvent, as soon as \
            each segment is decoded), then `done` (verbose_json with `model`) or `error` (`{error: {code, message}}`); \
            the stream ends after `done` or `error`",
            content_type = "text/event-stream", body = ProgressEvent),
        TranscriptionErrors,
    ))]
pub async fn stream(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(params): Query<Params>,
    req: Request,
) -> Result<Response, ServiceError> {
    let transcription = state
        .service
        .transcribe(request_from(params, &caller, req).await?)
        .await?;
    Ok(Sse::new(events(transcription))
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn events(transcription: Transcription) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures_util::stream::unfold(transcription, |mut t| async move {
        let event = match t.next().await? {
            Event::Progress(p) => json_event("progress", &ProgressEvent::from(p)),
            Event::Segment(s) => json_event("segment", &SegmentEvent::from(&s)),
            Event::Done(done) => json_event(
                "done",
                &NativeVerbose {
                    transcript: VerboseJson::new(&done),
                    model: t.model.clone(),
                },
            ),
            Event::Error(e) => sse_event(&e),
        };
        Some((Ok(event), t))
    })
}
