//! The Wyoming server (Home Assistant's speech-to-text protocol) through
//! the official `wyoming` Python client, against the real server: one
//! server for the scenarios, a second for the SIGTERM test.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::server::Server;
use serde_json::Value;

fn start() -> Server {
    let s = Server::start(&[
        "--wyoming",
        "tcp://127.0.0.1:0",
        "--preload",
        "gigaam-tiny",
        "--preload",
        "whisper-base",
        "--wyoming-model",
        "ru=whisper-base",
        "--wyoming-model",
        "*=whisper-base",
    ]);
    s.wait_ready("gigaam-tiny");
    s.wait_ready("whisper-base");
    s
}

/// Host and port of the server's Wyoming listener.
fn address(s: &Server) -> (String, String) {
    let uri = s
        .wyoming
        .as_deref()
        .expect("the server announced no Wyoming listener");
    let (host, port) = uri
        .strip_prefix("tcp://")
        .and_then(|a| a.rsplit_once(':'))
        .unwrap();
    (host.to_string(), port.to_string())
}

/// What `/v1/transcribe` gives for the file at `path`.
fn file_text(s: &Server, model: &str, language: &str, path: &Path) -> String {
    let query = format!("model={model}&language={language}");
    s.transcribe_text(&query, &std::fs::read(path).unwrap())
}

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wyoming_client.py")
}

fn client(s: &Server, args: &[&str]) -> Value {
    let (host, port) = address(s);
    let out = Command::new("python3")
        .arg(script())
        .args([&host, &port])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn info_parses_with_the_official_client_and_lists_every_installed_model(s: &Server) {
    let info = client(s, &["info"]);
    assert_eq!(info["asr"], 1, "{info}");
    assert_eq!(info["name"], "glagol");
    assert_eq!(info["streaming"], true);
    assert_eq!(info["external_vad"], true);
    assert_eq!(info["installed"], true);
    assert_eq!(info["models"]["gigaam-tiny"], serde_json::json!(["ru"]));
    let whisper = info["models"]["whisper-base"].as_array().unwrap();
    assert!(whisper.len() > 90, "{whisper:?}");
    assert!(whisper.contains(&"de".into()) && whisper.contains(&"ru".into()));
}

fn home_assistants_flow_gives_each_clip_its_file_text_with_chunks_that_add_up(s: &Server) {
    let clips: Vec<String> = common::golos()
        .into_iter()
        .map(|(p, _)| p.to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["ha", "ru"];
    args.extend(clips.iter().map(String::as_str));
    let got = client(s, &args);
    let utterances = got["utterances"].as_array().unwrap();
    assert_eq!(utterances.len(), clips.len());
    for (u, clip) in utterances.iter().zip(&clips) {
        // Routed by language (to Whisper), recognised like the file.
        let expected = file_text(s, "whisper-base", "ru", Path::new(clip));
        assert_eq!(u["text"], expected.as_str(), "{clip}: {u}");
        assert_eq!(u["language"], "ru", "{u}");
        let chunks: String = u["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(
            chunks, expected,
            "{clip}: the chunks add up to the transcript: {u}"
        );
        let order: Vec<&str> = u["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert_eq!(order.first(), Some(&"transcript-start"), "{u}");
        assert_eq!(
            &order[order.len() - 2..],
            ["transcript", "transcript-stop"],
            "{u}"
        );
    }
    // Another language goes to Whisper, whose language is reported.
    let de = common::misc("living_room_light_de.wav");
    let got = client(s, &["ha", "de", de.to_str().unwrap()]);
    let u = &got["utterances"][0];
    assert_eq!(
        u["text"],
        file_text(s, "whisper-base", "de", &de).as_str(),
        "{u}"
    );
    assert_eq!(u["language"], "de");
}

fn two_utterances_share_a_connection_and_describe_is_answered_while_one_is_recognised(s: &Server) {
    let clips = common::golos();
    let (a, b) = (clips[0].0.to_str().unwrap(), clips[1].0.to_str().unwrap());
    // A model by name, over the language's route.
    let got = client(s, &["two", "ru", "gigaam-tiny", a, b]);
    let texts: Vec<&str> = got["utterances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            file_text(s, "gigaam-tiny", "ru", Path::new(a)),
            file_text(s, "gigaam-tiny", "ru", Path::new(b))
        ]
    );
    let jfk = common::misc("jfk.wav");
    let got = client(s, &["busy", "en", jfk.to_str().unwrap()]);
    for t in got["describe_s"].as_array().unwrap() {
        assert!(t.as_f64().unwrap() < 0.5, "describe took {t} s: {got}");
    }
    assert!(
        got["utterance"]["text"]
            .as_str()
            .unwrap()
            .contains("country"),
        "{got}"
    );
}

fn ping_empty_audio_and_unknown_events(s: &Server) {
    let got = client(s, &["misc"]);
    assert_eq!(got["pong"], "hello");
    assert_eq!(
        got["empty"],
        serde_json::json!(["transcript-start", "transcript", "transcript-stop"])
    );
    assert_eq!(got["empty_text"], "");
    assert_eq!(got["bare"], got["empty"]);
    assert_eq!(got["info_after"], "glagol");
}

fn hostile_input_gets_an_error_or_a_clean_close_and_the_server_keeps_serving(s: &Server) {
    let clip = common::golos()[3].0.clone();
    let got = client(s, &["hostile", clip.to_str().unwrap()]);
    let garbage = got["garbage"].as_str().unwrap();
    assert!(
        garbage.contains("\"type\": \"error\"") && garbage.contains("malformed_event"),
        "{got}"
    );
    assert_eq!(got["garbage_closed"], true);
    assert!(
        got["oversized"]
            .as_str()
            .unwrap()
            .contains("event_too_large"),
        "{got}"
    );
    assert_eq!(got["after"], "glagol");
}

#[test]
fn a_wyoming_server_serves_home_assistant_and_other_clients() {
    let s = start();
    info_parses_with_the_official_client_and_lists_every_installed_model(&s);
    home_assistants_flow_gives_each_clip_its_file_text_with_chunks_that_add_up(&s);
    two_utterances_share_a_connection_and_describe_is_answered_while_one_is_recognised(&s);
    ping_empty_audio_and_unknown_events(&s);
    hostile_input_gets_an_error_or_a_clean_close_and_the_server_keeps_serving(&s);
}

#[test]
fn the_listener_is_announced_by_zeroconf_with_a_reachable_address() {
    let s = Server::start(&[
        "--wyoming",
        "tcp://0.0.0.0:0",
        "--wyoming-zeroconf",
        "glagol-test",
    ]);
    let (host, port) = address(&s);
    let got = client(&s, &["zeroconf", "glagol-test"]);
    assert_eq!(got["found"], true, "{got} (listening on {host}:{port})");
    assert_eq!(got["port"].to_string(), port);
    let addresses = got["addresses"].as_array().unwrap();
    assert!(!addresses.is_empty(), "{got}");
    assert!(!addresses.contains(&"0.0.0.0".into()), "{got}");
}

#[test]
fn sigterm_during_an_utterance_sends_its_transcript_then_closes() {
    let s = start();
    let (host, port) = address(&s);
    let clip = common::golos()[3].0.clone();
    let mut child = Command::new("python3")
        .arg(script())
        .args([&host, &port, "held", "ru", clip.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "sent");
    common::server::signal(s.pid(), 15);
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(child.wait().unwrap().success());
    let got: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        got["order"].as_array().unwrap().last().unwrap(),
        "transcript-stop",
        "{got}"
    );
    assert!(!got["text"].as_str().unwrap().is_empty(), "{got}");
}
