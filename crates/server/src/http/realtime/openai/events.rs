//! Decoding the Realtime protocol's client events.

use base64::Engine as _;
use serde_json::Value;

/// A client event of the transcription protocol, decoded.
#[derive(Debug)]
pub enum ClientEvent {
    /// `session.update` (GA) or `transcription_session.update` (`beta`).
    SessionUpdate {
        beta: bool,
        session: Value,
    },
    /// `input_audio_buffer.append`, its audio decoded from base64.
    Append(Vec<u8>),
    Commit,
    Clear,
}

/// Why a client event was refused: the error code, the message, and the
/// event's `event_id` to name in the `error` event.
pub type Refusal = (&'static str, String, Option<String>);

/// Decodes a client event: the event and its `event_id`, or why not.
pub fn parse_event(text: &str) -> Result<(ClientEvent, Option<String>), Refusal> {
    let event: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return Err(("invalid_json", "events are JSON objects".into(), None)),
        Err(e) => return Err(("invalid_json", format!("the event is not JSON: {e}"), None)),
    };
    let id = event["event_id"].as_str().map(String::from);
    let invalid = |m: String| Err(("invalid_value", m, id.clone()));
    let parsed = match event["type"].as_str().unwrap_or("") {
        kind @ ("session.update" | "transcription_session.update") => {
            let session = event["session"].clone();
            if !session.is_object() {
                return invalid("`session` must be an object".into());
            }
            let beta = kind == "transcription_session.update";
            if !beta
                && session["type"]
                    .as_str()
                    .is_some_and(|t| t != "transcription")
            {
                return invalid(
                    "only transcription sessions are served (session.type = \"transcription\")"
                        .into(),
                );
            }
            ClientEvent::SessionUpdate { beta, session }
        }
        "input_audio_buffer.append" => {
            let Some(audio) = event["audio"].as_str() else {
                return invalid("`audio` must be a base64 string".into());
            };
            match base64::engine::general_purpose::STANDARD.decode(audio) {
                Ok(bytes) => ClientEvent::Append(bytes),
                Err(e) => return invalid(format!("`audio` is not base64: {e}")),
            }
        }
        "input_audio_buffer.commit" => ClientEvent::Commit,
        "input_audio_buffer.clear" => ClientEvent::Clear,
        "" => return invalid("the event has no `type`".into()),
        other => {
            return invalid(format!(
                "unknown event type {}",
                glagol_core::engine::quoted(other)
            ))
        }
    };
    Ok((parsed, id))
}
