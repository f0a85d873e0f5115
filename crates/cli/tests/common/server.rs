//! Starting the real `glagol serve` on a free loopback port, and a small
//! blocking HTTP client for it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::Glagol;

pub struct Server {
    pub base: String,
    /// The `/metrics` URL.
    pub metrics: Option<String>,
    /// Where Wyoming is served (`tcp://…`), when it is.
    pub wyoming: Option<String>,
    pub child: Child,
    pub glagol: Glagol,
}

impl Server {
    /// A store with Whisper base and the synthetic GigaAM installed, and a
    /// server on 127.0.0.1:0 started with `args`.
    pub fn start(args: &[&str]) -> Server {
        let glagol = Glagol::new();
        let assets = super::assets();
        super::ok(glagol.run(&[
            "models",
            "import",
            assets.join("models/ggml-base.bin").to_str().unwrap(),
            "--as",
            "whisper-base",
            "--force",
        ]));
        super::ok(
            glagol.run(&[
                "models",
                "import",
                assets
                    .join("models/gigaam-v3-synthetic-tiny")
                    .to_str()
                    .unwrap(),
                "--as",
                "gigaam-tiny",
            ]),
        );
        Self::start_with(glagol, args)
    }

    pub fn start_with(glagol: Glagol, args: &[&str]) -> Server {
        let mut child = glagol
            .cmd()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--threads",
                "2",
            ])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let metrics = line
            .trim()
            .strip_prefix("glagol metrics on ")
            .map(String::from);
        if metrics.is_some() {
            line.clear();
            stdout.read_line(&mut line).unwrap();
        }
        let wyoming = line
            .trim()
            .strip_prefix("glagol wyoming on ")
            .map(String::from);
        if wyoming.is_some() {
            line.clear();
            stdout.read_line(&mut line).unwrap();
        }
        let base = line
            .trim()
            .strip_prefix("glagol listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Server {
            base,
            metrics,
            wyoming,
            child,
            glagol,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into()
    }

    /// The Prometheus text the server exposes now.
    pub fn metrics_text(&self) -> String {
        let url = self.metrics.clone().unwrap_or_else(|| self.url("/metrics"));
        Server::agent()
            .get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    }

    /// The text `/v1/transcribe?{query}&format=json` gives for an audio
    /// file's bytes.
    pub fn transcribe_text(&self, query: &str, body: &[u8]) -> String {
        let url = self.url(&format!("/v1/transcribe?{query}&format=json"));
        let mut r = Self::agent().post(&url).send(body).unwrap();
        let text = r.body_mut().read_to_string().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["text"].as_str().unwrap().to_string()
    }

    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let mut r = Self::agent().get(&self.url(path)).call().unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str(&r.body_mut().read_to_string().unwrap())
                .unwrap_or(serde_json::Value::Null),
        )
    }

    pub fn post_empty(&self, path: &str) -> (u16, serde_json::Value) {
        let mut r = Self::agent().post(&self.url(path)).send_empty().unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str(&r.body_mut().read_to_string().unwrap())
                .unwrap_or(serde_json::Value::Null),
        )
    }

    /// Waits until the model reports `ready`.
    pub fn wait_ready(&self, model: &str) {
        self.wait_ready_with_key(model, "")
    }

    /// [`Server::wait_ready`], sending an API key (when not empty).
    pub fn wait_ready_with_key(&self, model: &str, key: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut request = Self::agent().get(&self.url(&format!("/v1/models/{model}")));
            if !key.is_empty() {
                request = request.header("x-api-key", key);
            }
            let mut r = request.call().unwrap();
            let v: serde_json::Value =
                serde_json::from_str(&r.body_mut().read_to_string().unwrap())
                    .unwrap_or(serde_json::Value::Null);
            if v["state"] == "ready" {
                return;
            }
            assert!(v["state"] != "failed", "{v}");
            assert!(Instant::now() < deadline, "{model} never became ready: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILLs the server (if it still runs); its data directory, for a restart.
    pub fn crash(mut self) -> Glagol {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.glagol, Glagol::new())
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A multipart/form-data body: text fields and one file.
pub fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "glagol-test-boundary-7d3f";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, bytes)) = file {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// POSTs a multipart form; returns (status, headers' Retry-After, body text).
pub fn post_form(
    url: &str,
    headers: &[(&str, &str)],
    fields: &[(&str, &str)],
    file: Option<(&str, &[u8])>,
) -> (u16, Option<String>, String) {
    let (ct, body) = multipart(fields, file);
    let mut req = Server::agent().post(url).header("content-type", &ct);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.send(&body[..]).unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    (
        r.status().as_u16(),
        retry,
        r.body_mut().read_to_string().unwrap(),
    )
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// The JFK clip (11 s, English).
pub fn jfk() -> Vec<u8> {
    read(&super::misc("jfk.wav"))
}

/// The status of `GET /v1/models` with `key`.
pub fn models_with_key(s: &Server, key: &str) -> u16 {
    Server::agent()
        .get(&s.url("/v1/models"))
        .header("x-api-key", key)
        .call()
        .unwrap()
        .status()
        .as_u16()
}

/// `/v1/models/events` as (event, data) pairs, read on a thread.
pub fn subscribe_events(s: &Server) -> std::sync::mpsc::Receiver<(String, serde_json::Value)> {
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
                let data = serde_json::from_str(d).unwrap_or(serde_json::Value::Null);
                if tx.send((event.clone(), data)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// The value of the first metric line starting with `prefix`.
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
}

/// Sends signal `sig` (15 TERM, 1 HUP, 9 KILL) to process `pid`.
pub fn signal(pid: i32, sig: i32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    // SAFETY: kill(2) takes plain integers and has no memory effects here.
    assert_eq!(unsafe { kill(pid, sig) }, 0, "kill({pid}, {sig})");
}
