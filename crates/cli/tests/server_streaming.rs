//! File transcription streamed while the engine runs: on a long recording,
//! the first results reach the client long before recognition ends.

mod common;

use std::path::PathBuf;

use common::server::Server;
use serde_json::Value;

/// A ≥ 60 s recording of several utterances, written to a WAV file.
fn long_wav(dir: &std::path::Path, clips: &[PathBuf]) -> PathBuf {
    let (audio, spans) = common::joined_recording(clips, 60.0);
    assert!(spans.len() >= 5);
    let path = dir.join("long.wav");
    common::write_wav(&path, &audio, 16_000);
    path
}

#[test]
fn openai_client_stream_gets_its_first_delta_while_later_segments_are_still_decoded() {
    let s = Server::start(&["--preload", "whisper-base"]);
    s.wait_ready("whisper-base");
    let dir = tempfile::tempdir().unwrap();
    let wav = long_wav(dir.path(), &[common::misc("jfk.wav")]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_stream.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(format!("{}/v1", s.base))
        .arg(&wav)
        .arg(s.metrics.as_ref().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let deltas: Vec<&str> = v["deltas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(deltas.len() >= 5, "{v}");
    assert_eq!(deltas.concat(), v["done"].as_str().unwrap());
    assert!(common::normalize(v["done"].as_str().unwrap())
        .contains("ask not what your country can do for you"));
    // The server went on decoding segments after the first delta arrived.
    let (first, end) = (
        v["at_first_delta"].as_f64().unwrap(),
        v["at_end"].as_f64().unwrap(),
    );
    assert!(
        end >= first + 3.0,
        "segments decoded: {first} at the first delta, {end} at the end"
    );
    assert_eq!(
        v["kinds"].as_array().unwrap().last().unwrap(),
        "transcript.text.done"
    );
}

#[test]
fn native_sse_sends_segments_as_decoded_with_progress_after_the_first() {
    let s = Server::start(&["--preload", "gigaam-tiny"]);
    s.wait_ready("gigaam-tiny");
    let dir = tempfile::tempdir().unwrap();
    let clips: Vec<PathBuf> = common::golos().into_iter().map(|(p, _)| p).collect();
    let wav = long_wav(dir.path(), &clips);
    let audio = std::fs::read(&wav).unwrap();
    let mut r = Server::agent()
        .post(&s.url("/v1/transcribe/stream?model=gigaam-tiny"))
        .send(&audio[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body = r.body_mut().read_to_string().unwrap();
    let mut events: Vec<(String, Value)> = Vec::new();
    let mut name = String::new();
    for line in body.lines() {
        if let Some(n) = line.strip_prefix("event: ") {
            name = n.to_string();
        } else if let Some(d) = line.strip_prefix("data: ") {
            events.push((name.clone(), serde_json::from_str(d).unwrap()));
        }
    }
    let first_segment = events
        .iter()
        .position(|(n, _)| n == "segment")
        .expect("no segment");
    let later_progress = events[first_segment..]
        .iter()
        .filter(|(n, p)| {
            n == "progress" && p["segments_done"].as_u64() < p["segments_total"].as_u64()
        })
        .count();
    assert!(
        later_progress >= 1,
        "recognition had finished before the first segment: {body}"
    );
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "done");
    let segments: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "segment")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(segments.len(), done["segments"].as_array().unwrap().len());
    let joined: Vec<&str> = segments
        .iter()
        .map(|s| s["text"].as_str().unwrap().trim())
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(joined.join(" "), done["text"].as_str().unwrap());
    let mut progress = events
        .iter()
        .filter(|(n, _)| n == "progress")
        .map(|(_, p)| p["progress"].as_f64().unwrap());
    let mut previous = 0.0;
    assert!(progress.all(|p| {
        let ok = p >= previous;
        previous = p;
        ok
    }));
    assert_eq!(previous, 1.0);
}
