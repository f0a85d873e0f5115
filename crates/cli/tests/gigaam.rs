//! GigaAM v3 against the reference implementation's outputs on the
//! synthetic stand-in models (`shared/models/gigaam-v3-synthetic-tiny`).

mod common;

use std::path::{Path, PathBuf};

use common::{ok, Glagol};
use glagol_core::audio::{decode_file, AudioLimits};
use glagol_core::engine::gigaam::GigaamEngine;
use glagol_core::engine::{Engine, EngineConfig, Request, TranscribeOptions, Transcript};
use serde_json::Value;

fn model_dir() -> PathBuf {
    common::assets().join("models/gigaam-v3-synthetic-tiny")
}

fn expected() -> Vec<Value> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir().join("expected.json")).unwrap())
            .unwrap();
    v["files"].as_array().unwrap().clone()
}

fn golos_path(name: &str) -> PathBuf {
    common::assets().join("fixtures/ru-golos").join(name)
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn all_tokens(t: &Value) -> Vec<i64> {
    t["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| ids(&s["tokens"]))
        .collect()
}

fn cli_verbose(model: &Path, extra: &[&str]) -> Vec<Value> {
    let g = Glagol::new();
    let mut args: Vec<String> = vec![
        "transcribe".into(),
        "--model".into(),
        model.display().to_string(),
        "-f".into(),
        "verbose_json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    for e in expected() {
        args.push(
            golos_path(e["file"].as_str().unwrap())
                .display()
                .to_string(),
        );
    }
    ok(g.cmd().args(&args).output().unwrap())
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn rnnt_is_token_exact_through_the_cli() {
    let out = cli_verbose(&model_dir(), &["--word-timestamps"]);
    for (got, want) in out.iter().zip(expected()) {
        let name = want["file"].as_str().unwrap();
        assert_eq!(all_tokens(got), ids(&want["rnnt"]["token_ids"]), "{name}");
        assert_eq!(got["text"], want["rnnt"]["text"], "{name}");
        assert_eq!(got["language"], "russian");
        // Words are the text split at spaces, timed by their tokens.
        let words: Vec<&str> = got["words"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["word"].as_str().unwrap())
            .collect();
        assert_eq!(words.join(" "), got["text"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn ctc_is_token_exact_through_the_cli() {
    let out = cli_verbose(&model_dir().join("v3_e2e_ctc.onnx"), &[]);
    for (got, want) in out.iter().zip(expected()) {
        let name = want["file"].as_str().unwrap();
        assert_eq!(all_tokens(got), ids(&want["ctc"]["token_ids"]), "{name}");
        assert_eq!(got["text"], want["ctc"]["text"], "{name}");
    }
}

fn engine(path: &Path, max_batch: usize) -> GigaamEngine {
    let config = EngineConfig {
        threads: 1,
        max_batch,
        ..Default::default()
    };
    GigaamEngine::load("synthetic", path, &config).unwrap()
}

fn transcribe_all(engine: &GigaamEngine, audios: &[Vec<f32>]) -> Vec<Transcript> {
    let options = TranscribeOptions {
        word_timestamps: true,
        ..Default::default()
    };
    let requests: Vec<Request> = audios
        .iter()
        .map(|a| Request {
            audio: a,
            options: &options,
        })
        .collect();
    engine
        .transcribe_batch(&requests)
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

/// Token-exact equality: same text, tokens, token times and word timings.
/// Scores may differ in the last bits (padded batches change the order of
/// floating-point sums), so they are compared with a tolerance.
fn assert_same_decoding(a: &[Transcript], b: &[Transcript]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.text, y.text);
        assert_eq!(x.segments.len(), y.segments.len());
        for (s, t) in x.segments.iter().zip(&y.segments) {
            assert_eq!(
                (&s.tokens, &s.token_times, s.start, s.end),
                (&t.tokens, &t.token_times, t.start, t.end)
            );
            assert!((s.avg_logprob - t.avg_logprob).abs() < 1e-3);
            assert_eq!(s.words.len(), t.words.len());
            for (v, w) in s.words.iter().zip(&t.words) {
                assert_eq!((&v.word, v.start, v.end), (&w.word, w.start, w.end));
                assert!((v.probability - w.probability).abs() < 1e-3);
            }
        }
    }
}

fn golos_audio() -> Vec<Vec<f32>> {
    expected()
        .iter()
        .map(|e| {
            decode_file(
                &golos_path(e["file"].as_str().unwrap()),
                &AudioLimits::default(),
            )
            .unwrap()
            .samples
        })
        .collect()
}

fn assert_matches_reference(got: &[Transcript], head: &str) {
    for (t, want) in got.iter().zip(expected()) {
        let name = want["file"].as_str().unwrap();
        let tokens: Vec<i64> = t
            .segments
            .iter()
            .flat_map(|s| s.tokens.iter().map(|&i| i as i64))
            .collect();
        assert_eq!(tokens, ids(&want[head]["token_ids"]), "{name} {head}");
        let times: Vec<f64> = t
            .segments
            .iter()
            .flat_map(|s| s.token_times.iter().copied())
            .collect();
        let want_times: Vec<f64> = want[head]["timestamps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(times.len(), want_times.len(), "{name} {head}");
        for (a, b) in times.iter().zip(&want_times) {
            assert!((a - b).abs() < 1e-6, "{name} {head}: token time {a} vs {b}");
        }
    }
}

#[test]
fn token_timestamps_and_batching_match_the_reference() {
    let audio = golos_audio();
    for (path, head) in [
        (model_dir(), "rnnt"),
        (model_dir().join("v3_e2e_ctc.onnx"), "ctc"),
    ] {
        let one = transcribe_all(&engine(&path, 1), &audio);
        assert_matches_reference(&one, head);
        // All eight files as one zero-padded encoder batch: identical.
        let batched = transcribe_all(&engine(&path, 8), &audio);
        assert_same_decoding(&one, &batched);
    }
}

#[test]
fn growing_audio_recognised_again_and_again_decodes_as_from_scratch() {
    // A live utterance: its partials hear ever longer prefixes, then its
    // final the whole; decodings after the first reuse the prediction
    // network's earlier outputs and must not change a token.
    let audio = golos_audio();
    let warm = engine(&model_dir(), 1);
    for clip in &audio {
        for quarter in 1..=4 {
            let prefix = clip[..clip.len() * quarter / 4].to_vec();
            transcribe_all(&warm, &[prefix]);
        }
    }
    let again = transcribe_all(&warm, &audio);
    assert_matches_reference(&again, "rnnt");
    assert_same_decoding(&again, &transcribe_all(&engine(&model_dir(), 1), &audio));
}

#[test]
fn max_tokens_per_step_comes_from_config_json() {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "v3_e2e_rnnt_encoder.onnx",
        "v3_e2e_rnnt_decoder.onnx",
        "v3_e2e_rnnt_joint.onnx",
        "v3_e2e_rnnt_vocab.txt",
    ] {
        std::os::unix::fs::symlink(model_dir().join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type":"gigaam","version":"v3","max_tokens_per_step":3}"#,
    )
    .unwrap();
    let got = transcribe_all(&engine(dir.path(), 4), &golos_audio());
    for (t, want) in got.iter().zip(expected()) {
        let tokens: Vec<i64> = t
            .segments
            .iter()
            .flat_map(|s| s.tokens.iter().map(|&i| i as i64))
            .collect();
        assert_eq!(
            tokens,
            ids(&want["rnnt_max_tokens_per_step_3"]["token_ids"]),
            "{}",
            want["file"]
        );
    }
}

/// ≥ 3 minutes: the Golos fixtures, repeated, separated by pauses.
fn long_recording() -> (Vec<f32>, Vec<(usize, usize)>) {
    let clips: Vec<PathBuf> = expected()
        .iter()
        .map(|e| golos_path(e["file"].as_str().unwrap()))
        .collect();
    common::joined_recording(&clips, 180.0)
}

#[test]
fn long_audio_is_split_at_pauses_with_every_chunk_in_order() {
    let (audio, spans) = long_recording();
    assert!(audio.len() >= 180 * 16_000);
    let e1 = engine(&model_dir(), 1);
    let chunks = e1.chunks(&audio).unwrap();
    // One chunk per fixture: every cut is inside a pause.
    assert_eq!(chunks.len(), spans.len(), "{chunks:?}");
    for ((cs, ce), (fs, fe)) in chunks.iter().zip(&spans) {
        assert!(
            *cs >= fs.saturating_sub(16_000) && *ce <= fe + 16_000,
            "chunk {cs}..{ce} vs fixture {fs}..{fe}"
        );
        assert!(ce - cs <= 20 * 16_000);
    }
    let long = transcribe_all(&e1, std::slice::from_ref(&audio)).remove(0);
    // Oracle: each chunk recognised alone; the long transcript must hold
    // every chunk's words, in order, shifted to the chunk's place.
    let pieces: Vec<Vec<f32>> = chunks.iter().map(|&(s, e)| audio[s..e].to_vec()).collect();
    let alone = transcribe_all(&e1, &pieces);
    let expected_text: Vec<&str> = alone
        .iter()
        .map(|t| t.text.as_str())
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(long.text, expected_text.join(" "));
    let mut nonempty = alone
        .iter()
        .zip(&chunks)
        .filter(|(t, _)| !t.segments.is_empty());
    for seg in &long.segments {
        let (t, &(s, _)) = nonempty.next().expect("more segments than chunks");
        let offset = s as f64 / 16_000.0;
        assert_eq!(seg.tokens, t.segments[0].tokens);
        assert!((seg.start - (t.segments[0].start + offset)).abs() < 1e-6);
    }
    // Timestamps are global and monotonic.
    let words: Vec<_> = long.segments.iter().flat_map(|s| s.words.iter()).collect();
    assert!(words.len() > 100);
    for w in words.windows(2) {
        assert!(
            w[0].start <= w[1].start && w[0].start <= w[0].end,
            "{:?}",
            w
        );
    }
    assert!(long.segments.last().unwrap().end > 170.0);
    // Batched chunks give the same result.
    let batched = transcribe_all(&engine(&model_dir(), 8), std::slice::from_ref(&audio));
    assert_same_decoding(std::slice::from_ref(&long), &batched);
}

#[test]
fn long_audio_through_the_cli_batched_equals_unbatched() {
    let (audio, _) = long_recording();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("long.wav");
    common::write_wav(&wav, &audio, 16_000);
    let g = Glagol::new();
    let model = model_dir();
    let run = |batch: &str| {
        ok(g.run(&[
            "transcribe",
            "--model",
            model.to_str().unwrap(),
            "--batch",
            batch,
            "-f",
            "srt",
            wav.to_str().unwrap(),
        ]))
    };
    let (one, eight) = (run("1"), run("8"));
    assert_eq!(one, eight);
    assert!(
        one.lines().filter(|l| l.contains(" --> ")).count() >= 25,
        "{one}"
    );
}

#[test]
fn gigaam_rejects_what_it_cannot_do() {
    let g = Glagol::new();
    let model = model_dir();
    let wav = golos_path("golos_00.wav");
    let out = g.run(&[
        "transcribe",
        "--model",
        model.to_str().unwrap(),
        "-l",
        "en",
        wav.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert!(common::stderr(&out).contains("Russian only"));
    let out = g.run(&[
        "transcribe",
        "--model",
        model.to_str().unwrap(),
        "--task",
        "translate",
        wav.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(7));
    // Without the runtime: the documented error.
    let out = g
        .cmd()
        .env("GLAGOL_ORT_LIB", "/nonexistent/libonnxruntime.so")
        .args([
            "transcribe",
            "--model",
            model.to_str().unwrap(),
            wav.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(common::stderr(&out).contains("glagol runtime install"));
}

#[test]
fn gigaam_imports_into_the_store_and_runs_by_name() {
    let g = Glagol::new();
    ok(g.run(&[
        "models",
        "import",
        model_dir().to_str().unwrap(),
        "--as",
        "gigaam-synthetic",
    ]));
    let list = ok(g.run(&["models", "list"]));
    assert!(
        list.lines()
            .any(|l| l.starts_with("gigaam-synthetic") && l.contains("gigaam")),
        "{list}"
    );
    let out = ok(g.run(&[
        "transcribe",
        "--model",
        "gigaam-synthetic",
        golos_path("golos_02.wav").to_str().unwrap(),
    ]));
    assert_eq!(out.trim(), expected()[2]["rnnt"]["text"].as_str().unwrap());
}
