//! `glagol bench stream` against the real server: every stream's clips are
//! found, and the file baseline is the server's own result for each clip.

mod common;

use common::server::Server;
use common::Glagol;
use serde_json::Value;

#[test]
fn bench_stream_measures_finals_against_the_same_servers_file_results() {
    let s = Server::start(&["--preload", "gigaam-tiny"]);
    s.wait_ready("gigaam-tiny");
    let clips: Vec<_> = common::golos().into_iter().take(2).collect();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.json");
    let entries: Vec<Value> = clips
        .iter()
        .map(|(p, r)| serde_json::json!({"filename": p, "reference": r}))
        .collect();
    std::fs::write(&manifest, serde_json::to_string(&entries).unwrap()).unwrap();
    let url = s
        .url("/v1/ws?model=gigaam-tiny&language=ru")
        .replace("http://", "ws://");
    let out = Glagol::new().run(&[
        "bench",
        "stream",
        "--manifest",
        manifest.to_str().unwrap(),
        "--url",
        &url,
        "--streams",
        "2",
        "--seconds",
        "1",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let report: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    // Each stream says each clip once, with its own pauses.
    assert_eq!(report["streams"], 2);
    assert_eq!(report["utterances"], 4);
    assert_eq!(report["utterances_without_final"], 0, "{report}");
    assert_eq!(report["finals_outside_speech"], 0, "{report}");
    assert!(report["partials"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["partial_lag_s"]["p95"].as_f64().is_some(),
        "{report}"
    );
    // The baseline: the clips as files, through the same server and model.
    let (mut errors, mut words) = (0, 0);
    for (path, reference) in &clips {
        let mut r = Server::agent()
            .post(&s.url("/v1/transcribe?model=gigaam-tiny&language=ru&format=json"))
            .send(&std::fs::read(path).unwrap()[..])
            .unwrap();
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        let (e, n) = glagol_core::wer::word_errors(reference, v["text"].as_str().unwrap());
        errors += e;
        words += n;
    }
    let file_wer = 100.0 * errors as f64 / words as f64;
    assert_eq!(report["words"], 2 * words);
    let reported = report["file_wer_percent"].as_f64().unwrap();
    assert!(
        (reported - file_wer).abs() < 0.01,
        "{reported} vs {file_wer}"
    );
    let finals = report["finals_wer_percent"].as_f64().unwrap();
    let gap = report["finals_wer_minus_file_wer"].as_f64().unwrap();
    assert!((finals - reported - gap).abs() < 0.02, "{report}");
}
