//! One Wyoming utterance as a live session: from its first audio to
//! `audio-stop` (or, with server endpointing, to the first final).
//!
//! Home Assistant ends the utterance itself (its own VAD, then
//! `audio-stop`), so by default the session does not end it at pauses:
//! the whole audio is one turn, recognised at `audio-stop` like a file —
//! the same text the file transcription of that audio gives — while
//! partials during the audio send their committed words as
//! `transcript-chunk`s and the final's remainder as the last chunk. The
//! chunks add up to the transcript unless the final heard a committed word
//! differently; the transcript is authoritative. A turn in which the VAD
//! heard no speech is an empty transcript, never recognised silence.
//!
//! With `--wyoming-endpointing` the session ends the utterance at the
//! speaker's silence (`vad_sensitivity` picks it, as Home Assistant's own
//! VAD does), the transcript goes out at once, and the audio until
//! `audio-stop` is ignored.

use std::sync::Arc;

use glagol_core::audio::pcm::PcmInput;
use glagol_core::stream::{EndReason, StreamConfig};
use serde::Serialize;
use serde_json::Value;

use super::codec::encode;
use crate::error::ServiceError;
use crate::service::{LiveSession, SessionEvent, SessionOptions, SessionSlot};
use crate::state::AppState;

/// What `transcribe` asked for the next utterance.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// A model id or alias (`name`).
    pub model: Option<String>,
    pub language: Option<String>,
    /// Opaque; given back in `transcript-start` and `transcript`.
    pub context: Option<Value>,
    /// Names and terms to expect, as a Whisper prompt.
    pub prompt: Option<String>,
    /// `default`, `relaxed` or `aggressive` (server endpointing only).
    pub vad_sensitivity: Option<String>,
}

/// The most of a prompt made from names and terms, in characters (Whisper
/// keeps about 220 tokens of it).
const MAX_PROMPT_CHARS: usize = 600;

impl Request {
    /// From a `transcribe` event's data.
    pub fn from_event(data: &serde_json::Map<String, Value>) -> Request {
        let text = |k: &str| data.get(k).and_then(Value::as_str).map(String::from);
        let words = |k: &str| -> Vec<String> {
            data.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(|w| w.chars().filter(|c| !c.is_control()).collect::<String>())
                        .filter(|w| !w.trim().is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut expected = words("transcript_names");
        expected.extend(words("transcript_terms"));
        let mut prompt = String::new();
        for w in expected {
            if prompt.chars().count() + w.chars().count() + 2 > MAX_PROMPT_CHARS {
                break;
            }
            if !prompt.is_empty() {
                prompt.push_str(", ");
            }
            prompt.push_str(w.trim());
        }
        Request {
            model: text("name").filter(|m| !m.is_empty()),
            language: text("language").filter(|l| !l.is_empty()),
            context: data.get("context").filter(|c| !c.is_null()).cloned(),
            prompt: (!prompt.is_empty()).then_some(prompt),
            vad_sensitivity: text("vad_sensitivity"),
        }
    }
}

#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct Transcript<'a> {
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a Value>,
}

pub struct Turn {
    session: LiveSession,
    _slot: SessionSlot,
    request: Request,
    endpointing: bool,
    /// `transcript-start` was sent.
    started: bool,
    texts: Vec<String>,
    language: Option<String>,
    /// No more audio is wanted: `audio-stop` came, or (endpointing) the
    /// utterance ended.
    closed: bool,
    /// `audio-stop` came (or the server stops).
    stopped: bool,
    /// The transcript was sent.
    answered: bool,
}

impl Turn {
    /// Opens the session of the model `request` routes to.
    pub async fn open(
        state: &Arc<AppState>,
        request: Request,
        peer: &str,
    ) -> Result<Turn, ServiceError> {
        let config = state.config();
        let endpointing = config.settings.wyoming_endpointing;
        let model = route(state, &request);
        let slot = state.service.sessions.take(
            &model,
            peer,
            config.settings.max_sessions,
            config.settings.max_sessions_per_key,
        )?;
        let silence_ms = match request.vad_sensitivity.as_deref() {
            Some("relaxed") => 1250,
            Some("aggressive") => 250,
            _ => 700,
        };
        let options = SessionOptions {
            model: Some(model),
            language: request.language.clone(),
            languages: Vec::new(),
            prompt: request.prompt.clone(),
            diarize: false,
            stream: StreamConfig {
                endpointing,
                silence_ms,
                max_utterance_s: 60.0,
                early_final_ms: if endpointing { 300 } else { 0 },
                ..StreamConfig::default()
            },
        };
        let session = state.service.open_session(options).await?;
        Ok(Turn {
            session,
            _slot: slot,
            request,
            endpointing,
            started: false,
            texts: Vec::new(),
            language: None,
            closed: false,
            stopped: false,
            answered: false,
        })
    }

    /// Feeds an `audio-chunk`.
    pub async fn audio(&mut self, bytes: Vec<u8>, input: PcmInput) -> Result<(), ServiceError> {
        if self.closed {
            return Ok(());
        }
        self.session.push_pcm(bytes, input).await?;
        if self.session.clock() > super::MAX_UTTERANCE_S {
            return Err(ServiceError::new(
                crate::error::ErrorKind::TooLarge,
                "utterance_too_long",
                format!(
                    "an utterance may hold at most {} s of audio",
                    super::MAX_UTTERANCE_S
                ),
            ));
        }
        Ok(())
    }

    /// `audio-stop` (or the server stops): the rest of the audio is the
    /// end of the utterance.
    pub fn stop(&mut self, reason: EndReason) {
        self.stopped = true;
        if !std::mem::replace(&mut self.closed, true) {
            self.session.finalize(reason);
        }
    }

    /// Whether the transcript was sent and `audio-stop` came.
    pub fn done(&self) -> bool {
        self.answered && self.stopped
    }

    /// The next session event.
    pub async fn next(&mut self) -> SessionEvent {
        self.session.next().await
    }

    /// What a session event sends; an error ends the connection.
    pub fn event(&mut self, event: SessionEvent) -> Result<Vec<u8>, ServiceError> {
        let mut out = Vec::new();
        match event {
            SessionEvent::Partial(p) if !p.delta.is_empty() && !self.answered => {
                out.extend(self.start());
                out.extend(encode(
                    "transcript-chunk",
                    Some(&Text { text: &p.delta }),
                    None,
                ));
            }
            SessionEvent::Final(f) if !self.answered => {
                if !f.completion.is_empty() {
                    out.extend(self.start());
                    let chunk = Text {
                        text: &f.completion,
                    };
                    out.extend(encode("transcript-chunk", Some(&chunk), None));
                }
                self.language = self.language.take().or(f.language);
                self.texts.push(f.text);
                if self.endpointing {
                    // The speaker's silence ended the utterance: answer now,
                    // and take no more audio.
                    self.closed = true;
                    out.extend(self.answer());
                }
            }
            SessionEvent::Error { error, .. } => return Err(error),
            _ => {}
        }
        out.extend(self.answer_if_ready());
        Ok(out)
    }

    /// After `audio-stop`, once no final is still to come: the transcript.
    pub fn answer_if_ready(&mut self) -> Vec<u8> {
        if self.stopped && !self.answered && !self.session.has_pending_finals() {
            self.answer()
        } else {
            Vec::new()
        }
    }

    fn start(&mut self) -> Vec<u8> {
        if std::mem::replace(&mut self.started, true) {
            return Vec::new();
        }
        transcript_start(&self.request)
    }

    /// The answer to an utterance without audio: an empty transcript.
    pub fn empty(request: &Request) -> Vec<u8> {
        let transcript = Transcript {
            text: "",
            language: request.language.as_deref(),
            context: request.context.as_ref(),
        };
        let mut out = transcript_start(request);
        out.extend(encode("transcript", Some(&transcript), None));
        out.extend(encode("transcript-stop", None::<&()>, None));
        out
    }

    /// `transcript` (and around it the start and stop of the stream).
    fn answer(&mut self) -> Vec<u8> {
        self.answered = true;
        let mut out = self.start();
        let text = self.texts.join(" ");
        let language = self.language.clone().or(self.request.language.clone());
        let transcript = Transcript {
            text: &text,
            language: language.as_deref(),
            context: self.request.context.as_ref(),
        };
        out.extend(encode("transcript", Some(&transcript), None));
        out.extend(encode("transcript-stop", None::<&()>, None));
        out
    }
}

#[derive(Serialize)]
struct Start<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a Value>,
}

fn transcript_start(request: &Request) -> Vec<u8> {
    let start = Start {
        language: request.language.as_deref(),
        context: request.context.as_ref(),
    };
    encode("transcript-start", Some(&start), None)
}

/// The model for `request`: its `name`, else the model configured for its
/// language (`--wyoming-model LANG=MODEL`, `*` for any), else the default.
fn route(state: &AppState, request: &Request) -> String {
    let config = state.config();
    if let Some(name) = request.model.as_deref() {
        return config.resolve_model(Some(name));
    }
    let configured = |lang: &str| {
        config
            .settings
            .wyoming_models
            .iter()
            .filter_map(|m| m.split_once('='))
            .find(|(l, _)| l.trim().eq_ignore_ascii_case(lang))
            .map(|(_, m)| m.trim().to_string())
    };
    let chosen = request
        .language
        .as_deref()
        .and_then(configured)
        .or_else(|| configured("*"));
    config.resolve_model(chosen.as_deref())
}
