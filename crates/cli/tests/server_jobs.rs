//! Durable jobs through the real server's API: submit, progress events,
//! results in every format, cancel, listing, idempotency, typed errors, and
//! the `glagol jobs` client.

mod common;

on_both_stores!(
    a_job_streams_progress_and_serves_its_result_in_every_format,
    jobs_are_cancelled_queued_at_once_and_running_at_the_next_segment,
    listing_idempotency_and_bad_submissions,
    the_cli_submits_waits_lists_and_fetches,
);

use std::time::{Duration, Instant};

use common::jobs::{accepted, delete, events, long_audio, submit, text, wait_status, Store};
use common::server::{jfk, Server};
use serde_json::Value;

fn a_job_streams_progress_and_serves_its_result_in_every_format(store: &Store) {
    let s = store.start(&[]);
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
    // Resumed at or past the end (a browser reconnecting after `done`), it
    // ends at once instead of waiting for events that will never come.
    for last in [all.last().unwrap().0, i32::MAX as u64] {
        let started = Instant::now();
        assert_eq!(events(&s, id, Some(last)), vec![]);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "resumed at {last}"
        );
    }

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

fn jobs_are_cancelled_queued_at_once_and_running_at_the_next_segment(store: &Store) {
    let s = store.start(&["--job-concurrency", "1"]);
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

fn listing_idempotency_and_bad_submissions(store: &Store) {
    let s = store.start(&["--max-job-bytes", "400000", "--job-concurrency", "1"]);
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

fn the_cli_submits_waits_lists_and_fetches(store: &Store) {
    let s = store.start(&[]);
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
