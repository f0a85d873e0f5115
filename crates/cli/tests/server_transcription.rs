//! `glagol serve` transcription end to end: the real binary, real models, on a free loopback port.

mod common;

use common::misc;
use common::server::{jfk, metric, post_form, read, Server};
use serde_json::Value;

#[test]
fn cold_model_503_then_autoload_then_openai_formats() {
    let s = Server::start(&[]);
    let (status, health) = s.get("/health");
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    assert_eq!(s.get("/ready").0, 200);
    let (_, list) = s.get("/v1/models");
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gigaam-tiny", "whisper-base"]);

    let url = s.url("/v1/audio/transcriptions");
    let audio = jfk();
    let (status, retry, body) = post_form(
        &url,
        &[],
        &[("model", "whisper-1")],
        Some(("jfk.wav", &audio)),
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("5"));
    assert!(body.contains("model_not_ready"));
    s.wait_ready("whisper-base");
    let (_, info) = s.get("/v1/models/whisper-base");
    assert_eq!(info["engine"], "whisper");
    assert!(
        info["loaded_at"].as_u64().is_some()
            && info["resident_bytes"].as_u64().unwrap() > 50_000_000,
        "{info}"
    );

    let (status, _, body) = post_form(
        &url,
        &[],
        &[("model", "whisper-1"), ("language", "en")],
        Some(("jfk.wav", &audio)),
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(common::normalize(v["text"].as_str().unwrap())
        .contains("ask not what your country can do for you"));
    assert_eq!(v["usage"]["type"], "duration");
    assert_eq!(v["usage"]["seconds"], 11);

    for (format, check) in [("text", "ask not"), ("srt", " --> "), ("vtt", "WEBVTT")] {
        let (status, _, body) = post_form(
            &url,
            &[],
            &[("response_format", format), ("language", "en")],
            Some(("jfk.wav", &audio)),
        );
        assert_eq!(status, 200);
        assert!(body.contains(check), "{format}: {body}");
    }
    let (_, _, body) = post_form(
        &url,
        &[],
        &[
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "word"),
            ("timestamp_granularities[]", "segment"),
        ],
        Some(("jfk.wav", &audio)),
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["language"], "english");
    assert!(
        v["words"].as_array().unwrap().len() > 15 && !v["segments"].as_array().unwrap().is_empty(),
        "{v}"
    );

    // stream=true: append-only deltas, then done.
    let (status, _, body) = post_form(
        &url,
        &[],
        &[("stream", "true"), ("language", "en")],
        Some(("jfk.wav", &audio)),
    );
    assert_eq!(status, 200);
    let events: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "transcript.text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    let done = events.last().unwrap();
    assert_eq!(done["type"], "transcript.text.done");
    assert_eq!(deltas, done["text"].as_str().unwrap());

    // Translations go through the same path.
    let french = read(&misc("whats_your_name_french.wav"));
    let (status, _, body) = post_form(
        &s.url("/v1/audio/translations"),
        &[],
        &[("model", "whisper-1")],
        Some(("fr.wav", &french)),
    );
    assert_eq!(status, 200, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["text"]
        .as_str()
        .unwrap()
        .is_ascii());
}

#[test]
fn typed_errors_for_bad_requests() {
    let s = Server::start(&["--max-body-bytes", "400000", "--preload", "whisper-base"]);
    s.wait_ready("whisper-base");
    let url = s.url("/v1/audio/transcriptions");
    let (status, _, body) = post_form(
        &url,
        &[],
        &[],
        Some(("x.wav", b"this is not audio at all, just some text")),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        "not_audio"
    );
    let (status, _, body) = post_form(&url, &[], &[], Some(("x.wav", &[])));
    assert_eq!(
        (status, body.contains("empty_input")),
        (400, true),
        "{body}"
    );
    let (status, _, body) = post_form(
        &url,
        &[],
        &[("model", "nope")],
        Some(("jfk.wav", &jfk()[..1000])),
    );
    assert_eq!(
        (status, body.contains("model_not_found")),
        (404, true),
        "{body}"
    );
    let (status, _, body) = post_form(&url, &[], &[], None);
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = post_form(
        &url,
        &[],
        &[("response_format", "xml")],
        Some(("jfk.wav", &jfk()[..1000])),
    );
    assert_eq!(status, 400, "{body}");
    // 413 over the body limit (jfk.wav is 352 kB + this padding).
    let mut big = jfk();
    big.extend(vec![0u8; 100_000]);
    let (status, _, body) = post_form(&url, &[], &[], Some(("big.wav", &big)));
    assert_eq!(status, 413, "{body}");
    // Native API: raw body, typed error too.
    let mut r = Server::agent()
        .post(&s.url("/v1/transcribe"))
        .send(&b"garbage"[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.body_mut().read_to_string().unwrap().contains("not_audio"));
    let (status, v) = s.get("/no/such/route");
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[test]
fn native_api_raw_body_and_sse_stream_with_gigaam() {
    let s = Server::start(&["--wait-for-load"]);
    let golos = read(&common::assets().join("fixtures/ru-golos/golos_00.wav"));
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(
            common::assets().join("models/gigaam-v3-synthetic-tiny/expected.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let want = expected["files"][0]["rnnt"]["text"].as_str().unwrap();
    // --wait-for-load: the cold request waits instead of 503.
    let mut r = Server::agent()
        .post(&s.url("/v1/transcribe?model=gigaam-tiny&format=verbose_json&word_timestamps=true"))
        .send(&golos[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(v["text"], want);
    assert_eq!(v["model"], "gigaam-tiny");
    assert!(!v["words"].as_array().unwrap().is_empty());

    let mut r = Server::agent()
        .post(&s.url("/v1/transcribe/stream?model=gigaam-tiny"))
        .send(&golos[..])
        .unwrap();
    let body = r.body_mut().read_to_string().unwrap();
    let kinds: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert!(
        kinds.contains(&"segment") && kinds.last() == Some(&"done"),
        "{body}"
    );
    assert!(body.contains(want));
}

#[test]
fn official_openai_python_client() {
    let s = Server::start(&["--preload", "whisper-base"]);
    s.wait_ready("whisper-base");
    let api = format!("{}/v1", s.base);
    python_client(
        "openai_client.py",
        &[&api, &misc("jfk.wav"), &misc("whats_your_name_french.wav")],
    );
    let russian = common::golos()[0].0.clone();
    python_client(
        "openai_fields.py",
        &[
            &api,
            &misc("jfk.wav"),
            &misc("living_room_light_de.wav"),
            &russian,
        ],
    );
}

/// Runs a script of `tests/` with python3; it ends by printing ALL OK.
fn python_client(script: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let out = std::process::Command::new("python3")
        .arg(&path)
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn concurrent_gigaam_requests_are_batched_with_the_same_results() {
    let s = Server::start(&[
        "--preload",
        "gigaam-tiny",
        "--workers",
        "1",
        "--max-batch",
        "8",
        "--batch-wait-ms",
        "300",
    ]);
    s.wait_ready("gigaam-tiny");
    let url = s.url("/v1/transcribe?model=gigaam-tiny&format=json");
    let files: Vec<Vec<u8>> = common::golos().iter().map(|(p, _)| read(p)).collect();
    let text_of = |url: &str, audio: &[u8]| -> String {
        let mut r = Server::agent().post(url).send(audio).unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        v["text"].as_str().unwrap().to_string()
    };
    // One at a time: every batch holds one request.
    let alone: Vec<String> = files.iter().map(|f| text_of(&url, f)).collect();
    // All at once: gathered into batches, same transcripts.
    let together: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .map(|f| scope.spawn(|| text_of(&url, f)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(alone, together);
    let text = Server::agent()
        .get(s.metrics.as_ref().unwrap())
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let requests = metric(&text, "glagol_batch_size_sum{model=\"gigaam-tiny\"}");
    let batches = metric(&text, "glagol_batch_size_count{model=\"gigaam-tiny\"}");
    let n = files.len() as f64;
    assert_eq!(requests, 2.0 * n, "{text}");
    assert!(
        batches < 2.0 * n - 1.0,
        "{batches} batches for {requests} requests: nothing was batched"
    );
}
