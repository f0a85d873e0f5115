//! Durable jobs through the real server: submit, progress events, results
//! in every format, cancel, listing, idempotency, typed errors, signed
//! webhooks with retries, and a crash that loses nothing.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::hooks::{Receiver, Reply, SECRET};
use common::server::{jfk, multipart, Server};
use serde_json::Value;

/// POSTs a job; (status, headers we look at, body).
fn submit(
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
    let seen = ["location", "idempotent-replayed"]
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

fn accepted(s: &Server, fields: &[(&str, &str)], audio: &[u8]) -> String {
    let (status, _, job) = submit(s, &[], fields, Some(("a.wav", audio)));
    assert_eq!(status, 202, "{job}");
    job["id"].as_str().unwrap().to_string()
}

fn wait_status(s: &Server, id: &str, wanted: &[&str], limit: Duration) -> Value {
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

/// The job's SSE events (id, event, data) until the stream ends.
fn events(s: &Server, id: &str, last_event_id: Option<u64>) -> Vec<(u64, String, Value)> {
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

fn text(s: &Server, path: &str) -> (u16, String) {
    let mut r = Server::agent().get(&s.url(path)).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

fn delete(s: &Server, path: &str) -> (u16, Value) {
    let mut r = Server::agent().delete(&s.url(path)).call().unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null),
    )
}

/// Russian speech of at least `seconds`, as WAV bytes.
fn long_audio(seconds: f64) -> Vec<u8> {
    let clips: Vec<_> = common::golos().into_iter().map(|(p, _)| p).collect();
    let (samples, _) = common::joined_recording(&clips, seconds);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.wav");
    common::write_wav(&path, &samples, 16_000);
    std::fs::read(path).unwrap()
}

#[test]
fn a_job_streams_progress_and_serves_its_result_in_every_format() {
    let s = Server::start(&[]);
    let (status, headers, job) = submit(
        &s,
        &[],
        &[
            ("model", "whisper-base"),
            ("language", "en"),
            ("metadata", r#"{"order": 7}"#),
        ],
        Some(("jfk.wav", &jfk())),
    );
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    assert_eq!(headers["location"], format!("/v1/jobs/{id}"));
    assert_eq!(job["metadata"]["order"], 7);
    assert_eq!(job["file"]["bytes"], jfk().len() as u64);

    let all = events(&s, id, None);
    let kinds: Vec<&str> = all.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(&kinds[..2], ["queued", "started"], "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"done"), "{kinds:?}");
    assert!(kinds.contains(&"segment"), "{kinds:?}");
    assert!(
        all.windows(2).all(|w| w[0].0 < w[1].0),
        "event ids increase"
    );
    let percents: Vec<f64> = all
        .iter()
        .filter(|(_, k, _)| k == "progress")
        .map(|(_, _, d)| d["percent"].as_f64().unwrap())
        .collect();
    assert!(percents.len() >= 2, "{percents:?}");
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    let (_, _, done) = all.last().unwrap();
    assert_eq!(done["status"], "done");
    assert_eq!(done["metadata"]["order"], 7);

    // Last-Event-ID resumes after the event named; a finished job's stream ends.
    let resumed = events(&s, id, Some(all[2].0));
    assert_eq!(resumed, all[3..].to_vec());

    let (code, txt) = text(&s, &format!("/v1/jobs/{id}/result?format=txt"));
    assert_eq!(code, 200);
    assert!(
        txt.contains("ask not what your country can do for you"),
        "{txt}"
    );
    let (_, json) = s.get(&format!("/v1/jobs/{id}/result?format=json"));
    assert_eq!(json["text"].as_str().unwrap().trim(), txt.trim());
    let (_, verbose) = s.get(&format!("/v1/jobs/{id}/result"));
    assert_eq!(verbose["model"], "whisper-base");
    assert!(verbose["segments"].as_array().unwrap().len() >= 2);
    let (_, srt) = text(&s, &format!("/v1/jobs/{id}/result?format=srt"));
    assert!(srt.starts_with("1\n00:00:00,000 --> "), "{srt}");
    let (_, vtt) = text(&s, &format!("/v1/jobs/{id}/result?format=vtt"));
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");

    // The audio is deleted when the job ends (default retention).
    let start = Instant::now();
    loop {
        let (_, job) = s.get(&format!("/v1/jobs/{id}"));
        assert_eq!(job["progress"]["percent"], 100.0);
        if job["file"]["stored"] == false {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "audio kept: {job}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, health) = s.get("/health");
    assert_eq!(health["jobs"]["queued"], 0, "{health}");

    let (code, err) = delete(&s, &format!("/v1/jobs/{id}"));
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (409, Some("job_finished"))
    );
    let (code, gone) = delete(&s, &format!("/v1/jobs/{id}?purge=true"));
    assert_eq!((code, &gone["deleted"]), (200, &Value::Bool(true)));
    let (code, err) = s.get(&format!("/v1/jobs/{id}"));
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (404, Some("job_not_found"))
    );
}

#[test]
fn jobs_are_cancelled_queued_at_once_and_running_at_the_next_segment() {
    let s = Server::start(&["--job-concurrency", "1"]);
    let audio = long_audio(60.0);
    let first = accepted(&s, &[("language", "ru")], &audio);
    wait_status(&s, &first, &["running"], Duration::from_secs(60));
    let second = accepted(&s, &[("language", "ru")], &audio);
    let (code, job) = s.get(&format!("/v1/jobs/{second}"));
    assert_eq!((code, job["status"].as_str()), (200, Some("queued")));
    let (_, result) = s.get(&format!("/v1/jobs/{second}/result"));
    assert_eq!(result["error"]["code"], "job_not_done");

    let (code, job) = delete(&s, &format!("/v1/jobs/{second}"));
    assert_eq!((code, job["status"].as_str()), (200, Some("cancelled")));
    let (code, job) = delete(&s, &format!("/v1/jobs/{first}"));
    assert_eq!(code, 202, "{job}");
    assert_eq!(job["cancel_requested"], true);
    let job = wait_status(&s, &first, &["cancelled", "done"], Duration::from_secs(60));
    assert_eq!(job["status"], "cancelled", "{job}");
    let tail = events(&s, &first, None);
    assert_eq!(tail.last().unwrap().1, "cancelled");
    let tail = events(&s, &second, None);
    let kinds: Vec<&str> = tail.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["queued", "cancelled"]);
}

/// Form fields, the file, and the status and error code expected.
type Case<'a> = (
    Vec<(&'a str, &'a str)>,
    Option<(&'a str, &'a [u8])>,
    u16,
    &'a str,
);

#[test]
fn listing_idempotency_and_bad_submissions() {
    let s = Server::start(&["--max-job-bytes", "400000", "--job-concurrency", "1"]);
    let audio = jfk();
    let mut ids: Vec<String> = (0..3)
        .map(|_| accepted(&s, &[("language", "en")], &audio))
        .collect();
    ids.reverse();
    let (_, page) = s.get("/v1/jobs?limit=2");
    assert_eq!(page["has_more"], true);
    let last = page["last_id"].as_str().unwrap().to_string();
    let (_, rest) = s.get(&format!("/v1/jobs?limit=2&after={last}"));
    let listed: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["data"].as_array().unwrap())
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);
    assert_eq!(rest["has_more"], false);
    let (_, none) = s.get("/v1/jobs?model=gigaam-tiny");
    assert_eq!(none["data"].as_array().unwrap().len(), 0);

    let key = [("idempotency-key", "order-42")];
    let (a, _, first) = submit(&s, &key, &[], Some(("a.wav", &audio)));
    let (b, headers, again) = submit(&s, &key, &[], Some(("a.wav", &audio)));
    assert_eq!((a, b), (202, 202));
    assert_eq!(first["id"], again["id"]);
    assert_eq!(headers["idempotent-replayed"], "true");
    let (code, _, reused) = submit(&s, &key, &[("language", "de")], Some(("a.wav", &audio)));
    assert_eq!(
        (code, reused["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );

    let wav = Some(("a.wav", &audio[..]));
    let refused = |fields: &[(&str, &str)], file: Option<(&str, &[u8])>| {
        let (code, _, body) = submit(&s, &[], fields, file);
        (
            code,
            body["error"]["code"].as_str().unwrap_or("").to_string(),
        )
    };
    let cases: Vec<Case> = vec![
        (
            vec![("model", "no-such-model")],
            wav,
            404,
            "model_not_found",
        ),
        (vec![("language", "en")], None, 400, "invalid_request"),
        (vec![("metadata", "[1, 2]")], wav, 400, "invalid_metadata"),
        (
            vec![("metadata", "{not json")],
            wav,
            400,
            "invalid_metadata",
        ),
        (
            vec![("webhook_url", "ftp://example.com/x")],
            wav,
            400,
            "invalid_webhook_url",
        ),
        (
            vec![("webhook_url", "http://127.0.0.1:9/hook")],
            wav,
            400,
            "invalid_webhook_url",
        ),
        (
            vec![("webhook_url", "http://169.254.169.254/")],
            wav,
            400,
            "invalid_webhook_url",
        ),
        (vec![("priority", "1000")], wav, 400, "invalid_request"),
        (vec![("task", "summarise")], wav, 400, "invalid_request"),
        (
            vec![],
            Some(("big.wav", &[0u8; 500_000][..])),
            413,
            "payload_too_large",
        ),
        (vec![], Some(("empty.wav", &[][..])), 400, "empty_file"),
    ];
    for (fields, file, code, error) in cases {
        assert_eq!(
            refused(&fields, file),
            (code, error.to_string()),
            "{fields:?}"
        );
    }
    let big_metadata = format!(r#"{{"x": "{}"}}"#, "a".repeat(17_000));
    assert_eq!(
        refused(&[("metadata", &big_metadata)], wav),
        (400, "invalid_metadata".to_string())
    );
    // Not multipart at all.
    let mut r = Server::agent()
        .post(&s.url("/v1/jobs"))
        .header("content-type", "audio/wav")
        .send(&audio[..])
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(body["error"]["code"].is_string(), "{body}");
    let (code, err) = s.get("/v1/jobs/job_nope");
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (404, Some("job_not_found"))
    );
    let (code, _) = s.get("/v1/jobs?status=bogus");
    assert_eq!(code, 400);
    for id in &ids {
        wait_status(&s, id, &["done"], Duration::from_secs(120));
    }
}

#[test]
fn webhooks_are_signed_and_retried_until_one_is_delivered() {
    let hook = Receiver::start(vec![
        Reply::Status(500),
        Reply::Status(500),
        Reply::Hang(Duration::from_secs(3)),
    ]);
    let models = Receiver::start(vec![]);
    let s = Server::start(&[
        "--model-events-webhook",
        &models.url,
        "--webhook-allow-private",
        "--webhook-secret",
        SECRET,
        "--webhook-timeout",
        "1",
        "--webhook-retries",
        "0.2,0.2,0.2,0.2",
    ]);
    let id = accepted(
        &s,
        &[
            ("language", "en"),
            ("webhook_url", &hook.url),
            ("metadata", r#"{"who": "test"}"#),
        ],
        &jfk(),
    );
    let got = hook.wait_for(Duration::from_secs(120), |got| {
        got.iter().any(|r| r.answered == 200)
    });
    assert_eq!(
        got.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 500, 0, 200]
    );
    let ids: std::collections::HashSet<_> = got.iter().map(|r| &r.headers["webhook-id"]).collect();
    assert_eq!(ids.len(), 1, "webhook-id is stable across retries");
    for r in &got {
        assert!(r.verify(SECRET), "signature: {:?}", r.headers);
        assert!(!r.verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    }
    let body = got[3].json();
    assert_eq!(body["type"], "job.done");
    assert_eq!(body["data"]["id"], id.as_str());
    assert_eq!(body["data"]["metadata"]["who"], "test");
    let start = Instant::now();
    loop {
        let (_, job) = s.get(&format!("/v1/jobs/{id}"));
        let delivery = &job["webhooks"][0];
        if delivery["state"] == "delivered" {
            assert_eq!(delivery["attempts"], 4, "{job}");
            assert_eq!(delivery["last_status"], 200);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{job}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The job loaded its model: subscribers hear of it, signed the same way.
    let got = models.wait_for(Duration::from_secs(30), |got| !got.is_empty());
    let ready = got[0].json();
    assert!(got[0].verify(SECRET));
    assert_eq!(ready["type"], "model.ready", "{ready}");
    assert_eq!(ready["data"]["model"], "whisper-base");
}

#[test]
fn finished_jobs_expire_after_their_retention() {
    let s = Server::start(&["--job-result-retention", "1"]);
    let id = accepted(&s, &[("language", "en")], &jfk());
    wait_status(&s, &id, &["done"], Duration::from_secs(120));
    let start = Instant::now();
    loop {
        let (code, _) = s.get(&format!("/v1/jobs/{id}"));
        if code == 404 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "job kept");
        std::thread::sleep(Duration::from_millis(200));
    }
    let results = s.glagol.data.path().join("jobs/results");
    assert_eq!(std::fs::read_dir(results).unwrap().count(), 0);
}

#[test]
fn a_crash_loses_no_accepted_job() {
    let hook = Receiver::start(vec![]);
    let args = [
        "--job-concurrency",
        "1",
        "--webhook-allow-private",
        "--webhook-secret",
        SECRET,
    ];
    let s = Server::start(&args);
    let audio = long_audio(40.0);
    let ids: Vec<String> = (0..5)
        .map(|_| {
            accepted(
                &s,
                &[("language", "ru"), ("webhook_url", &hook.url)],
                &audio,
            )
        })
        .collect();
    // Kill the server while the first job is part way through.
    let start = Instant::now();
    loop {
        let (_, job) = s.get(&format!("/v1/jobs/{}", ids[0]));
        if job["status"] == "running" && job["progress"]["segments_done"].as_u64() > Some(0) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{job}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = Server::start_with(s.crash(), &args);
    for id in &ids {
        let job = wait_status(
            &s,
            id,
            &["done", "failed", "cancelled"],
            Duration::from_secs(300),
        );
        assert_eq!(job["status"], "done", "{job}");
        let (code, txt) = text(&s, &format!("/v1/jobs/{id}/result?format=txt"));
        assert_eq!(code, 200);
        assert!(!txt.trim().is_empty());
    }
    let (_, interrupted) = s.get(&format!("/v1/jobs/{}", ids[0]));
    assert_eq!(interrupted["attempt"], 2, "{interrupted}");
    let got = hook.wait_for(Duration::from_secs(60), |got| {
        let delivered: std::collections::HashSet<_> =
            got.iter().map(|r| r.json()["data"]["id"].clone()).collect();
        delivered.len() >= ids.len()
    });
    // At least once: deduplicated by webhook-id, one `job.done` per job.
    let mut by_id = BTreeMap::new();
    for r in &got {
        assert!(r.verify(SECRET));
        by_id.insert(r.headers["webhook-id"].clone(), r.json());
    }
    let mut jobs: Vec<String> = by_id
        .values()
        .map(|b| {
            assert_eq!(b["type"], "job.done");
            b["data"]["id"].as_str().unwrap().to_string()
        })
        .collect();
    jobs.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(jobs, want);
}

#[test]
fn the_cli_submits_waits_lists_and_fetches() {
    let s = Server::start(&[]);
    let jfk_path = common::misc("jfk.wav");
    let out = common::ok(s.glagol.run(&[
        "jobs",
        "--server",
        &s.base,
        "submit",
        jfk_path.to_str().unwrap(),
        "--language",
        "en",
        "--wait",
    ]));
    assert!(
        out.contains("ask not what your country can do for you"),
        "{out}"
    );
    let listed = common::ok(s.glagol.run(&["jobs", "--server", &s.base, "list"]));
    let id = listed.split_whitespace().next().unwrap().to_string();
    assert!(
        listed.contains("done") && listed.contains("jfk.wav"),
        "{listed}"
    );
    let srt = common::ok(s.glagol.run(&[
        "jobs", "--server", &s.base, "result", &id, "--format", "srt",
    ]));
    assert!(srt.contains(" --> "), "{srt}");
    let got: Value = serde_json::from_str(&common::ok(
        s.glagol.run(&["jobs", "--server", &s.base, "get", &id]),
    ))
    .unwrap();
    assert_eq!(got["status"], "done");
    let watched = common::ok(s.glagol.run(&["jobs", "--server", &s.base, "watch", &id]));
    assert!(watched.contains("done"), "{watched}");
    let refused = s.glagol.run(&["jobs", "--server", &s.base, "cancel", &id]);
    assert!(!refused.status.success());
    assert!(common::stderr(&refused).contains("job_finished"));
}

#[test]
fn sigterm_hands_running_jobs_back_for_the_next_start() {
    let s = Server::start(&[]);
    let id = accepted(&s, &[("language", "ru")], &long_audio(60.0));
    let start = Instant::now();
    loop {
        let (_, job) = s.get(&format!("/v1/jobs/{id}"));
        if job["status"] == "running" && job["progress"]["segments_done"].as_u64() > Some(0) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{job}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut s = s;
    common::server::signal(s.pid(), 15);
    let exit = s.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let s = Server::start_with(s.crash(), &[]);
    let job = wait_status(&s, &id, &["done", "failed"], Duration::from_secs(180));
    // Handed back, not interrupted: the attempt was not counted.
    assert_eq!(
        (job["status"].as_str(), job["attempt"].as_u64()),
        (Some("done"), Some(1)),
        "{job}"
    );
    let reasons: Vec<String> = events(&s, &id, None)
        .into_iter()
        .filter(|(_, k, _)| k == "queued")
        .filter_map(|(_, _, d)| d["reason"].as_str().map(String::from))
        .collect();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("server stopped"), "{reasons:?}");
}
