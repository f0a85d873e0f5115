//! `glagol serve` end to end: the real binary on a free loopback port.

mod common;

use std::time::{Duration, Instant};

use common::server::{post_form, read, Server};
use common::{misc, Glagol};
use serde_json::Value;

fn jfk() -> Vec<u8> {
    read(&misc("jfk.wav"))
}

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
fn api_keys_are_required_when_configured() {
    let s = Server::start(&["--api-key", "s3cret", "--api-key", "other"]);
    let (status, v) = s.get("/v1/models");
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("missing_api_key"))
    );
    let mut r = Server::agent()
        .get(&s.url("/v1/models"))
        .header("authorization", "Bearer wrong")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r
        .body_mut()
        .read_to_string()
        .unwrap()
        .contains("invalid_api_key"));
    let r = Server::agent()
        .get(&s.url("/v1/models"))
        .header("authorization", "Bearer s3cret")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = Server::agent()
        .get(&s.url("/v1/models"))
        .header("x-api-key", "other")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Health stays open for probes.
    assert_eq!(s.get("/health").0, 200);
}

#[test]
fn non_loopback_without_keys_refuses_to_start() {
    let g = Glagol::new();
    let out = g.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("--insecure-no-auth"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn load_unload_frees_memory_and_idle_ttl_unloads() {
    let s = Server::start(&["--idle-ttl", "2"]);
    let (status, v) = s.post_empty("/v1/models/whisper-base/load");
    assert_eq!(
        (status, v["status"].as_str()),
        (202, Some("load_initiated"))
    );
    s.wait_ready("whisper-base");
    let (status, v) = s.post_empty("/v1/models/whisper-base/load");
    assert_eq!((status, v["status"].as_str()), (200, Some("already_ready")));
    let (status, v) = s.post_empty("/v1/models/whisper-base/unload");
    assert_eq!(status, 200);
    let (before, after) = (
        v["rss_before_bytes"].as_u64().unwrap(),
        v["rss_after_bytes"].as_u64().unwrap(),
    );
    eprintln!(
        "unload whisper-base: RSS {} MB -> {} MB",
        before / 1_000_000,
        after / 1_000_000
    );
    assert!(
        before > after + 50_000_000,
        "memory not returned: {before} -> {after}"
    );
    assert_eq!(s.get("/v1/models/whisper-base").1["state"], "unloaded");

    // Idle TTL: loaded, used once, then unloaded by itself.
    s.post_empty("/v1/models/gigaam-tiny/load");
    s.wait_ready("gigaam-tiny");
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.get("/v1/models/gigaam-tiny").1["state"] != "unloaded" {
        assert!(Instant::now() < deadline, "idle model was not unloaded");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn queue_overflow_answers_busy() {
    let s = Server::start(&[
        "--workers",
        "1",
        "--queue-depth",
        "1",
        "--preload",
        "whisper-base",
    ]);
    s.wait_ready("whisper-base");
    let url = s.url("/v1/audio/transcriptions");
    let audio = jfk();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (url, audio) = (url.clone(), audio.clone());
            std::thread::spawn(move || {
                post_form(&url, &[], &[("language", "en")], Some(("jfk.wav", &audio)))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let busy: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    assert!(
        ok >= 2 && !busy.is_empty(),
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(busy
        .iter()
        .all(|r| r.2.contains("\"busy\"") && r.1.is_some()));
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_0() {
    let mut s = Server::start(&[
        "--workers",
        "1",
        "--queue-depth",
        "8",
        "--preload",
        "whisper-base",
        "--drain",
        "600",
    ]);
    s.wait_ready("whisper-base");
    let url = s.url("/v1/audio/transcriptions");
    let audio = jfk();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (url, audio) = (url.clone(), audio.clone());
            std::thread::spawn(move || {
                post_form(&url, &[], &[("language", "en")], Some(("jfk.wav", &audio)))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let rc = unsafe { kill(s.pid(), 15) };
    assert_eq!(rc, 0);
    for h in handles {
        let (status, _, body) = h.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(common::normalize(&body).contains("ask not what your country"));
    }
    let status = s.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn official_openai_python_client() {
    let s = Server::start(&["--preload", "whisper-base"]);
    s.wait_ready("whisper-base");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(format!("{}/v1", s.base))
        .arg(misc("jfk.wav"))
        .arg(misc("whats_your_name_french.wav"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openai client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ALL OK"), "{stdout}");
}

#[test]
fn origins_request_ids_and_rate_limits() {
    let s = Server::start(&["--rate-limit", "3", "--allow-origin", "https://app.example"]);
    let agent = Server::agent();
    let r = agent
        .get(&s.url("/health"))
        .header("origin", "https://evil.example")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    for origin in [
        "http://localhost:3000",
        "http://127.0.0.1:8080",
        "https://app.example",
    ] {
        let r = agent
            .get(&s.url("/health"))
            .header("origin", origin)
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{origin}");
        assert_eq!(
            r.headers().get("access-control-allow-origin").unwrap(),
            origin
        );
    }
    let r = agent
        .options(&s.url("/v1/audio/transcriptions"))
        .header("origin", "https://app.example")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert!(r.headers().get("access-control-allow-methods").is_some());

    let r = agent
        .get(&s.url("/health"))
        .header("x-request-id", "abc-123")
        .call()
        .unwrap();
    assert_eq!(r.headers().get("x-request-id").unwrap(), "abc-123");
    let r = agent.get(&s.url("/health")).call().unwrap();
    assert!(r.headers().get("x-request-id").is_some());

    for _ in 0..3 {
        assert_eq!(s.get("/v1/models").0, 200);
    }
    let r = agent.get(&s.url("/v1/models")).call().unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some());
    // Another key has its own bucket.
    let r = agent
        .get(&s.url("/v1/models"))
        .header("x-api-key", "someone-else")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn prometheus_metrics_on_their_own_listener() {
    let s = Server::start(&["--preload", "gigaam-tiny"]);
    s.wait_ready("gigaam-tiny");
    let golos = read(&common::assets().join("fixtures/ru-golos/golos_00.wav"));
    let r = Server::agent()
        .post(&s.url("/v1/transcribe?model=gigaam-tiny"))
        .send(&golos[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    s.get("/v1/models/gigaam-tiny");
    let metrics_url = s.metrics.clone().expect("metrics listener announced");
    assert_ne!(metrics_url, s.url("/metrics"));
    let text = Server::agent()
        .get(&metrics_url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    for needle in [
        r#"glagol_http_requests_total{route="/v1/transcribe",method="POST",status="200"} 1"#,
        r#"glagol_http_request_duration_seconds_bucket{route="/v1/models/{id}""#,
        r#"glagol_model_state{model="gigaam-tiny",state="ready"} 1"#,
        r#"glagol_audio_milliseconds_total{model="gigaam-tiny"} 4000"#,
        "glagol_inference_seconds_count",
        "glagol_model_load_seconds_count",
        "glagol_queue_depth",
        "glagol_http_requests_in_flight",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    // Not on the API listener.
    assert_eq!(s.get("/metrics").0, 404);
}

/// `GET /v1/models` with an API key: the status.
fn models_with_key(s: &Server, key: &str) -> u16 {
    Server::agent()
        .get(&s.url("/v1/models"))
        .header("x-api-key", key)
        .call()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn sighup_reloads_the_config_file_without_dropping_requests() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("glagol.toml");
    std::fs::write(&conf, "api_keys = [\"first\"]\nmax_body_bytes = 10000000\n").unwrap();
    let s = Server::start(&[
        "--config",
        conf.to_str().unwrap(),
        "--preload",
        "whisper-base",
        "--workers",
        "1",
    ]);
    s.wait_ready_with_key("whisper-base", "first");
    assert_eq!(models_with_key(&s, "first"), 200);
    assert_eq!(models_with_key(&s, "second"), 401);

    // A request in flight while the configuration changes completes.
    let url = s.url("/v1/audio/transcriptions");
    let in_flight = std::thread::spawn(move || {
        post_form(
            &url,
            &[("x-api-key", "first")],
            &[("language", "en")],
            Some(("jfk.wav", &jfk())),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(
        &conf,
        "api_keys = [\"second\"]\nmax_body_bytes = 1000\nrate_limit_per_minute = 2\nworkers = 4\n",
    )
    .unwrap();
    assert_eq!(unsafe { kill(s.pid(), 1) }, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while models_with_key(&s, "second") != 200 {
        assert!(std::time::Instant::now() < deadline, "SIGHUP not applied");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _, body) = in_flight.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(common::normalize(&body).contains("ask not what your country"));
    assert_eq!(models_with_key(&s, "first"), 401);
    // The new body limit and rate limit apply (the key's bucket holds 2;
    // one went on the poll above that succeeded).
    let (status, _, body) = post_form(
        &s.url("/v1/audio/transcriptions"),
        &[("x-api-key", "second")],
        &[],
        Some(("jfk.wav", &jfk()[..50_000])),
    );
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("payload_too_large"), "{body}");
    let mut limited = false;
    for _ in 0..3 {
        limited |= models_with_key(&s, "second") == 429;
    }
    assert!(limited, "the reloaded rate limit never applied");

    // An invalid file keeps the old settings; the server keeps serving.
    std::fs::write(&conf, "api_keys = [\"third\"\nnot toml").unwrap();
    assert_eq!(unsafe { kill(s.pid(), 1) }, 0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(models_with_key(&s, "third"), 401);
    assert_eq!(s.get("/health").0, 200);
}

#[test]
fn openapi_document_validates_and_docs_render_in_chromium() {
    let s = Server::start(&["--api-key", "k"]);
    // The document and its viewer are public, like /health.
    let mut r = Server::agent().get(&s.url("/openapi.json")).call().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.body_mut().read_to_string().unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/health",
        "/ready",
        "/v1/models",
        "/v1/models/events",
        "/v1/models/{id}",
        "/v1/models/{id}/load",
        "/v1/models/{id}/unload",
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
        "/v1/transcribe",
        "/v1/transcribe/stream",
        "/openapi.json",
        "/docs",
    ] {
        assert!(
            paths.contains_key(route),
            "{route} missing from /openapi.json"
        );
    }
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            for (code, response) in op["responses"].as_object().unwrap() {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} {code} has no description"
                );
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 with openapi-spec-validator (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openapi-spec-validator rejected the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Swagger UI, vendored, rendered by a real browser: every operation
    // shows up as a block, and no spec error is displayed.
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=15000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(s.url("/docs"))
        .output()
        .expect("chromium (scripts/test installs it)");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("swagger-ui"),
        "no Swagger UI in the page:\n{dom}"
    );
    for path in paths.keys() {
        assert!(
            dom.contains(&format!("data-path=\"{path}\"")),
            "{path} not rendered by /docs"
        );
    }
    assert!(!dom.contains("errors-wrapper"), "Swagger UI shows errors");
}

#[test]
fn json_logs_carry_request_ids_and_statuses() {
    use std::io::{BufRead, BufReader, Read};
    let glagol = Glagol::new();
    let mut child = glagol
        .cmd()
        .env("GLAGOL_LOG_FORMAT", "json")
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("glagol listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    let r = Server::agent()
        .get(&format!("{base}/health"))
        .header("x-request-id", "trace-me-42")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(unsafe { kill(child.id() as i32, 15) }, 0);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let request = lines
        .iter()
        .find(|v| v["span"]["id"] == "trace-me-42")
        .unwrap_or_else(|| panic!("no log line for the request:\n{logs}"));
    assert_eq!(request["fields"]["status"], 200, "{request}");
    assert_eq!(request["span"]["path"], "/health", "{request}");
    assert!(request["fields"]["ms"].is_number(), "{request}");
}

/// Collects `/v1/models/events` in the background: (event, data) pairs.
fn subscribe_events(s: &Server) -> std::sync::mpsc::Receiver<(String, Value)> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let r = Server::agent()
        .get(&s.url("/v1/models/events"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    std::thread::spawn(move || {
        let reader = std::io::BufReader::new(r.into_body().into_reader());
        let mut event = String::new();
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                let data = serde_json::from_str(d).unwrap_or(Value::Null);
                if tx.send((event.clone(), data)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

#[test]
fn a_load_that_does_not_fit_waits_for_memory_and_others_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("glagol.toml");
    // Whisper base needs ~220 MB by the estimate; GigaAM-tiny ~1 MB.
    std::fs::write(&conf, "memory_limit_mb = 200\n").unwrap();
    let s = Server::start(&[
        "--config",
        conf.to_str().unwrap(),
        "--memory-retry",
        "1",
        "--wait-for-load",
    ]);
    let events = subscribe_events(&s);
    let (status, _) = s.post_empty("/v1/models/whisper-base/load");
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = s.get("/v1/models/whisper-base");
        if v["state"] == "waiting_for_memory" {
            assert!(v["error"].as_str().unwrap().contains("memory limit"), "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "never waited for memory: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _, body) = post_form(
        &s.url("/v1/audio/transcriptions"),
        &[],
        &[("model", "whisper-base")],
        Some(("jfk.wav", &jfk())),
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("waiting for memory"), "{body}");

    // Another model that fits loads and serves meanwhile.
    let golos = read(&common::assets().join("fixtures/ru-golos/golos_00.wav"));
    let (status, _, body) = post_form(
        &s.url("/v1/audio/transcriptions"),
        &[],
        &[("model", "gigaam-tiny")],
        Some(("golos_00.wav", &golos)),
    );
    assert_eq!(status, 200, "{body}");

    // Raising the limit (SIGHUP) lets the waiting load through.
    std::fs::write(&conf, "memory_limit_mb = 100000\n").unwrap();
    assert_eq!(unsafe { kill(s.pid(), 1) }, 0);
    s.wait_ready("whisper-base");
    let mut seen = Vec::new();
    while let Ok((event, data)) = events.recv_timeout(Duration::from_secs(5)) {
        seen.push(format!("{event}:{}", data["model"].as_str().unwrap_or("")));
        if event == "model_ready" && data["model"] == "whisper-base" {
            break;
        }
    }
    let position = |e: &str| seen.iter().position(|s| s == e);
    let waiting = position("model_waiting_for_memory:whisper-base");
    let ready = position("model_ready:whisper-base");
    assert!(
        waiting.is_some() && ready.is_some() && waiting < ready,
        "events: {seen:?}"
    );
    assert!(
        seen.contains(&"model_ready:gigaam-tiny".to_string()),
        "{seen:?}"
    );
}

/// A metric's value from Prometheus text (first series whose line starts so).
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
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
