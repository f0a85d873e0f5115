//! The messages of glagol's native live protocol (`/v1/ws`), as typed
//! structs: what clients send and what the server answers. The protocol is
//! a superset of gigastt's protocol 1.0 (`ready`, `configure`, binary PCM16,
//! `stop`, `partial`, `final`, `error`); `docs/streaming.md` documents it.

use glagol_core::engine::Word;
use serde::{Deserialize, Serialize};

/// The protocol's version, in `ready`.
pub const PROTOCOL_VERSION: &str = "glagol-1";
/// Sample rates a client may send.
pub const SUPPORTED_RATES: [u32; 6] = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000];

/// Client messages (text frames); unknown fields are ignored, so gigastt
/// clients' extra `configure` fields do no harm.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Configure(Configure),
    Finalize,
    Stop,
    Keepalive,
}

/// Decodes a client's text message, or says why not (code, message).
pub fn parse(text: &str) -> std::result::Result<ClientMessage, (&'static str, String)> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ("invalid_json", format!("the message is not JSON: {e}")))?;
    serde_json::from_value(value).map_err(|e| {
        (
            "unknown_message",
            format!("unknown or malformed message: {e}"),
        )
    })
}

/// Session settings, by query string at connect or by `configure` before
/// the first audio.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Configure {
    pub model: Option<String>,
    pub language: Option<String>,
    pub sample_rate: Option<u32>,
    /// `pcm_s16le` (default) or `pcm_f32le`.
    pub encoding: Option<String>,
    pub partials: Option<bool>,
    pub vad_threshold: Option<f32>,
    pub silence_ms: Option<u32>,
    /// gigastt's name for `silence_ms`.
    pub min_silence_ms: Option<u32>,
    pub max_utterance_s: Option<f64>,
    /// Audio kept before detected speech, 0–2000 ms (default 300).
    pub prefix_ms: Option<u32>,
    /// How long before the silence ends an utterance its final starts,
    /// 0 to `silence_ms` (default 300).
    pub early_final_ms: Option<u32>,
    pub prompt: Option<String>,
    /// Label finals with session-consistent speakers (`speaker`).
    pub diarize: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Ready<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub protocol_version: &'static str,
    pub version: &'static str,
    pub model: &'a str,
    pub sample_rate: u32,
    pub encoding: &'a str,
    pub supported_rates: [u32; 6],
    pub partials: bool,
    pub max_session_secs: u64,
    pub idle_timeout_secs: u64,
    /// Seconds of speech a client may be ahead of its finals before it is
    /// held back (twice that: refused).
    pub max_backlog_secs: u64,
    pub diarization: bool,
}

#[derive(Debug, Serialize)]
pub struct SpeechBoundary {
    /// `speech_started` or `speech_stopped`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub utterance_id: u64,
    /// Session audio seconds (`start` for started, `end` for stopped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct WireWord {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
    /// gigastt's name for `probability`.
    pub confidence: f32,
}

impl From<&Word> for WireWord {
    fn from(w: &Word) -> Self {
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        WireWord {
            word: w.word.clone(),
            start: r(w.start),
            end: r(w.end),
            probability: w.probability,
            confidence: w.probability,
        }
    }
}

/// `partial` and `final`.
#[derive(Debug, Serialize)]
pub struct Result {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub utterance_id: u64,
    pub text: String,
    pub start: f64,
    pub end: f64,
    pub words: Vec<WireWord>,
    pub is_final: bool,
    /// Partials: leading words of `text` that will not change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_words: Option<usize>,
    /// Finals: `vad`, `max_length`, `finalize`, `stop` or `shutdown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speech_final: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Milliseconds from the server receiving the audio at `end` to
    /// sending this: how far the text lags the speech (a final's includes
    /// the silence that ended its utterance).
    pub processing_ms: u64,
    /// Unix seconds when the result was sent (gigastt).
    pub timestamp: f64,
    /// Finals of a `diarize` session: `A`, `B`, … the same voice the same
    /// letter for the whole session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Error {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utterance_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub fn json(message: &impl Serialize) -> String {
    serde_json::to_string(message).expect("protocol messages serialise")
}
