//! Helpers for the durable job tests: submitting, polling, reading event
//! streams and building long recordings.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::pg::Postgres;
use super::server::{multipart, Server};

/// Where a test server keeps its jobs: the embedded store, or a
/// throw-away PostgreSQL cluster (with short leases, so a restarted node
/// takes its interrupted jobs back quickly).
pub enum Store {
    Sqlite,
    Postgres(Postgres),
}

impl Store {
    pub fn sqlite() -> Store {
        Store::Sqlite
    }

    pub fn postgres() -> Store {
        Store::Postgres(Postgres::start())
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        if let Store::Postgres(pg) = self {
            all.extend(["--job-store", pg.url.as_str(), "--job-lease", "2"]);
        }
        all
    }

    /// A server on this store.
    pub fn start(&self, args: &[&str]) -> Server {
        Server::start(&self.args(args))
    }

    /// The server of `glagol`'s data directory again, on this store.
    pub fn restart(&self, glagol: super::Glagol, args: &[&str]) -> Server {
        Server::start_with(glagol, &self.args(args))
    }
}

/// Runs each named test (a `fn(&Store)`) on both stores: `sqlite::NAME`
/// and `postgres::NAME`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::common::jobs::Store::sqlite()) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(&super::common::jobs::Store::postgres()) } )*
        }
    };
}

/// POSTs a job; (status, headers we look at, body).
pub fn submit(
    s: &Server,
    headers: &[(&str, &str)],
    fields: &[(&str, &str)],
    file: Option<(&str, &[u8])>,
) -> (u16, BTreeMap<String, String>, Value) {
    let (ct, body) = multipart(fields, file);
    let mut req = Server::agent()
        .post(&s.url("/v1/jobs"))
        .header("content-type", &ct);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.send(&body[..]).unwrap();
    let seen = ["location", "idempotent-replayed", "retry-after"]
        .iter()
        .filter_map(|h| {
            r.headers()
                .get(*h)
                .map(|v| (h.to_string(), v.to_str().unwrap().to_string()))
        })
        .collect();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (
        status,
        seen,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

pub fn accepted(s: &Server, fields: &[(&str, &str)], audio: &[u8]) -> String {
    let (status, _, job) = submit(s, &[], fields, Some(("a.wav", audio)));
    assert_eq!(status, 202, "{job}");
    job["id"].as_str().unwrap().to_string()
}

pub fn wait_status(s: &Server, id: &str, wanted: &[&str], limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let (code, job) = s.get(&format!("/v1/jobs/{id}"));
        assert_eq!(code, 200, "{job}");
        if wanted.contains(&job["status"].as_str().unwrap()) {
            return job;
        }
        assert!(
            start.elapsed() < limit,
            "job never became {wanted:?}: {job}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until job `id` has been running for `time`, so that it is part
/// way through (progress is no sign of that: chunks recognised side by side
/// report together, and the last of them ends the job).
pub fn wait_running_for(s: &Server, id: &str, time: Duration) {
    let start = Instant::now();
    let mut running_since = None;
    loop {
        let (_, job) = s.get(&format!("/v1/jobs/{id}"));
        if job["status"] == "running" {
            let since = *running_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= time {
                return;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{job}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The job's SSE events (id, event, data) until the stream ends.
pub fn events(s: &Server, id: &str, last_event_id: Option<u64>) -> Vec<(u64, String, Value)> {
    use std::io::BufRead;
    let mut req = Server::agent().get(&s.url(&format!("/v1/jobs/{id}/events")));
    if let Some(last) = last_event_id {
        req = req.header("last-event-id", last.to_string());
    }
    let r = req.call().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut out = Vec::new();
    let (mut seq, mut event) = (0, String::new());
    for line in std::io::BufReader::new(r.into_body().into_reader()).lines() {
        let line = line.unwrap();
        if let Some(v) = line.strip_prefix("id: ") {
            seq = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = v.to_string();
        } else if let Some(v) = line.strip_prefix("data: ") {
            out.push((seq, event.clone(), serde_json::from_str(v).unwrap()));
        }
    }
    out
}

pub fn text(s: &Server, path: &str) -> (u16, String) {
    let mut r = Server::agent().get(&s.url(path)).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

pub fn delete(s: &Server, path: &str) -> (u16, Value) {
    let mut r = Server::agent().delete(&s.url(path)).call().unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null),
    )
}

/// Russian speech of at least `seconds`, as WAV bytes.
pub fn long_audio(seconds: f64) -> Vec<u8> {
    let clips: Vec<_> = super::golos().into_iter().map(|(p, _)| p).collect();
    let (samples, _) = super::joined_recording(&clips, seconds);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.wav");
    super::write_wav(&path, &samples, 16_000);
    std::fs::read(path).unwrap()
}
