//! Speakers end to end on the real two-speaker recording: the native API
//! (verbose_json, diarized_json, vtt, txt), a durable job, the official
//! `openai` client (diarized_json, streamed segments, known speakers) and
//! the CLI; and the typed refusals when diarization cannot run.

mod common;

use std::time::Duration;

use common::jobs::{accepted, events, wait_status};
use common::server::{metric, read, Server};
use common::{assets, Glagol};
use serde_json::Value;

fn sample() -> std::path::PathBuf {
    assets().join("fixtures/diarization/sample.wav")
}

/// A store with Whisper base and the two diarization models.
fn glagol() -> Glagol {
    let glagol = Glagol::new();
    let models = assets().join("models");
    for (path, name) in [
        ("ggml-base.bin", "whisper-base"),
        (
            "pyannote-segmentation-3.0/segmentation-3.0.onnx",
            "pyannote-segmentation-3.0",
        ),
        // Our own export of CAM++, not the catalog's bytes.
        ("campplus-zh-en/campplus.onnx", "campplus-zh-en"),
    ] {
        let path = models.join(path);
        common::ok(glagol.run(&[
            "models",
            "import",
            path.to_str().unwrap(),
            "--as",
            name,
            "--force",
        ]));
    }
    glagol
}

/// The reference turns: (start, end, speaker).
fn reference() -> Vec<(f64, f64, String)> {
    std::fs::read_to_string(assets().join("fixtures/diarization/sample.rttm"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let start: f64 = f[3].parse().unwrap();
            (
                start,
                start + f[4].parse::<f64>().unwrap(),
                f[7].to_string(),
            )
        })
        .collect()
}

/// Checks that words carry two speakers that agree with the reference:
/// under the best naming, most words' middles fall in a turn of their
/// speaker.
fn assert_words_match_the_reference(words: &[Value]) {
    let reference = reference();
    let labels: Vec<&str> = words
        .iter()
        .map(|w| w["speaker"].as_str().unwrap())
        .collect();
    let mut names: Vec<&str> = labels.clone();
    names.sort();
    names.dedup();
    assert_eq!(names, ["A", "B"], "{words:?}");
    let agree = |a: &str, b: &str| {
        words
            .iter()
            .zip(&labels)
            .filter(|(w, l)| {
                let mid = (w["start"].as_f64().unwrap() + w["end"].as_f64().unwrap()) / 2.0;
                let name = if **l == "A" { a } else { b };
                reference
                    .iter()
                    .any(|(s, e, who)| who == name && *s <= mid && mid < *e)
            })
            .count()
    };
    let best = agree("speaker90", "speaker91").max(agree("speaker91", "speaker90"));
    assert!(
        best * 10 >= words.len() * 8,
        "only {best} of {} words fall in their speaker's turns",
        words.len()
    );
}

fn post(s: &Server, query: &str, body: &[u8]) -> (u16, String) {
    let mut r = Server::agent()
        .post(&s.url(&format!("/v1/transcribe?{query}")))
        .send(body)
        .unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

#[test]
fn speakers_through_the_native_api_a_job_the_openai_client_and_the_cli() {
    let s = Server::start_with(glagol(), &["--preload", "whisper-base"]);
    s.wait_ready("whisper-base");
    let audio = read(&sample());

    // Native verbose_json: segments and words labelled, matching the reference.
    let (status, body) = post(
        &s,
        "diarize=true&vad=true&language=en&word_timestamps=true",
        &audio,
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_words_match_the_reference(v["words"].as_array().unwrap());
    let segments = v["segments"].as_array().unwrap();
    assert!(
        segments
            .iter()
            .all(|s| s["speaker"] == "A" || s["speaker"] == "B"),
        "{body}"
    );
    // Segments were split where the speaker changes: each holds one speaker's words.
    let diane = segments
        .iter()
        .find(|s| s["text"].as_str().unwrap().contains("Diane"))
        .unwrap();
    let sheila = segments
        .iter()
        .find(|s| s["text"].as_str().unwrap().contains("Sheila"))
        .unwrap();
    assert_ne!(diane["speaker"], sheila["speaker"], "{body}");

    // Without word_timestamps the words stay out; other formats carry the labels.
    let (_, body) = post(&s, "diarize=true&vad=true&language=en", &audio);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v.get("words").is_none(), "{body}");
    let (_, vtt) = post(&s, "diarize=true&vad=true&language=en&format=vtt", &audio);
    assert!(
        vtt.contains("<v Speaker A>") && vtt.contains("<v Speaker B>"),
        "{vtt}"
    );
    let (_, txt) = post(&s, "diarize=true&vad=true&language=en&format=txt", &audio);
    assert!(
        txt.starts_with("Speaker A: ") && txt.contains("\nSpeaker B: "),
        "{txt}"
    );
    let (_, dj) = post(
        &s,
        "vad=true&language=en&format=diarized_json&num_speakers=2",
        &audio,
    );
    let dj: Value = serde_json::from_str(&dj).unwrap();
    assert_eq!(dj["segments"][0]["type"], "transcript.text.segment", "{dj}");
    assert_eq!(dj["segments"][0]["id"], "seg_0");

    // A durable job: speakers in its result and in its segment events.
    let id = accepted(
        &s,
        &[
            ("diarize", "true"),
            ("vad", "true"),
            ("language", "en"),
            ("word_timestamps", "true"),
        ],
        &audio,
    );
    wait_status(&s, &id, &["done"], Duration::from_secs(120));
    let (code, result) = s.get(&format!("/v1/jobs/{id}/result?format=verbose_json"));
    assert_eq!(code, 200, "{result}");
    assert_words_match_the_reference(result["words"].as_array().unwrap());
    let segment_events: Vec<Value> = events(&s, &id, None)
        .into_iter()
        .filter(|(_, kind, _)| kind == "segment")
        .map(|(_, _, data)| data)
        .collect();
    assert!(!segment_events.is_empty());
    assert!(segment_events
        .iter()
        .all(|e| e["speaker"] == "A" || e["speaker"] == "B"));

    // The official client: diarized_json, streamed segments, known speakers.
    let api = format!("{}/v1", s.base);
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_diarization.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&api)
        .arg(sample())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "openai_diarization.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    live_finals_keep_their_speakers(&s);

    // The CLI, in-process models, same labels.
    let out = common::ok(s.glagol.run(&[
        "transcribe",
        sample().to_str().unwrap(),
        "--diarize",
        "--vad",
        "-l",
        "en",
    ]));
    assert!(
        out.starts_with("Speaker A: ") && out.contains("\nSpeaker B: "),
        "{out}"
    );
}

/// A live session with `diarize`: JFK, a Russian speaker, then JFK again,
/// with pauses between; every final is labelled, JFK's with one letter and
/// the other voice's with another.
fn live_finals_keep_their_speakers(s: &Server) {
    let decode = |p: &std::path::Path| {
        glagol_core::audio::decode_file(p, &Default::default())
            .unwrap()
            .samples
    };
    let jfk = decode(&common::misc("jfk.wav"));
    let other = decode(&common::golos()[1].0);
    let pause = vec![0.0f32; 24_000];
    let half = jfk.len() / 2;
    let parts: [&[f32]; 3] = [&jfk[..half], &other, &jfk[half..]];
    let mut audio = Vec::new();
    let mut bounds = Vec::new();
    for part in parts {
        let start = audio.len() as f64 / 16_000.0;
        audio.extend_from_slice(part);
        bounds.push((start, audio.len() as f64 / 16_000.0));
        audio.extend_from_slice(&pause);
    }
    let url = s
        .url("/v1/ws?diarize=true&model=whisper-base")
        .replacen("http", "ws", 1);
    let mut ws = common::ws::Client::connect(&url);
    ws.wait_for(Duration::from_secs(30), |m| {
        m.iter().any(|(_, m)| m["type"] == "ready")
    });
    assert_eq!(ws.of_type("ready")[0]["diarization"], true);
    ws.stream(&audio, false);
    ws.send_text(r#"{"type":"stop"}"#);
    ws.wait_closed(Duration::from_secs(120));
    let finals = ws.of_type("final");
    assert!(finals.len() >= 3, "{finals:?}");
    let part_of = |f: &Value| {
        let mid = (f["start"].as_f64().unwrap() + f["end"].as_f64().unwrap()) / 2.0;
        bounds
            .iter()
            .position(|(a, b)| *a - 0.5 <= mid && mid <= *b + 0.5)
    };
    let speaker_in = |part: usize| -> Vec<String> {
        finals
            .iter()
            .filter(|f| part_of(f) == Some(part))
            .map(|f| {
                f["speaker"]
                    .as_str()
                    .expect("every final has a speaker")
                    .to_string()
            })
            .collect()
    };
    let (first, second, third) = (speaker_in(0), speaker_in(1), speaker_in(2));
    assert!(
        !first.is_empty() && !second.is_empty() && !third.is_empty(),
        "{finals:?}"
    );
    assert!(
        first.iter().chain(&third).all(|l| *l == first[0]),
        "{finals:?}"
    );
    assert!(second.iter().all(|l| *l != first[0]), "{finals:?}");
    assert_eq!(first[0], "A");

    // The same through OpenAI's Realtime transcription and its official client.
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("conversation.wav");
    common::write_wav(&wav, &audio, 16_000);
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_realtime_speakers.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(format!("{}/v1", s.base))
        .arg(&wav)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "openai_realtime_speakers.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn diarization_that_cannot_run_says_why() {
    let glagol = glagol();
    // No such embedding model.
    let s = Server::start_with(glagol, &["--diarization-model", "no-such-model"]);
    let audio = read(&sample());
    let (status, body) = post(&s, "diarize=true", &audio);
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("diarization_model_not_found") && body.contains("no-such-model"),
        "{body}"
    );
    // Bad speaker counts are refused before anything runs.
    let (status, body) = post(&s, "diarize=true&min_speakers=3&max_speakers=2", &audio);
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(&s, "diarize=true&num_speakers=0", &audio);
    assert_eq!(status, 400, "{body}");
    let glagol = s.crash();
    // Audio over the diarization ceiling.
    let args = [
        "--max-diarization-seconds",
        "10",
        "--wait-for-load",
        "--idle-ttl",
        "1",
    ];
    let s = Server::start_with(glagol, &args);
    let (status, body) = post(&s, "diarize=true", &audio);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("diarization_too_long"), "{body}");
    // The models were loaded to get that far (the gauge exists only once
    // they have been; they may already be gone if the model load took
    // longer than the TTL), and go when idle.
    let loaded = |s: &Server| metric(&s.metrics_text(), "glagol_diarization_models_loaded");
    let start = std::time::Instant::now();
    while loaded(&s) != 0.0 {
        assert!(start.elapsed() < Duration::from_secs(20), "never unloaded");
        std::thread::sleep(Duration::from_millis(200));
    }
}
