//! What durable jobs promise beyond the API: signed webhooks delivered
//! through failures, retention, no accepted job lost to a crash, and a
//! clean hand-back on SIGTERM.

mod common;

on_both_stores!(
    webhooks_are_signed_and_retried_until_one_is_delivered,
    finished_jobs_expire_after_their_retention,
    a_crash_loses_no_accepted_job,
    sigterm_hands_running_jobs_back_for_the_next_start,
);

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::hooks::{Receiver, Reply, SECRET};
use common::jobs::{accepted, events, long_audio, text, wait_running_for, wait_status, Store};
use common::server::jfk;

fn webhooks_are_signed_and_retried_until_one_is_delivered(store: &Store) {
    let hook = Receiver::start(vec![
        Reply::Status(500),
        Reply::Status(500),
        Reply::Hang(Duration::from_secs(3)),
    ]);
    let models = Receiver::start(vec![]);
    let s = store.start(&[
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

fn finished_jobs_expire_after_their_retention(store: &Store) {
    let s = store.start(&["--job-result-retention", "1"]);
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

fn a_crash_loses_no_accepted_job(store: &Store) {
    let hook = Receiver::start(vec![]);
    let args = [
        "--job-concurrency",
        "1",
        "--webhook-allow-private",
        "--webhook-secret",
        SECRET,
    ];
    let s = store.start(&args);
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
    // Kill the server while the first job is part way through (recognising
    // 40 s takes this machine several seconds).
    wait_running_for(&s, &ids[0], Duration::from_secs(1));
    let s = store.restart(s.crash(), &args);
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

fn sigterm_hands_running_jobs_back_for_the_next_start(store: &Store) {
    let s = store.start(&[]);
    let id = accepted(&s, &[("language", "ru")], &long_audio(60.0));
    wait_running_for(&s, &id, Duration::from_secs(1));
    let mut s = s;
    common::server::signal(s.pid(), 15);
    let exit = s.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let s = store.restart(s.crash(), &[]);
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
    // Handed back once, and never requeued as interrupted. (A model still
    // loading or waiting for memory may also hand the job back, with its own
    // reason: that is the runner's deferral, not what this test is about.)
    let stopped = reasons
        .iter()
        .filter(|r| r.contains("server stopped"))
        .count();
    assert_eq!(stopped, 1, "{reasons:?}");
    assert!(
        !reasons
            .iter()
            .any(|r| r.contains("node running it stopped")),
        "{reasons:?}"
    );
}

/// A receiver behind a private CA is reached once `--webhook-ca-file`
/// names that CA; one whose CA is not named is never trusted, and its
/// delivery says why.
#[test]
fn webhooks_reach_receivers_of_a_private_ca_named_by_webhook_ca_file() {
    let (ca_pem, tls) = common::hooks::private_ca();
    let trusted = Receiver::start_tls(vec![], tls);
    let (_, stranger_tls) = common::hooks::private_ca();
    let stranger = Receiver::start_tls(vec![], stranger_tls);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let s = Store::sqlite().start(&[
        "--webhook-allow-private",
        "--webhook-secret",
        SECRET,
        "--webhook-ca-file",
        ca.to_str().unwrap(),
        "--webhook-retries",
        "0.2",
    ]);
    let good = accepted(
        &s,
        &[("language", "en"), ("webhook_url", &trusted.url)],
        &jfk(),
    );
    let bad = accepted(
        &s,
        &[("language", "en"), ("webhook_url", &stranger.url)],
        &jfk(),
    );
    let got = trusted.wait_for(Duration::from_secs(120), |got| !got.is_empty());
    assert!(got[0].verify(SECRET), "{:?}", got[0].headers);
    assert_eq!(got[0].json()["data"]["id"], good.as_str());
    let start = Instant::now();
    let delivery = loop {
        let (_, job) = s.get(&format!("/v1/jobs/{bad}"));
        if job["webhooks"][0]["state"] == "gave_up" {
            break job["webhooks"][0].clone();
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{job}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(delivery["attempts"], 2, "{delivery}");
    let error = delivery["last_error"].as_str().unwrap_or("").to_lowercase();
    assert!(error.contains("certificate"), "{delivery}");
    assert!(stranger.received().is_empty());
}

/// A CA file that cannot be used stops the start with a message naming it.
#[test]
fn an_unusable_webhook_ca_file_stops_the_start_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    for (file, reason) in [
        (dir.path().join("missing.pem"), "missing.pem"),
        (junk, "no PEM certificate"),
    ] {
        let out = common::Glagol::new().run(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--webhook-ca-file",
            file.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("CA file") && stderr.contains(reason),
            "{stderr}"
        );
    }
}
