//! OpenAI's Realtime API in transcription mode: `GET /v1/realtime?intent=transcription`.
//!
//! Both wire shapes the official clients send are accepted: the GA
//! `session.update` (`type: "transcription"`, `audio.input.{format,
//! transcription, turn_detection}`), answered with `session.created` /
//! `session.updated`, and the beta `transcription_session.update`
//! (`OpenAI-Beta: realtime=v1`), answered with `transcription_session.*`.
//! Audio is base64 PCM16 at 24 kHz (`audio/pcm`, `pcm16`) or G.711
//! (`audio/pcmu`/`g711_ulaw`, `audio/pcma`/`g711_alaw`, 8 kHz). With
//! `server_vad` the server ends turns; with `turn_detection: null` the
//! client commits them. Transcription deltas are append-only and sent while
//! the user speaks; the deltas of a turn add up to its `completed` transcript.
//! Deltas and `completed` also carry, beyond OpenAI's fields (its clients
//! ignore unknown ones), the session audio they reach (`audio_end_ms`) and
//! how long after that audio arrived they were sent (`processing_ms`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use glagol_core::audio::pcm::{Encoding, PcmInput};
use glagol_core::audio::PcmFormat;
use glagol_core::stream::EndReason;
use serde_json::{json, Value};

mod events;
mod logprobs;
mod session;

pub use self::events::{parse_event, ClientEvent, Refusal};
use super::{caller, ClientAudio, Protocol, Reply, Upgrade};
use crate::error::{ErrorKind, ServiceError};
use crate::http::extract::Query;
use crate::http::policy::auth::SecretUse;
use crate::service::{LiveSession, SessionEvent, SessionOptions};

/// The model name that asks for speakers: each turn's speaker comes in a
/// `conversation.item.input_audio_transcription.segment` event.
pub(super) const DIARIZE_MODEL: &str = "gpt-4o-transcribe-diarize";
use crate::state::AppState;

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// Must be `transcription` (conversations are not served).
    intent: Option<String>,
    /// Model id or alias; OpenAI model names (`gpt-4o-transcribe`, …) mean the default model.
    model: Option<String>,
}

/// `GET /v1/realtime`: upgrades to OpenAI's Realtime transcription protocol.
#[utoipa::path(get, path = "/v1/realtime", tag = "live", params(Params),
    responses(
        (status = 101, description = "Switching to OpenAI's Realtime protocol (transcription intent), subprotocol `realtime`"),
        (status = 400, description = "Not a transcription session, or not a WebSocket request", body = crate::http::types::ErrorBody),
        crate::http::types::CommonErrors,
    ))]
pub async fn realtime(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Params>,
    Upgrade(upgrade): Upgrade,
    request: Request,
) -> Result<Response, ServiceError> {
    if params.intent.as_deref() != Some("transcription") {
        return Err(ServiceError::invalid(
            "unsupported_intent",
            "this server serves transcription sessions only: connect with ?intent=transcription",
        ));
    }
    let config = state.config();
    let diarize = params.model.as_deref() == Some(DIARIZE_MODEL);
    let model = params.model.filter(|m| {
        !m.starts_with("gpt-")
            && state
                .registry
                .installed(&config.resolve_model(Some(m)))
                .is_ok()
    });
    let (parts, _) = request.into_parts();
    let mut realtime = Realtime::new(is_beta(&parts.headers), model);
    realtime.options.diarize = diarize;
    let slot = match parts.extensions.get::<SecretUse>() {
        Some(SecretUse::Refused(e)) => Err(e.clone()),
        granted => {
            if let Some(SecretUse::Granted(session)) = granted {
                // The settings the secret was minted for (checked then);
                // the client may still change them.
                realtime
                    .update(session)
                    .map_err(|e| ServiceError::invalid("invalid_session", e))?;
                realtime.reopen = None;
            }
            let resolved = config.resolve_model(realtime.options.model.as_deref());
            let (who, per_key) = caller(&parts, config.settings.max_sessions_per_key);
            state
                .service
                .sessions
                .take(&resolved, &who, config.settings.max_sessions, per_key)
        }
    };
    let options = realtime.options.clone();
    let max = config.settings.max_frame_bytes;
    Ok(upgrade
        .protocols(["realtime"])
        .max_message_size(max * 2)
        .max_frame_size(max * 2)
        .on_upgrade(move |socket| super::run(socket, state, options, slot, realtime))
        .into_response())
}

/// Checks a session a client secret is minted for, as `session.update`
/// would apply it; the session object as the client will first see it.
pub fn minted_session(session: &Value, beta: bool) -> Result<Value, ServiceError> {
    let mut realtime = Realtime::new(beta, None);
    realtime
        .update(session)
        .map_err(|e| ServiceError::invalid("invalid_session", e))?;
    Ok(realtime.session_object())
}

fn is_beta(headers: &HeaderMap) -> bool {
    headers
        .get("openai-beta")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("realtime=v1"))
}

#[derive(Clone)]
struct Realtime {
    beta: bool,
    options: SessionOptions,
    /// The session's audio format as the client named it.
    format: Value,
    turn_detection: Value,
    /// How appended audio is encoded.
    input: PcmInput,
    next_event: u64,
    session_id: String,
    previous_item: Option<String>,
    /// Audio appended since the last commit or turn end.
    buffered: bool,
    reopen: Option<SessionOptions>,
    /// The settings before an update whose session is being opened.
    before: Option<Box<Realtime>>,
    /// The next session message is `updated` rather than `created`.
    created: bool,
    /// The client's prompt and keywords (the recognisers get them joined).
    prompt: Option<String>,
    keywords: Vec<String>,
    /// Echoed as given; glagol applies no noise reduction of its own.
    noise_reduction: Value,
    /// `include: ["item.input_audio_transcription.logprobs"]`: completions carry logprobs.
    logprobs: bool,
}

impl Realtime {
    fn new(beta: bool, model: Option<String>) -> Realtime {
        Realtime {
            beta,
            options: SessionOptions {
                model,
                ..SessionOptions::default()
            },
            format: json!({"type": "audio/pcm", "rate": 24000}),
            turn_detection: json!({"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 500}),
            input: PcmInput::mono(Encoding::Pcm(PcmFormat::S16Le), 24_000),
            next_event: 0,
            session_id: format!("sess_{:x}", rand_id()),
            previous_item: None,
            buffered: false,
            reopen: None,
            before: None,
            created: false,
            prompt: None,
            keywords: Vec::new(),
            noise_reduction: Value::Null,
            logprobs: false,
        }
    }

    fn event(&mut self, kind: &str, mut body: Value) -> String {
        self.next_event += 1;
        body["type"] = json!(kind);
        body["event_id"] = json!(format!("event_{}_{}", self.session_id, self.next_event));
        body.to_string()
    }

    fn item(&self, utterance: u64) -> String {
        format!("item_{}_{utterance}", self.session_id)
    }

    fn error_event(
        &mut self,
        code: &str,
        message: &str,
        kind: ErrorKind,
        client_event: Option<&str>,
    ) -> String {
        let r#type = if kind == ErrorKind::InvalidRequest {
            "invalid_request_error"
        } else {
            "server_error"
        };
        self.event(
            "error",
            json!({ "error": { "type": r#type, "code": code, "message": message, "param": null, "event_id": client_event } }),
        )
    }

    fn complaint(&mut self, code: &str, message: String, client_event: Option<&str>) -> Reply {
        Reply {
            send: vec![self.error_event(code, &message, ErrorKind::InvalidRequest, client_event)],
            active: true,
            ..Reply::default()
        }
    }
}

/// Session seconds as the protocol's milliseconds.
fn ms(seconds: f64) -> u64 {
    (seconds * 1000.0).round() as u64
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

impl Protocol for Realtime {
    fn opened(&mut self, session: &LiveSession) -> Vec<String> {
        // The padding in effect: the client's, or the model's default.
        if self.turn_detection.is_object() {
            self.turn_detection["prefix_padding_ms"] = json!(session.prefix_ms());
        }
        vec![self.session_message()]
    }

    fn text(&mut self, text: &str, session: &mut Option<LiveSession>) -> Reply {
        let (event, client_event) = match parse_event(text) {
            Ok(parsed) => parsed,
            Err((code, message, client_event)) => {
                return self.complaint(code, message, client_event.as_deref())
            }
        };
        let id = client_event.as_deref();
        match event {
            ClientEvent::SessionUpdate {
                beta,
                session: update,
            } => {
                self.beta = beta;
                let before = Box::new(self.clone());
                match self.update(&update) {
                    // The reply goes out once the session reopened.
                    Ok(()) => {
                        self.before = Some(before);
                        Reply {
                            active: true,
                            ..Reply::default()
                        }
                    }
                    Err(e) => self.complaint("invalid_value", e, id),
                }
            }
            ClientEvent::Append(bytes) => {
                if session.is_none() || bytes.is_empty() {
                    return Reply::default();
                }
                self.buffered = true;
                Reply {
                    active: true,
                    audio: Some(ClientAudio {
                        bytes,
                        input: self.input,
                    }),
                    ..Reply::default()
                }
            }
            ClientEvent::Commit => {
                let Some(live) = session.as_mut() else {
                    return Reply::default();
                };
                if !live.finalize(EndReason::Finalize) {
                    return self.complaint(
                        "input_audio_buffer_commit_empty",
                        "there is no audio in the buffer to commit".into(),
                        id,
                    );
                }
                Reply {
                    active: true,
                    ..Reply::default()
                }
            }
            ClientEvent::Clear => {
                if let Some(live) = session.as_mut() {
                    live.clear();
                }
                self.buffered = false;
                let cleared = self.event("input_audio_buffer.cleared", json!({}));
                Reply {
                    send: vec![cleared],
                    active: true,
                    ..Reply::default()
                }
            }
        }
    }

    fn binary(&mut self, _bytes: &[u8]) -> Reply {
        self.complaint(
            "invalid_value",
            "send audio as base64 in input_audio_buffer.append events".into(),
            None,
        )
    }

    fn event(&mut self, event: SessionEvent) -> Vec<String> {
        let vad = !self.turn_detection.is_null();
        match event {
            SessionEvent::SpeechStarted { utterance, start } => {
                if !vad {
                    return Vec::new();
                }
                let item = self.item(utterance);
                vec![self.event(
                    "input_audio_buffer.speech_started",
                    json!({ "audio_start_ms": ms(start), "item_id": item }),
                )]
            }
            SessionEvent::SpeechStopped { utterance, end } => {
                let item = self.item(utterance);
                let mut out = Vec::new();
                if vad {
                    out.push(self.event(
                        "input_audio_buffer.speech_stopped",
                        json!({ "audio_end_ms": ms(end), "item_id": item }),
                    ));
                }
                let previous = self.previous_item.replace(item.clone());
                out.push(self.event(
                    "input_audio_buffer.committed",
                    json!({ "item_id": item, "previous_item_id": previous }),
                ));
                let created = if self.beta {
                    "conversation.item.created"
                } else {
                    "conversation.item.added"
                };
                out.push(self.event(
                    created,
                    json!({ "previous_item_id": previous, "item": {
                        "id": item, "object": "realtime.item", "type": "message", "status": "completed",
                        "role": "user", "content": [{ "type": "input_audio", "transcript": null }],
                    }}),
                ));
                self.buffered = false;
                out
            }
            SessionEvent::Partial(p) => {
                if p.delta.is_empty() {
                    return Vec::new();
                }
                let item = self.item(p.utterance);
                let mut delta = json!({
                    "item_id": item, "content_index": 0, "delta": p.delta,
                    "audio_end_ms": ms(p.end), "processing_ms": p.delay.as_millis() as u64,
                });
                if self.logprobs {
                    // The delta is the words this partial committed.
                    let n = p.delta.split_whitespace().count();
                    let words = p.words.get(p.committed.saturating_sub(n)..p.committed);
                    if let Some(l) = words.and_then(|w| logprobs::word_logprobs(&p.delta, w)) {
                        delta["logprobs"] = l;
                    }
                }
                vec![self.event("conversation.item.input_audio_transcription.delta", delta)]
            }
            SessionEvent::Final(f) => {
                let item = self.item(f.utterance);
                let (end, processing) = (ms(f.end), f.delay.as_millis() as u64);
                let mut out = Vec::new();
                if !f.completion.is_empty() {
                    let mut delta = json!({
                        "item_id": item, "content_index": 0, "delta": f.completion,
                        "audio_end_ms": end, "processing_ms": processing,
                    });
                    if self.logprobs {
                        // The completion is the final's last words.
                        let n = f.completion.split_whitespace().count();
                        let words = f.words.get(f.words.len().saturating_sub(n)..);
                        if let Some(l) =
                            words.and_then(|w| logprobs::word_logprobs(&f.completion, w))
                        {
                            delta["logprobs"] = l;
                        }
                    }
                    out.push(
                        self.event("conversation.item.input_audio_transcription.delta", delta),
                    );
                }
                let transcript = format!("{}{}", f.committed, f.completion);
                if let Some(speaker) = &f.speaker {
                    out.push(self.event(
                        "conversation.item.input_audio_transcription.segment",
                        json!({
                            "item_id": item, "content_index": 0, "id": format!("seg_{}", f.utterance),
                            "start": f.start, "end": f.end, "speaker": speaker, "text": transcript,
                        }),
                    ));
                }
                let mut completed = json!({
                    "item_id": item, "content_index": 0, "transcript": transcript,
                    "usage": { "type": "duration", "seconds": ((f.end - f.start) * 1000.0).round() / 1000.0 },
                    "audio_end_ms": end, "processing_ms": processing,
                });
                if let Some(code) = &f.language {
                    completed["languages"] = json!([{ "code": code }]);
                }
                if self.logprobs {
                    completed["logprobs"] = f
                        .logprobs
                        .iter()
                        .map(|t| json!({"token": t.token, "bytes": t.bytes, "logprob": t.logprob}))
                        .collect();
                }
                out.push(self.event(
                    "conversation.item.input_audio_transcription.completed",
                    completed,
                ));
                out
            }
            SessionEvent::Error {
                utterance: Some(u),
                error,
            } => {
                let item = self.item(u);
                vec![self.event(
                    "conversation.item.input_audio_transcription.failed",
                    json!({ "item_id": item, "content_index": 0, "error": {
                        "type": "server_error", "code": error.code, "message": error.message,
                    }}),
                )]
            }
            SessionEvent::Error {
                utterance: None,
                error,
            } => {
                vec![self.error_event(error.code, &error.message, error.kind, None)]
            }
        }
    }

    fn error(&mut self, error: &ServiceError) -> String {
        self.error_event(error.code, &error.message, error.kind, None)
    }

    fn reopen(&mut self) -> Option<SessionOptions> {
        self.reopen.take()
    }

    fn reopen_failed(&mut self) -> Option<SessionOptions> {
        let mut before = self.before.take()?;
        // The conversation goes on: its event ids and items are kept.
        before.next_event = self.next_event;
        before.created = self.created;
        before.previous_item = self.previous_item.take();
        before.buffered = self.buffered;
        *self = *before;
        Some(self.options.clone())
    }
}
