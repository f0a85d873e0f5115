//! `glagol bench stream`: live-transcription latency and capacity against a
//! running server's `/v1/ws`, with the definitions of
//! `../shared/design/streaming.md`.
//!
//! Each stream sends a recording made of the manifest's clips joined by
//! pauses, as a microphone would: each 100 ms frame when its audio has
//! "happened" (frame i at i+1 × 100 ms). Speech onset and end of each clip
//! are where the offline VAD (500 ms silence) finds them. Per utterance:
//! onset → first non-empty partial (and → first partial of any text, which
//! separates the pipeline from when the model first says something), end of
//! speech → final; per partial:
//! lag (arrival − when the last audio it covered was spoken) and the words
//! it retracted; per run: finals WER (and, given `--file-wer`, the same
//! clips' file WER for the difference). Several `--streams` values give
//! the capacity curve; the JSON has one object per value.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use glagol_core::audio::{self, AudioLimits};
use glagol_core::vad::{speech_segments, VadConfig, VadModel};
use glagol_core::wer;
use serde_json::{json, Value};
use tungstenite::Message;

use crate::live_client;

#[derive(clap::Args)]
pub struct Args {
    /// Manifest JSON of the clips (`filename`, `reference`).
    #[arg(long)]
    manifest: PathBuf,
    /// The server's live endpoint, with any query settings.
    #[arg(long, default_value = "ws://127.0.0.1:8765/v1/ws")]
    url: String,
    /// Concurrent streams per run (comma-separated for several runs).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    streams: Vec<usize>,
    /// Minimum recording length, seconds (the clips repeat).
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// The file WER of the same clips, to report finals WER minus it.
    #[arg(long)]
    file_wer: Option<f64>,
}

struct Clip {
    speech: (f64, f64),
    reference: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.manifest)
        .with_context(|| args.manifest.display().to_string())?;
    let entries: Vec<Value> = serde_json::from_str(&text)?;
    let dir = args.manifest.parent().unwrap_or(Path::new("."));
    let clips: Vec<(Vec<f32>, String)> = entries
        .iter()
        .map(|e| {
            let file = dir.join(e["filename"].as_str().unwrap_or_default());
            let audio = audio::decode_file(&file, &AudioLimits::default())?;
            Ok((
                audio.samples,
                e["reference"].as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let (recording, spans) = join(&clips, args.seconds);
    let vad = VadModel::embedded()?;
    let config = VadConfig {
        min_silence_ms: 500,
        ..Default::default()
    };
    let segments = speech_segments(&vad, &recording, config)?;
    let truth: Vec<Clip> = spans
        .iter()
        .map(|&(a, b, k)| {
            let mine: Vec<_> = segments
                .iter()
                .filter(|s| s.start < b && s.end > a)
                .collect();
            let (s, e) = match (mine.first(), mine.last()) {
                (Some(f), Some(l)) => (f.start, l.end),
                _ => (a, b),
            };
            Clip {
                speech: (s as f64 / 16_000.0, e as f64 / 16_000.0),
                reference: clips[k].1.clone(),
            }
        })
        .collect();
    // Streams start spread over one clip-and-pause period, so that their
    // utterances end at different moments, as independent callers' do (all
    // streams say the same clips: started together, every final would be
    // asked for at once).
    let period = recording.len() as f64 / 16_000.0 / spans.len() as f64;
    for &n in &args.streams {
        let started = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (url, audio) = (args.url.clone(), recording.clone());
                let delay = Duration::from_secs_f64(period * i as f64 / n as f64);
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    stream(&url, &audio)
                })
            })
            .collect();
        let runs: Vec<Vec<(f64, Value)>> = handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("a stream panicked"))?)
            .collect::<anyhow::Result<_>>()?;
        let report = measure(
            &runs,
            &truth,
            args.file_wer,
            n,
            started.elapsed().as_secs_f64(),
        );
        println!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The clips joined: 0.5 s lead, then each clip and a pause of 1.2–3.0 s,
/// repeated to at least `seconds`; spans are (start, end, clip index).
fn join(clips: &[(Vec<f32>, String)], seconds: f64) -> (Vec<f32>, Vec<(usize, usize, usize)>) {
    let mut audio = vec![0.0f32; 8_000];
    let mut spans = Vec::new();
    let mut k = 0;
    while audio.len() < (seconds * 16_000.0) as usize || k < clips.len() {
        let clip = &clips[k % clips.len()].0;
        spans.push((audio.len(), audio.len() + clip.len(), k % clips.len()));
        audio.extend_from_slice(clip);
        let pause = 1.2 + (k * 7 % 10) as f64 * 0.2;
        audio.extend(std::iter::repeat_n(0.0, (pause * 16_000.0) as usize));
        k += 1;
    }
    (audio, spans)
}

/// Streams `audio` like a microphone; returns every message with its
/// arrival time in seconds after the stream's start.
fn stream(url: &str, audio: &[f32]) -> anyhow::Result<Vec<(f64, Value)>> {
    let mut ws = live_client::connect(url, None)?;
    let mut received = Vec::new();
    let t0 = Instant::now();
    let mut read = |ws: &mut live_client::Socket, until: Instant| -> anyhow::Result<bool> {
        let closed = live_client::read_until(ws, until, |m| {
            received.push((t0.elapsed().as_secs_f64(), m))
        })?;
        Ok(closed.is_some())
    };
    for (i, frame) in audio.chunks(1600).enumerate() {
        read(&mut ws, t0 + Duration::from_millis(100 * (i as u64 + 1)))?;
        ws.send(Message::binary(live_client::pcm16(frame)))?;
    }
    ws.send(Message::text(r#"{"type":"stop"}"#))?;
    while !read(&mut ws, Instant::now() + Duration::from_secs(1))? {}
    Ok(received)
}

fn percentile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    Some((v[i] * 1000.0).round() / 1000.0)
}

fn measure(
    runs: &[Vec<(f64, Value)>],
    truth: &[Clip],
    file_wer: Option<f64>,
    streams: usize,
    wall: f64,
) -> Value {
    let (mut first_partial, mut to_final, mut lag) = (Vec::new(), Vec::new(), Vec::new());
    // Any first partial, words or not: the pipeline's latency apart from
    // when the model first says something.
    let mut first_any = Vec::new();
    let (mut retracted, mut partials, mut finals_count) = (0usize, 0usize, 0usize);
    let (mut errors, mut words) = (0usize, 0usize);
    for run in runs {
        let finals: Vec<&(f64, Value)> = run.iter().filter(|(_, m)| m["type"] == "final").collect();
        finals_count += finals.len();
        let mut previous: std::collections::HashMap<u64, Vec<String>> = Default::default();
        for (at, m) in run.iter().filter(|(_, m)| m["type"] == "partial") {
            partials += 1;
            lag.push(at - m["end"].as_f64().unwrap_or(0.0));
            let words_now: Vec<String> = m["text"]
                .as_str()
                .unwrap_or_default()
                .split_whitespace()
                .map(wer::normalize)
                .collect();
            let id = m["utterance_id"].as_u64().unwrap_or(0);
            if let Some(before) = previous.get(&id) {
                retracted += before
                    .iter()
                    .enumerate()
                    .filter(|(i, w)| words_now.get(*i) != Some(w))
                    .count();
            }
            previous.insert(id, words_now);
        }
        for clip in truth {
            let (onset, end) = clip.speech;
            // The utterance holding this clip's speech: the final whose span overlaps it most.
            let Some((final_at, f)) = finals
                .iter()
                .map(|(at, m)| (*at, m))
                .filter(|(_, m)| {
                    m["start"].as_f64().unwrap_or(0.0) < end
                        && m["end"].as_f64().unwrap_or(0.0) > onset
                })
                .max_by(|a, b| overlap(a.1, clip).total_cmp(&overlap(b.1, clip)))
            else {
                continue;
            };
            to_final.push(final_at - end);
            let id = f["utterance_id"].as_u64();
            let partials = || {
                run.iter()
                    .filter(|(_, m)| m["type"] == "partial" && m["utterance_id"].as_u64() == id)
            };
            if let Some((at, _)) = partials().next() {
                first_any.push(at - onset);
            }
            if let Some((at, _)) =
                partials().find(|(_, m)| !m["text"].as_str().unwrap_or("").trim().is_empty())
            {
                first_partial.push(at - onset);
            }
            let (e, n) = wer::word_errors(&clip.reference, f["text"].as_str().unwrap_or(""));
            errors += e;
            words += n;
        }
    }
    let stream_wer = 100.0 * errors as f64 / words.max(1) as f64;
    json!({
        "streams": streams,
        "wall_s": (wall * 10.0).round() / 10.0,
        "utterances": truth.len() * streams,
        "finals": finals_count,
        "onset_to_first_partial_s": {"p50": percentile(&mut first_partial.clone(), 0.5), "p95": percentile(&mut first_partial, 0.95)},
        "onset_to_first_partial_any_s": {"p50": percentile(&mut first_any.clone(), 0.5), "p95": percentile(&mut first_any, 0.95)},
        "end_of_speech_to_final_s": {"p50": percentile(&mut to_final.clone(), 0.5), "p95": percentile(&mut to_final, 0.95)},
        "partial_lag_s": {"p50": percentile(&mut lag.clone(), 0.5), "p95": percentile(&mut lag, 0.95)},
        "partials": partials,
        "words_retracted_per_partial": ((retracted as f64 / partials.max(1) as f64) * 1000.0).round() / 1000.0,
        "finals_wer_percent": (stream_wer * 100.0).round() / 100.0,
        "finals_wer_minus_file_wer": file_wer.map(|f| ((stream_wer - f) * 100.0).round() / 100.0),
    })
}

fn overlap(m: &Value, clip: &Clip) -> f64 {
    let (a, b) = (
        m["start"].as_f64().unwrap_or(0.0),
        m["end"].as_f64().unwrap_or(0.0),
    );
    (b.min(clip.speech.1) - a.max(clip.speech.0)).max(0.0)
}
