//! OpenAI's Realtime transcription protocol end to end: the real server,
//! real models, the official `openai` Python client and raw events.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::server::Server;
use common::ws::Client;
use serde_json::{json, Value};

/// Live tests measure behaviour in real time: one at a time, so two model
/// servers do not share the two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn openai_realtime_clients_get_deltas_while_speaking_and_one_completion_per_turn() {
    let _one = exclusive();
    let s = Server::start(&["--preload", "whisper-base"]);
    s.wait_ready("whisper-base");
    let dir = tempfile::tempdir().unwrap();
    let clips: Vec<PathBuf> = common::golos()
        .into_iter()
        .map(|(p, _)| p)
        .take(4)
        .collect();
    let (audio, spans) = common::joined_recording(&clips, 1.0);
    let wav = dir.path().join("turns.wav");
    common::write_wav(&wav, &audio, 16_000);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_realtime.py");
    for shape in ["ga", "beta"] {
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg(format!("{}/v1", s.base))
            .arg(&wav)
            .arg(shape)
            .arg(spans.len().to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shape}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let turns = v["turns"].as_array().unwrap();
        assert_eq!(
            turns.len(),
            spans.len(),
            "{shape}: one completion per clip: {v}"
        );
        for t in turns {
            assert_eq!(
                t["deltas"].as_str(),
                t["transcript"].as_str(),
                "{shape}: {t}"
            );
        }
        assert!(
            turns
                .iter()
                .any(|t| t["deltas_before_stop"].as_u64().unwrap() > 0),
            "{shape}: no delta arrived while the user spoke: {v}"
        );
        // The session as confirmed echoes what was asked.
        let session = &v["session"];
        assert_eq!(session["object"], "realtime.transcription_session", "{v}");
        if shape == "ga" {
            // Asked for: each completion's tokens spell the final text, which
            // the transcript follows (its start is what the deltas committed,
            // which the final may word differently).
            for t in turns {
                // Every delta carries logprobs whose tokens join to it.
                let deltas = t["delta_logprobs"].as_array().unwrap();
                assert!(
                    !deltas.is_empty() && deltas.iter().all(|d| d == true),
                    "{shape}: delta logprobs: {t}"
                );
                let spelled: Vec<&str> = t["logprob_tokens"]
                    .as_str()
                    .unwrap()
                    .split_whitespace()
                    .collect();
                let said: Vec<&str> = t["transcript"]
                    .as_str()
                    .unwrap()
                    .split_whitespace()
                    .collect();
                let shared = said.iter().filter(|w| spelled.contains(w)).count();
                assert!(!spelled.is_empty() && shared * 2 >= said.len(), "{t}");
            }
            assert_eq!(
                session["include"],
                json!(["item.input_audio_transcription.logprobs"]),
                "{v}"
            );
            let input = &session["audio"]["input"];
            assert_eq!(input["noise_reduction"]["type"], "near_field", "{v}");
            assert_eq!(
                input["transcription"]["languages"],
                json!(["ru", "en"]),
                "{v}"
            );
            assert_eq!(input["transcription"]["keywords"], json!(["Голос"]), "{v}");
        } else {
            assert_eq!(
                session["input_audio_noise_reduction"]["type"], "far_field",
                "{v}"
            );
            assert_eq!(session["turn_detection"]["eagerness"], "medium", "{v}");
        }
    }
}

#[test]
fn client_secrets_open_realtime_sessions_for_browsers_and_nothing_else() {
    let _one = exclusive();
    let s = Server::start(&[
        "--preload",
        "whisper-base",
        "--default-model",
        "whisper-base",
        "--api-key",
        "backend-key",
    ]);
    s.wait_ready_with_key("whisper-base", "backend-key");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client_secret.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(format!("{}/v1", s.base))
        .arg("backend-key")
        .arg(common::misc("jfk.wav"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn openai_realtime_bad_input_gets_error_events_and_the_session_stays_open() {
    let _one = exclusive();
    let s = Server::start(&[
        "--preload",
        "gigaam-tiny",
        "--default-model",
        "gigaam-tiny",
        "--api-key",
        "k",
    ]);
    s.wait_ready_with_key("gigaam-tiny", "k");
    let url = s
        .url("/v1/realtime?intent=transcription")
        .replace("http://", "ws://");
    let request = |protocols: &str| {
        use tungstenite::client::IntoClientRequest;
        let mut r = url.as_str().into_client_request().unwrap();
        r.headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
        r
    };
    // Browsers pass the key as a subprotocol; `realtime` is selected.
    let err = Client::connect_with(request("realtime, openai-insecure-api-key.wrong"))
        .err()
        .unwrap();
    assert!(
        matches!(err, tungstenite::Error::Http(ref r) if r.status() == 401),
        "{err}"
    );
    let mut c = Client::connect_with(request("realtime, openai-insecure-api-key.k")).unwrap();
    c.wait_for(Duration::from_secs(30), |r| !r.is_empty());
    assert_eq!(c.received[0].1["type"], "session.created");
    let created = c.received[0].1.clone();
    // The padding in effect is shown: GigaAM's default.
    let turn = &c.received[0].1["session"]["audio"]["input"]["turn_detection"];
    assert_eq!(turn["prefix_padding_ms"], 300, "{turn}");
    // A frame announcing 100 MB: refused as it starts, with the error and 1009.
    let mut huge = Client::connect_with(request("realtime, openai-insecure-api-key.k")).unwrap();
    huge.wait_for(Duration::from_secs(30), |r| !r.is_empty());
    let mut frame = vec![0x81, 0xff];
    frame.extend(100_000_000u64.to_be_bytes());
    frame.extend(b"mask{\"type\": \"input_audio_buffer.append\"");
    huge.send_raw(&frame);
    assert_eq!(huge.wait_closed(Duration::from_secs(10)), 1009);
    assert_eq!(
        huge.of_type("error")[0]["error"]["code"],
        "message_too_large",
        "{:?}",
        huge.received
    );
    // Audio before any session.update is fine (the defaults apply).
    c.send_text(r#"{"type":"input_audio_buffer.append","audio":"AAAAAAAAAAA="}"#);
    for (event, code) in [
        ("{not json", "invalid_json"),
        (r#"{"type":"response.create"}"#, "invalid_value"),
        (
            r#"{"type":"input_audio_buffer.append","audio":"!!not base64!!","event_id":"e7"}"#,
            "invalid_value",
        ),
        (
            r#"{"type":"session.update","session":{"type":"realtime"}}"#,
            "invalid_value",
        ),
        (
            r#"{"type":"session.update","session":{"type":"transcription","audio":{"input":{"format":{"type":"audio/pcm","rate":16000}}}}}"#,
            "invalid_value",
        ),
        (
            r#"{"type":"input_audio_buffer.commit"}"#,
            "input_audio_buffer_commit_empty",
        ),
        // A model that does not exist: the session goes on as it was.
        (
            r#"{"type":"session.update","session":{"type":"transcription","audio":{"input":{"transcription":{"model":"no-such-model","language":"ru"}}}}}"#,
            "model_not_found",
        ),
    ] {
        c.send_text(event);
        c.wait_for(Duration::from_secs(10), |r| {
            r.iter().any(|(_, m)| m["error"]["code"] == code)
        });
        c.received.clear();
    }
    c.send_text(r#"{"type":"input_audio_buffer.clear"}"#);
    c.wait_for(Duration::from_secs(10), |r| {
        r.iter()
            .any(|(_, m)| m["type"] == "input_audio_buffer.cleared")
    });
    c.send_text(r#"{"type":"session.update","session":{"type":"transcription","audio":{"input":{"turn_detection":null}}}}"#);
    c.wait_for(Duration::from_secs(10), |r| {
        r.iter().any(|(_, m)| m["type"] == "session.updated")
    });
    let updated = c.of_type("session.updated").remove(0);
    let transcription = &updated["session"]["audio"]["input"]["transcription"];
    assert_eq!(
        transcription["model"], created["session"]["audio"]["input"]["transcription"]["model"],
        "{updated}"
    );
    assert_eq!(transcription["language"], Value::Null, "{updated}");
    // With turn_detection null the client commits its turn.
    let golos = glagol_core::audio::decode_file(&common::golos()[0].0, &Default::default())
        .unwrap()
        .samples;
    let pcm24 = glagol_core::audio::resample(&golos, 16_000, 24_000);
    for frame in pcm24.chunks(2400) {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(common::pcm16(frame));
        c.send_text(&format!(
            r#"{{"type":"input_audio_buffer.append","audio":"{b64}"}}"#
        ));
    }
    c.send_text(r#"{"type":"input_audio_buffer.commit"}"#);
    c.wait_for(Duration::from_secs(30), |r| {
        r.iter()
            .any(|(_, m)| m["type"] == "conversation.item.input_audio_transcription.completed")
    });
    assert!(c
        .types()
        .contains(&"input_audio_buffer.committed".to_string()));
    assert!(!c
        .types()
        .contains(&"input_audio_buffer.speech_started".to_string()));
    // Without intent=transcription: refused before the upgrade.
    let bare = s.url("/v1/realtime").replace("http://", "ws://");
    let mut r = {
        use tungstenite::client::IntoClientRequest;
        bare.as_str().into_client_request().unwrap()
    };
    r.headers_mut()
        .insert("authorization", "Bearer k".parse().unwrap());
    let err = Client::connect_with(r).err().unwrap();
    assert!(
        matches!(err, tungstenite::Error::Http(ref r) if r.status() == 400),
        "{err}"
    );
}
