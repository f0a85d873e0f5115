//! glagol's native live protocol: `GET /v1/ws` (see [`super::protocol`]).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use glagol_core::audio::pcm::{Encoding, PcmInput};
use glagol_core::audio::PcmFormat;
use glagol_core::engine::quoted;
use glagol_core::stream::EndReason;

use super::protocol::{self, ClientMessage, Configure};
use super::{caller, ClientAudio, Protocol, Reply, Upgrade, CLOSE_NORMAL};
use crate::error::ServiceError;
use crate::http::extract::Query;
use crate::service::{LiveSession, SessionEvent, SessionOptions};
use crate::state::AppState;

/// `GET /v1/ws`: upgrades to the native live protocol.
#[utoipa::path(get, path = "/v1/ws", tag = "live",
    params(
        ("model" = Option<String>, Query, description = "Model id or alias (default: the server's default model)"),
        ("language" = Option<String>, Query, description = "ISO-639-1 code; detected when absent (Whisper)"),
        ("sample_rate" = Option<u32>, Query, description = "8000–48000 (default 16000)"),
        ("encoding" = Option<String>, Query, description = "`pcm_s16le` (default) or `pcm_f32le`"),
        ("partials" = Option<bool>, Query, description = "Send partial results (default true)"),
        ("vad_threshold" = Option<f32>, Query, description = "Speech probability threshold, 0.05–0.95 (default 0.5)"),
        ("silence_ms" = Option<u32>, Query, description = "Silence that ends an utterance, 100–10000 ms (default 500)"),
        ("max_utterance_s" = Option<f64>, Query, description = "Longest utterance, 2–60 s (default 20)"),
        ("prefix_ms" = Option<u32>, Query, description = "Audio kept before detected speech, 0–2000 ms (default: 1000 for Whisper models, 300 for others)"),
        ("early_final_ms" = Option<u32>, Query, description = "How long before the silence ends an utterance its final starts, 0 to silence_ms (default 300; 0: after the silence)"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol documented in docs/streaming.md; subprotocol `glagol-1` when offered (browsers offer `glagol-1` and `glagol-key.KEY`)"),
        (status = 400, description = "Bad parameter or not a WebSocket request", body = crate::http::types::ErrorBody),
        crate::http::types::CommonErrors,
    ))]
pub async fn ws(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Configure>,
    Upgrade(upgrade): Upgrade,
    request: Request,
) -> Result<Response, ServiceError> {
    let mut native = Native::new(params)?;
    let config = state.config();
    native.limits = (
        config.settings.max_session_seconds,
        config.settings.session_idle_timeout,
        config.settings.max_live_backlog,
    );
    let model = config.resolve_model(native.options.model.as_deref());
    let (parts, _) = request.into_parts();
    let (who, per_key) = caller(&parts, config.settings.max_sessions_per_key);
    let slot = state
        .service
        .sessions
        .take(&model, &who, config.settings.max_sessions, per_key);
    let max = config.settings.max_frame_bytes;
    let options = native.options.clone();
    // A browser that offered subprotocols (the key travels as one) fails
    // the handshake unless the answer selects one of them.
    Ok(upgrade
        .protocols(["glagol-1"])
        .max_message_size(max * 2)
        .max_frame_size(max * 2)
        .on_upgrade(move |socket| super::run(socket, state, options, slot, native))
        .into_response())
}

#[derive(Clone)]
struct Native {
    options: SessionOptions,
    sample_rate: u32,
    encoding: &'static str,
    /// How binary frames are encoded.
    input: PcmInput,
    audio_started: bool,
    reopen: Option<SessionOptions>,
    /// The settings before a `configure` whose session is being opened.
    before: Option<Box<Native>>,
    /// Longest session, idle timeout and backlog, in seconds, for `ready`.
    limits: (u64, u64, u64),
}

impl Native {
    fn new(params: Configure) -> Result<Native, ServiceError> {
        let mut n = Native {
            options: SessionOptions::default(),
            sample_rate: 16_000,
            encoding: "pcm_s16le",
            input: PcmInput::mono(Encoding::Pcm(PcmFormat::S16Le), 16_000),
            audio_started: false,
            reopen: None,
            before: None,
            limits: (0, 0, 0),
        };
        n.apply(params)?;
        Ok(n)
    }

    /// Applies settings (a `configure`, or the query string).
    fn apply(&mut self, c: Configure) -> Result<(), ServiceError> {
        let bad = |m: String| ServiceError::invalid("invalid_configuration", m);
        let rate = c.sample_rate.unwrap_or(self.sample_rate);
        if !(8_000..=48_000).contains(&rate) {
            return Err(bad(format!("sample_rate must be 8000–48000, got {rate}")));
        }
        let (encoding, format) = match c.encoding.as_deref().unwrap_or(self.encoding) {
            "pcm_s16le" => ("pcm_s16le", PcmFormat::S16Le),
            "pcm_f32le" => ("pcm_f32le", PcmFormat::F32Le),
            other => {
                return Err(bad(format!(
                    "encoding must be pcm_s16le or pcm_f32le, got {}",
                    quoted(other)
                )))
            }
        };
        let mut stream = self.options.stream;
        if let Some(v) = c.vad_threshold {
            stream.threshold = v;
        }
        if let Some(v) = c.silence_ms.or(c.min_silence_ms) {
            stream.silence_ms = v;
        }
        if let Some(v) = c.max_utterance_s {
            stream.max_utterance_s = v;
        }
        if let Some(v) = c.partials {
            stream.partials = v;
        }
        stream.prefix_ms = c.prefix_ms.or(stream.prefix_ms);
        if let Some(v) = c.early_final_ms {
            stream.early_final_ms = v;
        }
        stream.validate().map_err(bad)?;
        let options = SessionOptions {
            model: c.model.or(self.options.model.clone()),
            language: c.language.or(self.options.language.clone()),
            languages: self.options.languages.clone(),
            prompt: c.prompt.or(self.options.prompt.clone()),
            stream,
            diarize: c.diarize.unwrap_or(self.options.diarize),
        };
        self.sample_rate = rate;
        self.encoding = encoding;
        self.input = PcmInput::mono(Encoding::Pcm(format), rate);
        self.options = options;
        Ok(())
    }

    fn error_message(e: &ServiceError, utterance: Option<u64>) -> String {
        protocol::json(&protocol::Error {
            kind: "error",
            code: e.code,
            message: e.message.clone(),
            utterance_id: utterance,
            retry_after_ms: e.retry_after.map(|d| d.as_millis() as u64),
        })
    }
}

impl Protocol for Native {
    fn opened(&mut self, session: &LiveSession) -> Vec<String> {
        vec![protocol::json(&protocol::Ready {
            kind: "ready",
            protocol_version: protocol::PROTOCOL_VERSION,
            version: env!("CARGO_PKG_VERSION"),
            model: session.model(),
            sample_rate: self.sample_rate,
            encoding: self.encoding,
            supported_rates: protocol::SUPPORTED_RATES,
            partials: self.options.stream.partials,
            max_session_secs: self.limits.0,
            idle_timeout_secs: self.limits.1,
            max_backlog_secs: self.limits.2,
            diarization: self.options.diarize,
        })]
    }

    fn text(&mut self, text: &str, session: &mut Option<LiveSession>) -> Reply {
        let message: ClientMessage = match serde_json::from_str::<serde_json::Value>(text) {
            Err(e) => {
                return self.complaint("invalid_json", format!("the message is not JSON: {e}"))
            }
            Ok(v) => match serde_json::from_value(v) {
                Ok(m) => m,
                Err(e) => {
                    return self.complaint(
                        "unknown_message",
                        format!("unknown or malformed message: {e}"),
                    )
                }
            },
        };
        match message {
            ClientMessage::Configure(c) => {
                if self.audio_started {
                    return self.complaint(
                        "configure_after_audio",
                        "configure is only accepted before the first audio".into(),
                    );
                }
                let before = Box::new(self.clone());
                match self.apply(c) {
                    Ok(()) => {
                        self.reopen = Some(self.options.clone());
                        self.before = Some(before);
                        Reply {
                            active: true,
                            ..Reply::default()
                        }
                    }
                    Err(e) => Reply {
                        send: vec![Self::error_message(&e, None)],
                        active: true,
                        ..Reply::default()
                    },
                }
            }
            ClientMessage::Finalize => {
                if let Some(s) = session.as_mut() {
                    s.finalize(EndReason::Finalize);
                }
                Reply {
                    active: true,
                    ..Reply::default()
                }
            }
            ClientMessage::Stop => {
                // The loop ends the session, the converter's tail included.
                Reply {
                    active: true,
                    close: Some((EndReason::Stop, CLOSE_NORMAL)),
                    ..Reply::default()
                }
            }
            ClientMessage::Keepalive => Reply {
                active: true,
                ..Reply::default()
            },
        }
    }

    fn binary(&mut self, bytes: &[u8]) -> Reply {
        if bytes.is_empty() {
            return Reply::default();
        }
        self.audio_started = true;
        Reply {
            active: true,
            audio: Some(ClientAudio {
                bytes: bytes.to_vec(),
                input: self.input,
            }),
            ..Reply::default()
        }
    }

    fn event(&mut self, event: SessionEvent) -> Vec<String> {
        let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
        vec![match event {
            SessionEvent::SpeechStarted { utterance, start } => {
                protocol::json(&protocol::SpeechBoundary {
                    kind: "speech_started",
                    utterance_id: utterance,
                    start: Some(r3(start)),
                    end: None,
                })
            }
            SessionEvent::SpeechStopped { utterance, end } => {
                protocol::json(&protocol::SpeechBoundary {
                    kind: "speech_stopped",
                    utterance_id: utterance,
                    start: None,
                    end: Some(r3(end)),
                })
            }
            SessionEvent::Partial(p) => protocol::json(&protocol::Result {
                kind: "partial",
                utterance_id: p.utterance,
                text: p.text,
                start: r3(p.start),
                end: r3(p.end),
                words: p.words.iter().map(Into::into).collect(),
                is_final: false,
                stable_words: Some(p.committed),
                endpoint_reason: None,
                speech_final: None,
                language: None,
                processing_ms: p.delay.as_millis() as u64,
                timestamp: protocol::now_unix(),
                speaker: None,
            }),
            SessionEvent::Final(f) => protocol::json(&protocol::Result {
                kind: "final",
                utterance_id: f.utterance,
                text: f.text,
                start: r3(f.start),
                end: r3(f.end),
                words: f.words.iter().map(Into::into).collect(),
                is_final: true,
                stable_words: None,
                endpoint_reason: Some(f.reason.name()),
                speech_final: Some(true),
                language: f.language,
                processing_ms: f.delay.as_millis() as u64,
                timestamp: protocol::now_unix(),
                speaker: f.speaker,
            }),
            SessionEvent::Error { utterance, error } => Self::error_message(&error, utterance),
        }]
    }

    fn error(&mut self, error: &ServiceError) -> String {
        Self::error_message(error, None)
    }

    fn reopen(&mut self) -> Option<SessionOptions> {
        self.reopen.take()
    }

    fn reopen_failed(&mut self) -> Option<SessionOptions> {
        let before = self.before.take()?;
        *self = *before;
        Some(self.options.clone())
    }
}

impl Native {
    fn complaint(&self, code: &'static str, message: String) -> Reply {
        Reply {
            send: vec![Self::error_message(
                &ServiceError::invalid(code, message),
                None,
            )],
            active: true,
            ..Reply::default()
        }
    }
}
