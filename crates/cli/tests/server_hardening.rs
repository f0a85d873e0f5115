//! Hostile input against the real server: each case once crashed it, took
//! gigabytes or held a worker; now each gets a typed answer and the server
//! stays up.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::server::{metric, post_form, signal, subscribe_events, Server};
use common::Glagol;
use serde_json::Value;

fn code(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap_or(Value::Null)["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn alive(s: &Server) {
    assert_eq!(s.get("/health").0, 200, "the server died");
}

#[test]
fn long_language_codes_and_prompts_get_typed_answers_not_crashes() {
    let s = Server::start(&["--preload", "whisper-base"]);
    s.wait_ready("whisper-base");
    let url = s.url("/v1/audio/transcriptions");
    let clip = std::fs::read(common::misc("turn_on_the_living_room_lamp.wav")).unwrap();
    for n in [1000, 1024, 1500, 5000] {
        let language = "x".repeat(n);
        let (status, _, body) = post_form(
            &url,
            &[],
            &[("language", &language)],
            Some(("a.wav", &clip)),
        );
        assert_eq!(
            (status, code(&body)),
            (400, "unsupported_language".into()),
            "{n}"
        );
        assert!(body.len() < 500, "the value is echoed whole");
        let mut r = Server::agent()
            .post(&s.url(&format!("/v1/transcribe?language={language}")))
            .send(&clip[..])
            .unwrap();
        let body = r.body_mut().read_to_string().unwrap();
        assert_eq!(
            (r.status().as_u16(), code(&body)),
            (400, "unsupported_language".into())
        );
        alive(&s);
    }
    for prompt in ["a".repeat(8000), "7".repeat(8000), "яблоко".repeat(3000)] {
        let (status, _, body) = post_form(
            &url,
            &[],
            &[("prompt", &prompt), ("language", "en")],
            Some(("a.wav", &clip)),
        );
        assert_eq!(status, 200, "{body}");
        alive(&s);
    }
}

#[test]
fn decompression_bombs_decode_in_bounded_memory_and_over_budget_ones_are_refused() {
    let s = Server::start(&["--preload", "gigaam-tiny", "--audio-memory-mb", "300"]);
    s.wait_ready("gigaam-tiny");
    // One hour of 48 kHz stereo silence: 0.6 MB of FLAC, 230 MB at 16 kHz
    // mono, 1.4 GB as 48 kHz stereo floats.
    let bomb = common::silent_flac(48_000 * 3600 / 4096);
    assert!(bomb.len() < 1_000_000, "{}", bomb.len());
    let mono_16k = 3600 * 16_000 * 4;
    let before = common::peak_rss(s.pid());
    let url = s.url("/v1/transcribe?model=gigaam-tiny&format=json");
    let mut r = Server::agent().post(&url).send(&bomb[..]).unwrap();
    let body = r.body_mut().read_to_string().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{body}");
    let single = common::peak_rss(s.pid()).saturating_sub(before);
    eprintln!(
        "1 h FLAC bomb: peak RSS +{} MB (16 kHz mono: {} MB)",
        single >> 20,
        mono_16k >> 20
    );
    assert!(
        single < mono_16k + (250 << 20),
        "peak grew {} MB",
        single >> 20
    );
    // Three at once do not fit the 300 MB budget: refused, not swapped.
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (url, bomb) = (url.clone(), bomb.clone());
            std::thread::spawn(move || {
                let mut r = Server::agent().post(&url).send(&bomb[..]).unwrap();
                let body = r.body_mut().read_to_string().unwrap();
                (r.status().as_u16(), code(&body))
            })
        })
        .collect();
    let results: Vec<(u16, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        results.iter().any(|r| *r == (503, "busy".into())),
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|(s, c)| *s == 200 || (*s, c.as_str()) == (503, "busy")),
        "{results:?}"
    );
    let parallel = common::peak_rss(s.pid()).saturating_sub(before);
    assert!(
        parallel < (300 << 20) + (300 << 20),
        "peak grew {} MB",
        parallel >> 20
    );
    alive(&s);
}

#[test]
fn a_flood_of_bombs_uploads_and_garbage_is_answered_under_the_memory_ceiling() {
    let s = Server::start(&[
        "--preload",
        "gigaam-tiny",
        "--default-model",
        "gigaam-tiny",
        "--audio-memory-mb",
        "200",
        "--queue-depth",
        "4",
    ]);
    s.wait_ready("gigaam-tiny");
    let base = common::peak_rss(s.pid());
    let bomb = common::silent_flac(48_000 * 3600 / 4096);
    let clip = std::fs::read(common::misc("jfk.flac")).unwrap();
    let url = s.url("/v1/transcribe?format=json");
    let mut bodies: Vec<(Vec<u8>, bool)> = Vec::new();
    for i in 0..24 {
        bodies.push(match i % 4 {
            0 => (bomb.clone(), false),
            1 | 2 => (clip.clone(), true),
            _ => (format!("garbage {i}").repeat(100).into_bytes(), false),
        });
    }
    // The real clips are sent by well-behaved clients: a `503 busy` is
    // retried after its Retry-After, so each must end up recognised.
    let handles: Vec<_> = bodies
        .into_iter()
        .map(|(body, retries)| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut tries = 0;
                loop {
                    let mut r = Server::agent()
                        .post(&url)
                        .send(&body[..])
                        .expect("the connection was dropped");
                    let status = r.status().as_u16();
                    let after: u64 = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                        .unwrap_or(1);
                    let text = r.body_mut().read_to_string().unwrap();
                    let code = if status == 200 {
                        String::new()
                    } else {
                        code(&text)
                    };
                    tries += 1;
                    if retries && status == 503 && code == "busy" && tries < 60 {
                        std::thread::sleep(std::time::Duration::from_secs(after.min(5)));
                        continue;
                    }
                    return (status, code, retries);
                }
            })
        })
        .collect();
    let results: Vec<(u16, String, bool)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (status, code, clip) in &results {
        let ok = if *clip {
            *status == 200
        } else {
            *status == 200
                || (*status == 400 && code == "not_audio")
                || (*status == 503 && code == "busy")
        };
        assert!(ok, "{status} {code} (clip: {clip}): {results:?}");
    }
    let grown = common::peak_rss(s.pid()).saturating_sub(base);
    eprintln!("flood: peak RSS +{} MB over the loaded server", grown >> 20);
    // The audio budget (200 MB) plus decoding and recognition buffers.
    assert!(grown < 600 << 20, "peak RSS grew {} MB", grown >> 20);
    alive(&s);
}

#[test]
fn non_finite_samples_do_not_pin_a_worker_nor_reach_the_text() {
    let s = Server::start(&[
        "--preload",
        "whisper-base",
        "--preload",
        "gigaam-tiny",
        "--inference-timeout",
        "60",
    ]);
    s.wait_ready("whisper-base");
    s.wait_ready("gigaam-tiny");
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("nan.wav");
    let samples: Vec<f32> = (0..16_000)
        .map(|i| match i % 3 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            _ => f32::NEG_INFINITY,
        })
        .collect();
    common::write_wav_f32(&wav, &samples);
    let audio = std::fs::read(&wav).unwrap();
    for model in ["whisper-base", "gigaam-tiny"] {
        let started = Instant::now();
        let (status, _, body) = post_form(
            &s.url("/v1/audio/transcriptions"),
            &[],
            &[("model", model)],
            Some(("nan.wav", &audio)),
        );
        assert_eq!(status, 200, "{model}: {body}");
        assert!(!body.contains("<unk>"), "{model}: {body}");
        assert!(
            started.elapsed() < Duration::from_secs(50),
            "{model} ran to the timeout"
        );
    }
}

#[test]
fn native_sse_on_whisper_ends_after_its_last_event() {
    let s = Server::start(&["--preload", "whisper-base"]);
    s.wait_ready("whisper-base");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let clip = std::fs::read(common::misc("jfk.wav")).unwrap();
    let mut r = agent
        .post(&s.url("/v1/transcribe/stream?language=en"))
        .send(&clip[..])
        .unwrap();
    let body = r
        .body_mut()
        .read_to_string()
        .expect("the stream did not end");
    let last = body.lines().rev().find_map(|l| l.strip_prefix("event: "));
    assert_eq!(last, Some("done"), "{body}");
}

#[test]
fn load_unload_churn_runs_one_load_at_a_time() {
    let s = Server::start(&[]);
    let events = subscribe_events(&s);
    for i in 0..50 {
        let action = if i % 2 == 0 { "load" } else { "unload" };
        let (status, _) = s.post_empty(&format!("/v1/models/whisper-base/{action}"));
        assert!(status == 200 || status == 202, "{action}: {status}");
    }
    s.post_empty("/v1/models/whisper-base/load");
    let started = Instant::now();
    s.wait_ready("whisper-base");
    eprintln!(
        "ready {:.1} s after the churn",
        started.elapsed().as_secs_f64()
    );
    let peak = common::peak_rss(s.pid());
    eprintln!("peak RSS after 50 load/unload calls: {} MB", peak >> 20);
    // One Whisper base is ~350 MB; overlapping loads took gigabytes.
    assert!(peak < 900 << 20, "peak RSS {} MB", peak >> 20);
    let mut loading = 0;
    while let Ok((event, data)) = events.recv_timeout(Duration::from_millis(500)) {
        if event == "model_loading" && data["model"] == "whisper-base" {
            loading += 1;
        }
    }
    assert!(loading <= 26, "{loading} loads started");
}

#[test]
fn a_model_that_fails_to_load_says_why_and_backs_off() {
    let glagol = Glagol::new();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.bin");
    let mut bytes = b"lmgg".to_vec();
    bytes.extend(std::iter::repeat_n(7u8, 4096));
    std::fs::write(&broken, bytes).unwrap();
    common::ok(glagol.run(&[
        "models",
        "import",
        broken.to_str().unwrap(),
        "--as",
        "broken",
    ]));
    let s = Server::start_with(glagol, &[]);
    let events = subscribe_events(&s);
    let url = s.url("/v1/audio/transcriptions");
    let clip = std::fs::read(common::misc("turn_on_the_living_room_lamp.wav")).unwrap();
    let (status, _, body) = post_form(&url, &[], &[("model", "broken")], Some(("a.wav", &clip)));
    assert_eq!((status, code(&body)), (503, "model_not_ready".into()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.get("/v1/models/broken").1["state"] != "failed" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..5 {
        let (status, retry, body) =
            post_form(&url, &[], &[("model", "broken")], Some(("a.wav", &clip)));
        assert_eq!(
            (status, code(&body)),
            (503, "model_failed".into()),
            "{body}"
        );
        assert!(body.contains("failed to load"), "{body}");
        assert!(retry.unwrap().parse::<u64>().unwrap() >= 5);
    }
    let mut loading = 0;
    while let Ok((event, _)) = events.recv_timeout(Duration::from_millis(300)) {
        loading += usize::from(event == "model_loading");
    }
    assert_eq!(loading, 1, "a failed model was reloaded at once");
}

#[test]
fn invalid_settings_are_refused_naming_the_setting() {
    let glagol = Glagol::new();
    for (args, name) in [
        (vec!["--max-audio-seconds", "NaN"], "max_audio_seconds"),
        (vec!["--max-audio-seconds=-1"], "max_audio_seconds"),
        (vec!["--inference-timeout", "0"], "inference_timeout"),
        (vec!["--workers", "0"], "workers"),
        (vec!["--idle-ttl=-5"], "idle_ttl"),
        (vec!["--max-body-bytes", "0"], "max_body_bytes"),
    ] {
        let out = glagol.run(&[&["serve", "--listen", "127.0.0.1:0"][..], &args].concat());
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = common::stderr(&out);
        assert!(err.contains(name), "{args:?}: {err}");
    }
}

#[test]
fn slow_request_heads_are_cut_off_and_oversized_bodies_refused_before_sending() {
    let s = Server::start(&["--header-read-timeout", "2", "--max-body-bytes", "100000"]);
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"POST /v1/transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let n = slow.read(&mut buf).unwrap_or(0);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the slow connection stayed open"
    );
    assert!(
        n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );

    let mut big = TcpStream::connect(&addr).unwrap();
    big.write_all(
        b"POST /v1/transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000000\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = big.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(
        head.contains("payload_too_large") || head.contains("content-length"),
        "{head}"
    );
    // A bad path is a JSON error too.
    let (status, v) = s.get("/v1/models/%FF%FE");
    assert!(status == 400 || status == 404, "{status}");
    assert!(v["error"]["code"].is_string(), "{v}");
}

#[test]
fn queued_requests_get_503_shutting_down_at_the_drain_deadline() {
    let s = Server::start(&[
        "--preload",
        "whisper-base",
        "--workers",
        "1",
        "--drain",
        "2",
    ]);
    s.wait_ready("whisper-base");
    let dir = tempfile::tempdir().unwrap();
    let (audio, _) = common::joined_recording(&[common::misc("jfk.wav")], 60.0);
    let long = dir.path().join("long.wav");
    common::write_wav(&long, &audio, 16_000);
    let long = std::fs::read(&long).unwrap();
    let clip = std::fs::read(common::misc("turn_on_the_living_room_lamp.wav")).unwrap();
    let url = s.url("/v1/audio/transcriptions");
    let running = {
        let url = url.clone();
        std::thread::spawn(move || {
            let (ct, body) =
                common::server::multipart(&[("language", "en")], Some(("long.wav", &long)));
            Server::agent()
                .post(&url)
                .header("content-type", &ct)
                .send(&body[..])
                .map(|r| r.status().as_u16())
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    let queued: Vec<_> = (0..2)
        .map(|_| {
            let (url, clip) = (url.clone(), clip.clone());
            std::thread::spawn(move || {
                post_form(&url, &[], &[("language", "en")], Some(("a.wav", &clip)))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    signal(s.pid(), 15);
    for q in queued {
        let (status, retry, body) = q.join().unwrap();
        assert_eq!(
            (status, code(&body)),
            (503, "shutting_down".into()),
            "{body}"
        );
        assert!(retry.is_some());
    }
    let _ = running.join();
}

#[test]
fn the_in_flight_gauge_returns_to_zero_when_a_client_goes_away() {
    let s = Server::start(&["--preload", "whisper-base"]);
    s.wait_ready("whisper-base");
    let addr = s.base.trim_start_matches("http://").to_string();
    let clip = std::fs::read(common::misc("jfk.wav")).unwrap();
    let mut c = TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /v1/transcribe?language=en HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        clip.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&clip).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(c);
    let metrics = s.metrics.clone().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = Server::agent()
            .get(&metrics)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        // This scrape is not counted (metrics have their own listener).
        if metric(&text, "glagol_http_requests_in_flight") == 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "in-flight gauge stuck: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_failed_import_leaves_no_temporary_directory_and_says_why_once() {
    let glagol = Glagol::new();
    let store = glagol.data.path().join("models");
    std::fs::create_dir_all(&store).unwrap();
    // A file where the model's directory must go makes the final step fail.
    std::fs::write(store.join("blocked"), b"in the way").unwrap();
    let out = glagol.run(&[
        "models",
        "import",
        common::whisper_base().to_str().unwrap(),
        "--as",
        "blocked",
    ]);
    assert!(!out.status.success());
    let err = common::stderr(&out);
    let leftovers: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".import-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let first_line = err.lines().next().unwrap_or_default();
    let parts: Vec<&str> = first_line.split(": ").collect();
    let mut unique = parts.clone();
    unique.dedup();
    assert_eq!(parts, unique, "the error repeats itself: {first_line}");
}

#[test]
fn a_form_refused_before_its_file_is_read_still_gets_its_answer() {
    // Refusing early and closing would leave the unread upload in the
    // socket, and the kernel would reset the connection while the client
    // still sends: it would see a broken pipe, not the error.
    let s = Server::start(&[]);
    let file = vec![0u8; 24 << 20];
    let long_key = "k".repeat(300);
    for _ in 0..3 {
        let (status, _, body) = post_form(
            &s.url("/v1/audio/transcriptions"),
            &[],
            &[("response_format", "yaml")],
            Some(("a.wav", &file)),
        );
        assert_eq!((status, code(&body)), (400, "invalid_request".into()));
        let (status, _, body) = post_form(
            &s.url("/v1/jobs"),
            &[("idempotency-key", &long_key)],
            &[],
            Some(("a.wav", &file)),
        );
        assert_eq!((status, code(&body)), (400, "invalid_request".into()));
        let mut r = Server::agent()
            .post(&s.url("/v1/audio/transcriptions"))
            .header("content-type", "audio/wav")
            .send(&file[..])
            .unwrap();
        let body = r.body_mut().read_to_string().unwrap();
        assert_eq!(
            (r.status().as_u16(), code(&body)),
            (400, "invalid_multipart".into())
        );
        alive(&s);
    }
}
