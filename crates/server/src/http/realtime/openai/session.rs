//! The session object of the Realtime protocol: how it is shown to the
//! client (GA and beta shapes) and how `session.update` changes it.

use glagol_core::audio::pcm::{Encoding, PcmInput, G711};
use glagol_core::audio::PcmFormat;
use glagol_core::stream::StreamConfig;
use serde_json::{json, Value};

use super::Realtime;

/// The one `include` entry there is.
const LOGPROBS: &str = "item.input_audio_transcription.logprobs";

impl Realtime {
    pub(super) fn session_object(&self) -> Value {
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
                "include": self.include(),
                "input_audio_format": format,
                "input_audio_transcription": self.transcription_object(model),
                "input_audio_noise_reduction": self.noise_reduction,
                "turn_detection": self.turn_detection,
            })
        } else {
            json!({
                "id": self.session_id,
                "object": "realtime.transcription_session",
                "type": "transcription",
                "include": self.include(),
                "audio": {"input": {
                    "format": self.format,
                    "transcription": self.transcription_object(model),
                    "noise_reduction": self.noise_reduction,
                    "turn_detection": self.turn_detection,
                }},
            })
        }
    }

    fn include(&self) -> Value {
        if self.logprobs {
            json!([LOGPROBS])
        } else {
            json!([])
        }
    }

    fn transcription_object(&self, model: String) -> Value {
        let mut t =
            json!({"model": model, "language": self.options.language, "prompt": self.prompt});
        if !self.options.languages.is_empty() {
            t["languages"] = json!(self.options.languages);
        }
        if !self.keywords.is_empty() {
            t["keywords"] = json!(self.keywords);
        }
        t
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
        let logprobs = match session.get("include").filter(|i| !i.is_null()) {
            None => self.logprobs,
            Some(list) => {
                let items = strings(list, "include")
                    .map_err(|_| "include must be a list of strings".to_string())?;
                if let Some(other) = items.iter().find(|i| *i != LOGPROBS) {
                    return Err(format!("include may name {LOGPROBS}, got {other:?}"));
                }
                !items.is_empty()
            }
        };
        let noise_reduction = if input.is_object() {
            input.get("noise_reduction")
        } else {
            session.get("input_audio_noise_reduction")
        };
        if let Some(n) = noise_reduction {
            match n["type"].as_str() {
                _ if n.is_null() => {}
                Some("near_field" | "far_field") => {}
                other => {
                    return Err(format!(
                    "unsupported noise_reduction type {other:?}: use near_field, far_field or null"
                ))
                }
            }
        }
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
        let (mut prompt, mut keywords) = (self.prompt.clone(), self.keywords.clone());
        if transcription.is_object() {
            if let Some(m) = transcription["model"].as_str() {
                options.diarize = m == super::DIARIZE_MODEL;
            }
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
            if let Some(p) = transcription.get("prompt").filter(|p| !p.is_null()) {
                prompt = p.as_str().map(String::from);
            }
            if let Some(list) = transcription.get("languages").filter(|l| !l.is_null()) {
                options.languages = strings(list, "languages")?;
            }
            if let Some(list) = transcription.get("keywords").filter(|l| !l.is_null()) {
                keywords = strings(list, "keywords")?;
            }
        }
        options.prompt = glagol_core::engine::steered_prompt(prompt.as_deref(), &keywords);
        if let Some(turn) = turn {
            options.stream = stream_config(turn, options.stream)?;
            self.turn_detection = turn.clone();
        }
        options.stream.validate()?;
        self.options = options.clone();
        self.reopen = Some(options);
        (self.prompt, self.keywords, self.logprobs) = (prompt, keywords, logprobs);
        if let Some(n) = noise_reduction {
            self.noise_reduction = n.clone();
        }
        Ok(())
    }
}

/// A list of strings from `transcription.<name>`.
fn strings(list: &Value, name: &str) -> Result<Vec<String>, String> {
    list.as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|i| i.as_str().map(|s| s.trim().to_string()))
                .collect::<Option<Vec<_>>>()
        })
        .map(|mut v| {
            v.retain(|s| !s.is_empty());
            v
        })
        .ok_or_else(|| format!("transcription.{name} must be a list of strings"))
}

/// `turn_detection`: `server_vad` with its knobs, or null (the client commits).
fn stream_config(turn: &Value, mut stream: StreamConfig) -> Result<StreamConfig, String> {
    if turn.is_null() {
        stream.endpointing = false;
        return Ok(stream);
    }
    stream.endpointing = true;
    match turn["type"].as_str() {
        Some("server_vad") | None => {}
        // Turns end at a pause here, not at a model's sense that the
        // speaker is done: eagerness sets how long that pause is.
        Some("semantic_vad") => {
            stream.silence_ms = match turn["eagerness"].as_str() {
                Some("high") => 300,
                Some("medium" | "auto") | None => 700,
                Some("low") => 1500,
                Some(other) => {
                    return Err(format!(
                    "unsupported semantic_vad eagerness {other:?}: use low, medium, high or auto"
                ))
                }
            };
            return Ok(stream);
        }
        Some(other) => return Err(format!("unsupported turn_detection type {other:?}")),
    }
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
