//! Any body (and a few header choices) through the transcription routes of
//! the real router — multipart parsing, field validation, raw bodies, query
//! strings — with a fake engine behind them: every answer is a typed JSON
//! error or a transcript, never a panic or a 500.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use glagol_core::engine::testing::FakeEngine;
use glagol_core::engine::Engine;
use glagol_server::{AppState, Config, Settings};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Rig {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _dir: tempfile::TempDir,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fake.bin");
        let mut bytes = b"lmgg".to_vec();
        // Plausible hyperparameters for the header check, then nothing.
        for v in [51865i32, 1500, 512, 8, 6, 448, 512, 8, 6, 80, 1] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(&file, bytes).unwrap();
        let store = glagol_core::models::ModelStore::new(dir.path().join("models"));
        store.import(&file, Some("fake"), false).unwrap();
        let settings = Settings {
            models_dir: dir.path().join("models"),
            default_model: "fake".into(),
            metrics_listen: "off".into(),
            max_body_bytes: 1 << 20,
            max_audio_seconds: 30.0,
            wait_for_load: true,
            ..Settings::default()
        };
        let fake = FakeEngine::new("fake").cost_per_second(std::time::Duration::ZERO);
        let state = AppState::new(
            Config::new(settings).unwrap(),
            None,
            Arc::new(move |_, _| Ok(Box::new(fake.clone()) as Box<dyn Engine>)),
        );
        Rig {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap(),
            router: glagol_server::http::router(state),
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let (method, path, content_type) = match choice % 6 {
        0 => ("POST", "/v1/audio/transcriptions", "multipart/form-data; boundary=X"),
        1 => ("POST", "/v1/audio/translations", "multipart/form-data; boundary=X"),
        2 => ("POST", "/v1/transcribe?format=srt&vad=false", "multipart/form-data; boundary=X"),
        3 => ("POST", "/v1/transcribe/stream?word_timestamps=true", "application/octet-stream"),
        4 => ("POST", "/v1/audio/transcriptions", "multipart/form-data"),
        _ => ("GET", "/v1/models/fake", "text/plain"),
    };
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .header("host", "127.0.0.1")
        .body(Body::from(body.to_vec()))
        .unwrap();
    let rig = rig();
    rig.runtime.block_on(async {
        let response = rig.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert!(!status.is_server_error() || status.as_u16() == 503, "{status}: {bytes:?}");
        if status.is_client_error() || status.is_server_error() {
            let v: serde_json::Value = serde_json::from_slice(&bytes).expect("errors are JSON");
            assert!(v["error"]["code"].is_string(), "{v}");
        }
    });
});
