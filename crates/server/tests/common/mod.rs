//! In-process test rig: a model store with one fake model, the server's
//! state wired to a [`FakeEngine`], and helpers to call the router.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use glagol_core::engine::testing::FakeEngine;
use glagol_core::engine::Engine;
use glagol_core::models::ModelStore;
use glagol_server::models::LoadEngine;
use glagol_server::{AppState, Config, Settings};
use http_body_util::BodyExt;
use tower::ServiceExt;

pub struct Rig {
    pub state: Arc<AppState>,
    pub fake: FakeEngine,
    pub dir: tempfile::TempDir,
    router: Router,
}

/// A store holding the fake model `fake` (a file that passes for a ggml model).
pub fn store() -> (tempfile::TempDir, ModelStore) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fake.bin");
    let mut bytes = b"lmgg".to_vec();
    bytes.extend(std::iter::repeat_n(0u8, 1024));
    std::fs::write(&file, bytes).unwrap();
    let store = ModelStore::new(dir.path().join("models"));
    store.import(&file, Some("fake"), false).unwrap();
    (dir, store)
}

/// Builds engines that are clones of `fake`.
pub fn loader(fake: &FakeEngine) -> LoadEngine {
    let fake = fake.clone();
    Arc::new(move |_, _| Ok(Box::new(fake.clone()) as Box<dyn Engine>))
}

/// The state for `fake`, with settings adjusted by `tweak`.
pub fn rig(fake: FakeEngine, tweak: impl FnOnce(&mut Settings)) -> Rig {
    let (dir, _) = store();
    let mut settings = Settings {
        models_dir: dir.path().join("models"),
        default_model: "fake".into(),
        metrics_listen: "off".into(),
        ..Settings::default()
    };
    tweak(&mut settings);
    let state = AppState::new(Config::new(settings).unwrap(), None, loader(&fake));
    let router = glagol_server::http::router(state.clone());
    Rig {
        state,
        fake,
        dir,
        router,
    }
}

impl Rig {
    /// Loads the fake model and waits until it is ready.
    pub async fn ready(&self) {
        let lease = self
            .state
            .registry
            .acquire("fake", Some(Duration::from_secs(30)))
            .await
            .unwrap();
        drop(lease);
    }

    pub async fn call(&self, req: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// `error.code` of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Server-sent events as (event, data) pairs.
    pub fn events(&self) -> Vec<(String, serde_json::Value)> {
        let mut out = Vec::new();
        let mut name = String::new();
        for line in self.body.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                out.push((
                    name.clone(),
                    serde_json::from_str(d).unwrap_or(serde_json::Value::Null),
                ));
            }
        }
        out
    }
}

/// A 16 kHz mono PCM16 WAV of `seconds` of a quiet tone.
pub fn wav(seconds: f64) -> Vec<u8> {
    let n = (seconds * 16_000.0) as usize;
    let mut data = Vec::with_capacity(n * 2);
    for i in 0..n {
        let v = ((i as f32 * 0.05).sin() * 3000.0) as i16;
        data.extend_from_slice(&v.to_le_bytes());
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// A multipart body with the given text fields and a `file` part.
pub fn multipart(fields: &[(&str, &str)], file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "glagolTestBoundary7MA4YWxk";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub fn post_form(path: &str, fields: &[(&str, &str)], file: &[u8]) -> Request<Body> {
    let (ct, body) = multipart(fields, file);
    Request::post(path)
        .header("content-type", ct)
        .header("host", "127.0.0.1:8765")
        .body(Body::from(body))
        .unwrap()
}

pub fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "127.0.0.1:8765")
        .body(Body::empty())
        .unwrap()
}
