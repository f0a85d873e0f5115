//! `glagol serve` operations end to end: signals (drain, reload), metrics, logs, the API document.

mod common;

use std::time::Duration;

use common::server::{jfk, models_with_key, post_form, read, signal, Server};
use common::Glagol;
use serde_json::Value;

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
    signal(s.pid(), 15);
    for h in handles {
        let (status, _, body) = h.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(common::normalize(&body).contains("ask not what your country"));
    }
    let status = s.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
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
    signal(s.pid(), 1);
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
    signal(s.pid(), 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(models_with_key(&s, "third"), 401);
    assert_eq!(s.get("/health").0, 200);
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
    signal(child.id() as i32, 15);
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
fn schemathesis_finds_no_server_errors_nor_responses_off_the_schema() {
    // Real models behind the API, the synthetic GigaAM as the default (fast
    // on generated input); keys on, so auth is exercised too.
    let s = Server::start(&[
        "--default-model",
        "gigaam-tiny",
        "--preload",
        "gigaam-tiny",
        "--wait-for-load",
        "--api-key",
        "k",
    ]);
    s.wait_ready_with_key("gigaam-tiny", "k");
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("schemathesis")
        .current_dir(dir.path())
        .args(["run", &s.url("/openapi.json")])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--max-examples", "20", "--workers", "1", "--seed", "7"])
        .args(["--header", "Authorization: Bearer k"])
        .output()
        .expect("schemathesis (scripts/test installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.get("/health").0, 200);
}
