//! `glagol serve` model lifecycle end to end: loading, unloading, idle TTL, queue limits, memory.

mod common;

use std::time::{Duration, Instant};

use common::server::{jfk, post_form, read, signal, subscribe_events, Server};

#[test]
fn load_unload_frees_memory_and_idle_ttl_unloads() {
    let s = Server::start(&["--idle-ttl", "2"]);
    let (status, v) = s.post_empty("/v1/models/whisper-base/load");
    assert_eq!(
        (status, v["status"].as_str()),
        (202, Some("load_initiated"))
    );
    s.wait_ready("whisper-base");
    let (status, v) = s.post_empty("/v1/models/whisper-base/load");
    assert_eq!((status, v["status"].as_str()), (200, Some("already_ready")));
    let (status, v) = s.post_empty("/v1/models/whisper-base/unload");
    assert_eq!(status, 200);
    let (before, after) = (
        v["rss_before_bytes"].as_u64().unwrap(),
        v["rss_after_bytes"].as_u64().unwrap(),
    );
    eprintln!(
        "unload whisper-base: RSS {} MB -> {} MB",
        before / 1_000_000,
        after / 1_000_000
    );
    assert!(
        before > after + 50_000_000,
        "memory not returned: {before} -> {after}"
    );
    assert_eq!(s.get("/v1/models/whisper-base").1["state"], "unloaded");

    // Idle TTL: loaded, used once, then unloaded by itself.
    s.post_empty("/v1/models/gigaam-tiny/load");
    s.wait_ready("gigaam-tiny");
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.get("/v1/models/gigaam-tiny").1["state"] != "unloaded" {
        assert!(Instant::now() < deadline, "idle model was not unloaded");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn queue_overflow_answers_busy() {
    let s = Server::start(&[
        "--workers",
        "1",
        "--queue-depth",
        "1",
        "--preload",
        "whisper-base",
    ]);
    s.wait_ready("whisper-base");
    let url = s.url("/v1/audio/transcriptions");
    let audio = jfk();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (url, audio) = (url.clone(), audio.clone());
            std::thread::spawn(move || {
                post_form(&url, &[], &[("language", "en")], Some(("jfk.wav", &audio)))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let busy: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    assert!(
        ok >= 2 && !busy.is_empty(),
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(busy
        .iter()
        .all(|r| r.2.contains("\"busy\"") && r.1.is_some()));
}

#[test]
fn a_load_that_does_not_fit_waits_for_memory_and_others_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("glagol.toml");
    // Whisper base needs ~220 MB by the estimate; GigaAM-tiny ~1 MB.
    std::fs::write(&conf, "memory_limit_mb = 200\n").unwrap();
    let s = Server::start(&[
        "--config",
        conf.to_str().unwrap(),
        "--memory-retry",
        "1",
        "--wait-for-load",
    ]);
    let events = subscribe_events(&s);
    let (status, _) = s.post_empty("/v1/models/whisper-base/load");
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = s.get("/v1/models/whisper-base");
        if v["state"] == "waiting_for_memory" {
            assert!(v["error"].as_str().unwrap().contains("memory limit"), "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "never waited for memory: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _, body) = post_form(
        &s.url("/v1/audio/transcriptions"),
        &[],
        &[("model", "whisper-base")],
        Some(("jfk.wav", &jfk())),
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("waiting for memory"), "{body}");

    // Another model that fits loads and serves meanwhile.
    let golos = read(&common::assets().join("fixtures/ru-golos/golos_00.wav"));
    let (status, _, body) = post_form(
        &s.url("/v1/audio/transcriptions"),
        &[],
        &[("model", "gigaam-tiny")],
        Some(("golos_00.wav", &golos)),
    );
    assert_eq!(status, 200, "{body}");

    // Raising the limit (SIGHUP) lets the waiting load through.
    std::fs::write(&conf, "memory_limit_mb = 100000\n").unwrap();
    signal(s.pid(), 1);
    s.wait_ready("whisper-base");
    let mut seen = Vec::new();
    while let Ok((event, data)) = events.recv_timeout(Duration::from_secs(5)) {
        seen.push(format!("{event}:{}", data["model"].as_str().unwrap_or("")));
        if event == "model_ready" && data["model"] == "whisper-base" {
            break;
        }
    }
    let position = |e: &str| seen.iter().position(|s| s == e);
    let waiting = position("model_waiting_for_memory:whisper-base");
    let ready = position("model_ready:whisper-base");
    assert!(
        waiting.is_some() && ready.is_some() && waiting < ready,
        "events: {seen:?}"
    );
    assert!(
        seen.contains(&"model_ready:gigaam-tiny".to_string()),
        "{seen:?}"
    );
}
