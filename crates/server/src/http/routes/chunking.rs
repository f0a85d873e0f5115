//! OpenAI's `chunking_strategy` in each encoding its clients send: the
//! string `auto`; an object as one JSON string; or, from the official
//! clients, one bracketed form field per key (`chunking_strategy[type]`).
//! It maps onto the VAD that cuts a request's audio into speech: `auto` is
//! glagol's own cutting, `server_vad` the client's threshold, silence and
//! padding. Absent, the audio is recognised whole (glagol still cuts long
//! audio at pauses, which OpenAI does not).

use glagol_core::engine::quoted;
use glagol_core::vad::VadConfig;
use serde_json::Value;

use crate::error::ServiceError;

/// The fields as they came.
#[derive(Default)]
pub struct Chunking {
    /// `chunking_strategy=…`: `auto` or a JSON object.
    pub whole: Option<String>,
    /// `chunking_strategy[key]=value` fields.
    pub keys: Vec<(String, String)>,
}

/// OpenAI's `server_vad` defaults for files.
const THRESHOLD: f32 = 0.5;
const PREFIX_PADDING_MS: u32 = 300;
const SILENCE_DURATION_MS: u32 = 200;

fn bad(message: String) -> ServiceError {
    ServiceError::invalid("invalid_chunking_strategy", message)
}

impl Chunking {
    /// The VAD settings asked for; None: no chunking.
    pub fn parse(self) -> Result<Option<VadConfig>, ServiceError> {
        let mut keys: Vec<(String, Value)> = self
            .keys
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        match self.whole.as_deref().map(str::trim) {
            None if keys.is_empty() => return Ok(None),
            None => {}
            Some("auto") if keys.is_empty() => return Ok(Some(VadConfig::default())),
            Some(json) if json.starts_with('{') && keys.is_empty() => {
                let Ok(Value::Object(object)) = serde_json::from_str::<Value>(json) else {
                    return Err(bad(format!(
                        "chunking_strategy is not a JSON object: {}",
                        quoted(json)
                    )));
                };
                keys = object.into_iter().collect();
            }
            Some(other) => {
                return Err(bad(format!(
                    "chunking_strategy must be \"auto\" or {{\"type\": \"server_vad\", …}}, got {}",
                    quoted(other)
                )))
            }
        }
        let mut config = VadConfig {
            threshold: THRESHOLD,
            min_silence_ms: SILENCE_DURATION_MS,
            speech_pad_ms: PREFIX_PADDING_MS,
            ..VadConfig::default()
        };
        let mut kind = None;
        for (key, value) in keys {
            let text = match &value {
                Value::String(s) => s.trim().to_string(),
                other => other.to_string(),
            };
            let number = |max: f64| {
                text.parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && (0.0..=max).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "chunking_strategy.{key} must be a number from 0 to {max}, got {}",
                            quoted(&text)
                        ))
                    })
            };
            match key.as_str() {
                "type" => kind = Some(text.clone()),
                "threshold" => config.threshold = number(1.0)? as f32,
                "silence_duration_ms" => config.min_silence_ms = number(10_000.0)? as u32,
                "prefix_padding_ms" => config.speech_pad_ms = number(10_000.0)? as u32,
                other => {
                    return Err(bad(format!(
                        "chunking_strategy has no field {}",
                        quoted(other)
                    )))
                }
            }
        }
        match kind.as_deref() {
            Some("server_vad") => {}
            Some(other) => {
                return Err(bad(format!(
                    "chunking_strategy.type must be \"server_vad\", got {}",
                    quoted(other)
                )))
            }
            None => return Err(bad("chunking_strategy.type is required".into())),
        }
        // Silero's hysteresis, as upstream sets it.
        config.neg_threshold = (config.threshold - 0.15).max(0.01);
        Ok(Some(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(whole: Option<&str>, keys: &[(&str, &str)]) -> Result<Option<VadConfig>, String> {
        Chunking {
            whole: whole.map(String::from),
            keys: keys
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
        .parse()
        .map_err(|e| e.to_string())
    }

    #[test]
    fn every_encoding_means_the_same() {
        assert_eq!(parse(None, &[]), Ok(None));
        assert_eq!(parse(Some("auto"), &[]), Ok(Some(VadConfig::default())));
        let bracketed = parse(
            None,
            &[
                ("type", "server_vad"),
                ("threshold", "0.6"),
                ("silence_duration_ms", "700"),
                ("prefix_padding_ms", "100"),
            ],
        )
        .unwrap()
        .unwrap();
        let json = parse(
            Some(r#"{"type":"server_vad","threshold":0.6,"silence_duration_ms":700,"prefix_padding_ms":100}"#),
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!(bracketed, json);
        assert_eq!(
            (json.threshold, json.min_silence_ms, json.speech_pad_ms),
            (0.6, 700, 100)
        );
        assert!((json.neg_threshold - 0.45).abs() < 1e-6);
        let defaults = parse(None, &[("type", "server_vad")]).unwrap().unwrap();
        assert_eq!(
            (
                defaults.threshold,
                defaults.min_silence_ms,
                defaults.speech_pad_ms
            ),
            (0.5, 200, 300)
        );
    }

    #[test]
    fn wrong_values_are_named() {
        for (whole, keys, says) in [
            (Some("manual"), vec![], "must be \"auto\""),
            (Some("{not json"), vec![], "not a JSON object"),
            (None, vec![("threshold", "0.5")], "type is required"),
            (None, vec![("type", "semantic")], "must be \"server_vad\""),
            (
                None,
                vec![("type", "server_vad"), ("threshold", "2")],
                "threshold",
            ),
            (
                None,
                vec![("type", "server_vad"), ("volume", "1")],
                "no field",
            ),
        ] {
            let e = parse(whole, &keys).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
