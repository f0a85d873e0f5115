//! The session object of the Realtime protocol: how it is shown to the
//! client (GA and beta shapes) and how `session.update` changes it.

use glagol_core::audio::pcm::{Encoding, PcmInput, G711};
use glagol_core::audio::PcmFormat;
use glagol_core::stream::StreamConfig;
use serde_json::{json, Value};

use super::Realtime;

impl Realtime {
    fn session_object(&self) -> Value {
        let model = self
            .options
            .model
            .clone()
            .unwrap_or_else(|| "default".into());
        if self.beta {
            let format = match self.format["type"].as_str() {
                Some("audio/pcmu") => "g711_ulaw",
                Some("audio/pcma") => "g711_alaw",
                _ => "pcm16",
            };
            json!({
                "id": self.session_id,
                "object": "realtime.transcription_session",
                "input_audio_format": format,
                "input_audio_transcription": {"model": model, "language": self.options.language, "prompt": self.options.prompt},
                "turn_detection": self.turn_detection,
            })
        } else {
            json!({
                "id": self.session_id,
                "object": "realtime.session",
                "type": "transcription",
                "audio": {"input": {
                    "format": self.format,
                    "transcription": {"model": model, "language": self.options.language, "prompt": self.options.prompt},
                    "turn_detection": self.turn_detection,
                }},
            })
        }
    }

    pub(super) fn session_message(&mut self) -> String {
        let verb = if self.created { "updated" } else { "created" };
        self.created = true;
        let kind = if self.beta {
            format!("transcription_session.{verb}")
        } else {
            format!("session.{verb}")
        };
        let session = self.session_object();
        self.event(&kind, json!({ "session": session }))
    }

    /// Applies a `session.update` / `transcription_session.update`.
    pub(super) fn update(&mut self, session: &Value) -> Result<(), String> {
        // GA: session.audio.input.*; beta: session.input_audio_*.
        let input = &session["audio"]["input"];
        let transcription = if input.is_object() {
            &input["transcription"]
        } else {
            &session["input_audio_transcription"]
        };
        let format = if input.is_object() {
            input.get("format")
        } else {
            None
        };
        let beta_format = session.get("input_audio_format");
        let turn = if input.is_object() {
            input.get("turn_detection")
        } else {
            session.get("turn_detection")
        };
        if let Some(f) = format {
            let (encoding, rate) = match f["type"].as_str() {
                Some("audio/pcm") => {
                    let rate = f["rate"].as_u64().unwrap_or(24_000);
                    if rate != 24_000 {
                        return Err(format!("audio/pcm must be at 24000 Hz, got {rate}"));
                    }
                    (Encoding::Pcm(PcmFormat::S16Le), 24_000)
                }
                Some("audio/pcmu") => (Encoding::G711(G711::MuLaw), 8_000),
                Some("audio/pcma") => (Encoding::G711(G711::ALaw), 8_000),
                other => {
                    return Err(format!(
                    "unsupported audio format {other:?}: use audio/pcm, audio/pcmu or audio/pcma"
                ))
                }
            };
            self.input = PcmInput::mono(encoding, rate);
            self.format = f.clone();
        }
        if let Some(f) = beta_format {
            let (encoding, rate, ga) = match f.as_str() {
                Some("pcm16") => (
                    Encoding::Pcm(PcmFormat::S16Le),
                    24_000,
                    json!({"type": "audio/pcm", "rate": 24000}),
                ),
                Some("g711_ulaw") => (
                    Encoding::G711(G711::MuLaw),
                    8_000,
                    json!({"type": "audio/pcmu"}),
                ),
                Some("g711_alaw") => (
                    Encoding::G711(G711::ALaw),
                    8_000,
                    json!({"type": "audio/pcma"}),
                ),
                other => {
                    return Err(format!(
                    "unsupported input_audio_format {other:?}: use pcm16, g711_ulaw or g711_alaw"
                ))
                }
            };
            self.input = PcmInput::mono(encoding, rate);
            self.format = ga;
        }
        let mut options = self.options.clone();
        if transcription.is_object() {
            if let Some(m) = transcription["model"]
                .as_str()
                .filter(|m| !m.starts_with("gpt-") && *m != "whisper-1")
            {
                options.model = Some(m.to_string());
            }
            options.language = transcription["language"]
                .as_str()
                .map(String::from)
                .or(options.language);
            options.prompt = transcription["prompt"]
                .as_str()
                .map(String::from)
                .or(options.prompt);
        }
        if let Some(turn) = turn {
            options.stream = stream_config(turn, options.stream)?;
            self.turn_detection = turn.clone();
        }
        options.stream.validate()?;
        self.options = options.clone();
        self.reopen = Some(options);
        Ok(())
    }
}

/// `turn_detection`: `server_vad` with its knobs, or null (the client commits).
fn stream_config(turn: &Value, mut stream: StreamConfig) -> Result<StreamConfig, String> {
    if turn.is_null() {
        stream.endpointing = false;
        return Ok(stream);
    }
    match turn["type"].as_str() {
        Some("server_vad") | None => {}
        Some("semantic_vad") => {}
        Some(other) => return Err(format!("unsupported turn_detection type {other:?}")),
    }
    stream.endpointing = true;
    if let Some(v) = turn["threshold"].as_f64() {
        stream.threshold = v as f32;
    }
    if let Some(v) = turn["prefix_padding_ms"].as_u64() {
        stream.prefix_ms = Some(v.min(u32::MAX as u64) as u32);
    }
    if let Some(v) = turn["silence_duration_ms"].as_u64() {
        stream.silence_ms = v.min(u32::MAX as u64) as u32;
    }
    Ok(stream)
}
