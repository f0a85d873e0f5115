//! The HTTP API in process, with a fake engine: response shapes, event
//! streams, the error mapping and deadlines.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{get, post_form, rig, wav};
use glagol_core::engine::testing::FakeEngine;

#[tokio::test(flavor = "multi_thread")]
async fn openai_json_verbose_and_text() {
    let r = rig(FakeEngine::new("fake"), |_| {});
    r.ready().await;
    let audio = wav(2.5);
    let reply = r
        .call(post_form(
            "/v1/audio/transcriptions",
            &[("model", "whisper-1")],
            &audio,
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert_eq!(
        v["text"],
        "fake 2.50s part 0 fake 2.50s part 1 fake 2.50s part 2"
    );
    assert_eq!(v["usage"]["type"], "duration");
    assert_eq!(v["usage"]["seconds"], 3);

    let reply = r
        .call(post_form(
            "/v1/audio/transcriptions",
            &[
                ("response_format", "verbose_json"),
                ("timestamp_granularities[]", "word"),
            ],
            &audio,
        ))
        .await;
    let v = reply.json();
    assert_eq!(v["words"], serde_json::json!([]));
    assert!(v.get("segments").is_none());
    assert_eq!(v["duration"], 2.5);

    let reply = r
        .call(post_form(
            "/v1/audio/transcriptions",
            &[("response_format", "srt")],
            &audio,
        ))
        .await;
    assert!(
        reply
            .body
            .starts_with("1\n00:00:00,000 --> 00:00:01,000\nfake 2.50s part 0"),
        "{}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_stream_sends_a_delta_per_segment_then_done_and_ends() {
    let r = rig(FakeEngine::new("fake"), |_| {});
    r.ready().await;
    let reply = r
        .call(post_form(
            "/v1/audio/transcriptions",
            &[("stream", "true")],
            &wav(4.0),
        ))
        .await;
    assert_eq!(reply.status, 200);
    let events = reply.events();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["transcript.text.delta"; 4]
            .iter()
            .copied()
            .chain(["transcript.text.done"])
            .collect::<Vec<_>>()
    );
    let joined: String = events[..4]
        .iter()
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(joined, events[4].1["text"].as_str().unwrap());
    // OpenAI's schema allows only token usage here: 4 s are 200 encoder frames.
    let usage = &events[4].1["usage"];
    assert_eq!(usage["type"], "tokens");
    assert_eq!(usage["input_token_details"]["audio_tokens"], 200);
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn native_stream_sends_progress_and_segments_as_decoded_then_done() {
    let r = rig(FakeEngine::new("fake"), |_| {});
    r.ready().await;
    let req = Request::post("/v1/transcribe/stream?word_timestamps=true")
        .header("host", "localhost")
        .body(Body::from(wav(3.0)))
        .unwrap();
    let reply = r.call(req).await;
    assert_eq!(reply.status, 200);
    let events = reply.events();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["segment", "progress", "segment", "progress", "segment", "progress", "done"]
    );
    assert_eq!(events[1].1["segments_done"], 1);
    assert_eq!(events[1].1["segments_total"], 3);
    assert!(events[1].1["progress"].as_f64().unwrap() < 0.5);
    assert_eq!(events[2].1["text"], " fake 3.00s part 1");
    assert_eq!(events[6].1["model"], "fake");
    assert_eq!(events[6].1["segments"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_have_one_json_shape() {
    let r = rig(FakeEngine::new("fake"), |s| s.max_body_bytes = 1 << 20);
    let audio = wav(1.0);
    // Cold model: 503 with Retry-After, and the load starts.
    let reply = r
        .call(post_form("/v1/audio/transcriptions", &[], &audio))
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "model_not_ready")
    );
    assert!(reply.headers.contains_key("retry-after"));
    r.ready().await;

    let cases: Vec<(Request<Body>, u16, &str)> = vec![
        (get("/nowhere"), 404, "not_found"),
        (
            post_form("/v1/audio/transcriptions", &[("model", "nope")], &audio),
            404,
            "model_not_found",
        ),
        (
            post_form("/v1/audio/transcriptions", &[("stream", "maybe")], &audio),
            400,
            "invalid_request",
        ),
        (
            post_form("/v1/audio/transcriptions", &[("temperature", "7")], &audio),
            400,
            "invalid_request",
        ),
        (
            post_form(
                "/v1/audio/transcriptions",
                &[("temperature", "NaN")],
                &audio,
            ),
            400,
            "invalid_request",
        ),
        (
            post_form(
                "/v1/audio/transcriptions",
                &[("language", &"x".repeat(1500))],
                &audio,
            ),
            400,
            "unsupported_language",
        ),
        (
            post_form(
                "/v1/audio/transcriptions",
                &[("response_format", "xml")],
                &audio,
            ),
            400,
            "invalid_request",
        ),
        (
            post_form("/v1/audio/transcriptions", &[], b"not audio at all"),
            400,
            "not_audio",
        ),
        (
            Request::post("/v1/audio/transcriptions")
                .header("content-type", "multipart/form-data")
                .body(Body::from("x"))
                .unwrap(),
            400,
            "invalid_multipart",
        ),
        (
            Request::post("/v1/transcribe?task=dance")
                .body(Body::from(audio.clone()))
                .unwrap(),
            400,
            "invalid_request",
        ),
        (
            Request::post("/v1/transcribe?word_timestamps=maybe")
                .body(Body::from(audio.clone()))
                .unwrap(),
            400,
            "invalid_request",
        ),
        (
            Request::post("/v1/transcribe").body(Body::empty()).unwrap(),
            400,
            "empty_input",
        ),
        (
            Request::post("/v1/transcribe")
                .header("content-length", "5000000")
                .body(Body::from(vec![0u8; 16]))
                .unwrap(),
            413,
            "payload_too_large",
        ),
    ];
    for (req, status, code) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let reply = r.call(req).await;
        assert_eq!(
            (reply.status.as_u16(), reply.code().as_str()),
            (status, code),
            "{what}: {}",
            reply.body
        );
        assert!(
            reply.body.len() < 1000,
            "{what}: echoed input: {}",
            reply.body
        );
        let v = reply.json();
        assert!(
            v["error"]["message"].is_string() && v["error"]["type"].is_string(),
            "{what}"
        );
    }
    // A second file part.
    let (ct, mut body) = common::multipart(&[], &audio);
    let extra = common::multipart(&[], &audio).1;
    body.truncate(body.len() - "--glagolTestBoundary7MA4YWxk--\r\n".len());
    body.extend_from_slice(&extra);
    let reply = r
        .call(
            Request::post("/v1/audio/transcriptions")
                .header("content-type", ct)
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (400, "invalid_request"),
        "{}",
        reply.body
    );
    // 405 names the allowed methods.
    let reply = r.call(get("/v1/audio/transcriptions")).await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (405, "method_not_allowed")
    );
    assert_eq!(reply.headers["allow"], "POST");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_request_keeps_its_worker_until_the_engine_returns() {
    // An engine that cannot be interrupted (one long native call).
    let fake = FakeEngine::new("fake")
        .uninterruptible(true)
        .cost_per_second(Duration::from_millis(1000));
    let r = rig(fake, |s| {
        s.inference_timeout = 2;
        s.workers = 1;
    });
    r.ready().await;
    let started = Instant::now();
    let reply = r
        .call(post_form("/v1/audio/transcriptions", &[], &wav(3.0)))
        .await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (504, "inference_timeout")
    );
    assert!(started.elapsed() < Duration::from_millis(2900));
    // The engine still runs the timed-out item: a new request waits for it.
    assert_eq!(r.fake.running(), 1);
    let reply = r
        .call(post_form("/v1/audio/transcriptions", &[], &wav(0.5)))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        r.fake.max_concurrent(),
        1,
        "more inferences than workers ran at once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn models_list_and_lifecycle() {
    let r = rig(FakeEngine::new("fake"), |_| {});
    let v = r.call(get("/v1/models")).await.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "fake");
    assert_eq!(v["data"][0]["state"], "unloaded");
    let reply = r
        .call(
            Request::post("/v1/models/whisper-1/load")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        (reply.status.as_u16(), reply.json()["status"].clone()),
        (202, "load_initiated".into())
    );
    r.ready().await;
    let reply = r
        .call(
            Request::post("/v1/models/fake/load")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        r.call(get("/v1/models/fake")).await.json()["state"],
        "ready"
    );
    let reply = r
        .call(
            Request::post("/v1/models/fake/unload")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.json()["status"], "unloaded");
    assert_eq!(
        r.call(get("/v1/models/fake")).await.json()["state"],
        "unloaded"
    );
    let reply = r.call(get("/ready")).await;
    assert_eq!(reply.status, 200);
}
