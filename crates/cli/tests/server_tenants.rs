//! Several tenants on one server: named keys with scopes (every operation
//! of the OpenAPI document refused to a key without its scope), jobs seen
//! only by their owner and by `admin`, per-key limits, and keys changed by
//! SIGHUP without dropping the sessions open.

mod common;

on_both_stores!(tenants_see_only_their_own_jobs_and_admin_sees_all);

use std::path::Path;
use std::time::{Duration, Instant};

use common::hooks::{Receiver, SECRET};
use common::jobs::{submit, Store};
use common::server::{jfk, metric, signal, Server};
use common::ws::Client;
use serde_json::Value;

/// Alice's own webhook signing secret.
const ALICE_SECRET: &str = "whsec_QWxpY2UncyBvd24gc2lnbmluZyBrZXkh";

const SCOPES: [&str; 4] = ["transcribe", "live", "jobs", "models"];

/// A config file with these `[[keys]]` (name, scopes, extra TOML lines);
/// each key is its name with `-key` appended.
fn write_keys(path: &Path, keys: &[(&str, &[&str], &str)]) {
    let mut toml = String::new();
    for (name, scopes, extra) in keys {
        toml += &format!(
            "[[keys]]\nname = \"{name}\"\nkey = \"{name}-key\"\nscopes = {scopes:?}\n{extra}\n"
        );
    }
    std::fs::write(path, toml).unwrap();
}

/// `method path` as `key`: (status, JSON body or Null).
fn call(s: &Server, method: &str, path: &str, key: &str) -> (u16, Value) {
    let agent = Server::agent();
    let url = s.url(path);
    let key = format!("{key}-key");
    let mut r = match method {
        "GET" => agent.get(&url).header("x-api-key", &key).call(),
        "DELETE" => agent.delete(&url).header("x-api-key", &key).call(),
        _ => agent
            .post(&url)
            .header("x-api-key", &key)
            .header("content-type", "application/json")
            .send("{}"),
    }
    .unwrap();
    let status = r.status().as_u16();
    // An event stream (the model events) does not end: its status is enough.
    let streaming = r
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    if streaming {
        return (status, Value::Null);
    }
    let body = r.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[test]
fn every_operation_declares_its_scope_and_a_key_without_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("keys.toml");
    // "no-X" has every scope but X; "X" has only X.
    let without: Vec<(String, Vec<&str>)> = SCOPES
        .iter()
        .map(|s| {
            let rest = SCOPES.iter().copied().filter(|o| o != s).collect();
            (format!("no-{s}"), rest)
        })
        .collect();
    let mut keys: Vec<(&str, &[&str], &str)> = without
        .iter()
        .map(|(n, sc)| (n.as_str(), sc.as_slice(), ""))
        .collect();
    let only: Vec<(&str, [&str; 1])> = SCOPES.iter().map(|s| (*s, [*s])).collect();
    keys.extend(only.iter().map(|(n, sc)| (*n, &sc[..], "")));
    write_keys(&conf, &keys);
    let s = Server::start(&["--config", conf.to_str().unwrap()]);

    let (_, doc) = s.get("/openapi.json");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let security = op["security"].as_array().cloned().unwrap_or_default();
            let scopes: Vec<&str> = security
                .iter()
                .filter_map(|r| r.get("bearer"))
                .flat_map(|s| s.as_array().unwrap())
                .map(|s| s.as_str().unwrap())
                .collect();
            if !path.starts_with("/v1/") {
                assert!(
                    security.iter().all(|r| r.get("bearer").is_none()) || op["security"].is_null(),
                    "{method} {path} needs no key"
                );
                continue;
            }
            assert!(
                security.iter().any(|r| r.get("bearer").is_some()),
                "{method} {path} declares no security requirement"
            );
            let path = path.replace("{id}", "nope");
            match scopes[..] {
                // Any key: a key with one scope is let through.
                [] => {
                    let (status, body) = call(&s, &method, &path, "jobs");
                    assert!(![401, 403].contains(&status), "{method} {path}: {body}");
                }
                [scope] => {
                    let (status, body) = call(&s, &method, &path, &format!("no-{scope}"));
                    assert_eq!(status, 403, "{method} {path} without {scope}: {body}");
                    assert_eq!(body["error"]["code"], "insufficient_scope");
                    let message = body["error"]["message"].as_str().unwrap();
                    assert!(message.contains(&format!("'{scope}'")), "{message}");
                    let (status, body) = call(&s, &method, &path, scope);
                    assert!(
                        ![401, 403].contains(&status),
                        "{method} {path} with {scope}: {body}"
                    );
                }
                _ => panic!("{method} {path}: several scopes {scopes:?}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 19, "{checked} operations checked");
    // HEAD is its GET's.
    let head = |key: &str| {
        Server::agent()
            .head(&s.url("/v1/jobs"))
            .header("x-api-key", format!("{key}-key"))
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!((head("jobs"), head("no-jobs")), (200, 403));
    // Health stays open and says nothing of tenants.
    let (status, health) = s.get("/health");
    assert_eq!(status, 200);
    assert!(!health.to_string().contains("no-jobs"), "{health}");
}

fn wait_done(s: &Server, id: &str, key: &str) -> Value {
    let start = Instant::now();
    loop {
        let (code, job) = call(s, "GET", &format!("/v1/jobs/{id}"), key);
        assert_eq!(code, 200, "{job}");
        if job["status"] == "done" {
            return job;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn listed(s: &Server, query: &str, key: &str) -> Vec<String> {
    let (code, list) = call(s, "GET", &format!("/v1/jobs{query}"), key);
    assert_eq!(code, 200, "{list}");
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect()
}

fn tenants_see_only_their_own_jobs_and_admin_sees_all(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("keys.toml");
    write_keys(
        &conf,
        &[
            (
                "alice",
                &["jobs", "transcribe"],
                &format!("webhook_secret = \"{ALICE_SECRET}\""),
            ),
            ("bob", &["jobs"], ""),
            ("root", &["admin"], ""),
        ],
    );
    let hook = Receiver::start(vec![]);
    let s = store.start(&[
        "--config",
        conf.to_str().unwrap(),
        "--webhook-secret",
        SECRET,
        "--webhook-allow-private",
    ]);
    let as_key = |k: &'static str| [("x-api-key", k), ("idempotency-key", "same")];
    let job_of = |key| {
        let (status, _, job) = submit(
            &s,
            &as_key(key),
            &[("language", "en"), ("webhook_url", &hook.url)],
            Some(("jfk.wav", &jfk())),
        );
        assert_eq!(status, 202, "{job}");
        job["id"].as_str().unwrap().to_string()
    };
    let alices = job_of("alice-key");
    // The same idempotency key is another tenant's own.
    let bobs = job_of("bob-key");
    assert_ne!(alices, bobs);
    let done = wait_done(&s, &alices, "alice");
    assert_eq!(done["owner"], "alice");

    for (method, path) in [
        ("GET", format!("/v1/jobs/{alices}")),
        ("GET", format!("/v1/jobs/{alices}/result")),
        ("GET", format!("/v1/jobs/{alices}/events")),
        ("DELETE", format!("/v1/jobs/{alices}")),
        ("DELETE", format!("/v1/jobs/{alices}?purge=true")),
    ] {
        let (status, body) = call(&s, method, &path, "bob");
        assert_eq!(status, 404, "bob {method} {path}: {body}");
        assert_eq!(body["error"]["code"], "job_not_found");
    }
    assert_eq!(listed(&s, "", "alice"), vec![alices.clone()]);
    assert_eq!(listed(&s, "", "bob"), vec![bobs.clone()]);
    // Asking for another tenant's list takes the admin scope.
    let (status, body) = call(&s, "GET", "/v1/jobs?owner=alice", "bob");
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &"insufficient_scope".into())
    );
    assert_eq!(listed(&s, "?owner=bob", "bob"), vec![bobs.clone()]);

    // The admin sees and manages everyone's.
    assert_eq!(listed(&s, "", "root"), vec![bobs.clone(), alices.clone()]);
    assert_eq!(listed(&s, "?owner=alice", "root"), vec![alices.clone()]);
    let (status, job) = call(&s, "GET", &format!("/v1/jobs/{alices}"), "root");
    assert_eq!((status, &job["owner"]), (200, &"alice".into()));
    let (status, _) = call(&s, "GET", &format!("/v1/jobs/{alices}/result"), "root");
    assert_eq!(status, 200);
    wait_done(&s, &bobs, "root");
    let (status, body) = call(&s, "DELETE", &format!("/v1/jobs/{bobs}?purge=true"), "root");
    assert_eq!(status, 200, "{body}");
    assert_eq!(listed(&s, "", "bob"), Vec::<String>::new());
    // The owner still has its own.
    let (status, text) = call(
        &s,
        "GET",
        &format!("/v1/jobs/{alices}/result?format=json"),
        "alice",
    );
    assert_eq!(status, 200);
    assert!(text["text"]
        .as_str()
        .unwrap()
        .contains("ask not what your country"));
}

fn ws_as(s: &Server, path: &str, key: &str) -> Client {
    use tungstenite::client::IntoClientRequest;
    let url = s.url(path).replacen("http", "ws", 1);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-api-key", format!("{key}-key").parse().unwrap());
    Client::connect_with(request).unwrap()
}

#[test]
fn per_key_limits_apply_and_sighup_changes_keys_without_dropping_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("keys.toml");
    let keys: [(&str, &[&str], &str); 4] = [
        ("alice", &["transcribe"], "rate_limit_per_minute = 3"),
        ("bob", &["live", "transcribe"], ""),
        (
            "dana",
            &["jobs", "live"],
            "max_sessions = 1\nmax_job_bytes = 4096",
        ),
        ("erin", &["transcribe", "live"], "audio_seconds_per_day = 5"),
    ];
    write_keys(&conf, &keys);
    let s = Server::start(&[
        "--config",
        conf.to_str().unwrap(),
        "--preload",
        "whisper-base",
    ]);
    // Each key at its own rate: alice's third request in the minute is her last.
    let statuses: Vec<u16> = (0..4)
        .map(|_| call(&s, "GET", "/v1/models", "alice").0)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
    for _ in 0..10 {
        assert_eq!(call(&s, "GET", "/v1/models", "bob").0, 200);
    }
    // Dana's uploads and sessions are bounded below the server's.
    let (status, _, body) = submit(
        &s,
        &[("x-api-key", "dana-key")],
        &[],
        Some(("jfk.wav", &jfk())),
    );
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("4096"),
        "{body}"
    );
    s.wait_ready_with_key("whisper-base", "bob-key");
    let mut first = ws_as(&s, "/v1/ws?language=en", "dana");
    first.wait_for(Duration::from_secs(30), |r| !r.is_empty());
    assert_eq!(first.received[0].1["type"], "ready");
    let mut second = ws_as(&s, "/v1/ws?language=en", "dana");
    second.wait_for(Duration::from_secs(30), |r| !r.is_empty());
    assert_eq!(
        second.received[0].1["code"], "session_limit",
        "{:?}",
        second.received
    );
    assert_eq!(second.wait_closed(Duration::from_secs(10)), 1013);

    // Erin's quota: the request that crosses it completes, the next is refused until tomorrow.
    let transcribe = |key: &str| {
        let mut r = Server::agent()
            .post(&s.url("/v1/transcribe?language=en&format=json"))
            .header("x-api-key", format!("{key}-key"))
            .send(&jfk()[..])
            .unwrap();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let body: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        (r.status().as_u16(), retry, body)
    };
    let (status, _, body) = transcribe("erin");
    assert_eq!(status, 200, "{body}");
    for path in ["/v1/transcribe", "/v1/ws"] {
        let (status, body) = call(
            &s,
            if path == "/v1/ws" { "GET" } else { "POST" },
            path,
            "erin",
        );
        assert_eq!(status, 429, "{path}: {body}");
        assert_eq!(body["error"]["code"], "quota_exceeded");
    }
    let (status, retry, body) = transcribe("erin");
    assert_eq!(status, 429, "{body}");
    let retry: u64 = retry.unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("of its 5 audio seconds"),
        "{body}"
    );
    assert_eq!(
        transcribe("bob").0,
        200,
        "another key is not held by erin's quota"
    );

    // Bob's live session, open while the keys change.
    let mut session = ws_as(&s, "/v1/ws?language=en", "bob");
    session.wait_for(Duration::from_secs(30), |r| !r.is_empty());
    assert_eq!(
        session.received[0].1["type"], "ready",
        "{:?}",
        session.received
    );

    // Reload: bob is gone, carol is new, the others keep their limits.
    write_keys(
        &conf,
        &[keys[0], keys[2], keys[3], ("carol", &["transcribe"], "")],
    );
    signal(s.pid(), 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while call(&s, "GET", "/v1/models", "carol").0 != 200 {
        assert!(Instant::now() < deadline, "SIGHUP not applied");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(call(&s, "GET", "/v1/models", "bob").0, 401);
    // Usage is the key name's, so a reload does not reset a quota.
    assert_eq!(call(&s, "POST", "/v1/transcribe", "erin").0, 429);
    // The session opened with bob's key goes on to its final.
    let audio = glagol_core::audio::decode_file(
        &common::misc("jfk.wav"),
        &glagol_core::audio::AudioLimits::default(),
    )
    .unwrap()
    .samples;
    session.stream(&audio, false);
    session.send_text(r#"{"type":"stop"}"#);
    assert_eq!(session.wait_closed(Duration::from_secs(60)), 1000);
    let finals = session.of_type("final");
    let said: String = finals.iter().map(|f| f["text"].as_str().unwrap()).collect();
    assert!(said.to_lowercase().contains("country"), "{finals:?}");
    // Accounted to its key's name: the session lasted a few seconds.
    let deadline = Instant::now() + Duration::from_secs(10);
    let prefix = "glagol_key_live_session_seconds_total{key=\"bob\"}";
    while !s.metrics_text().contains(prefix) {
        assert!(Instant::now() < deadline, "no {prefix}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(metric(&s.metrics_text(), prefix) >= 1.0);
}
