//! `glagol bench stream`: live-transcription latency and capacity against a
//! running server's `/v1/ws`, with the definitions of
//! `../shared/design/streaming.md`.
//!
//! Each stream sends a recording made of the manifest's clips joined by
//! pauses, as a microphone would: each 100 ms frame when its audio has
//! "happened" (frame i at i+1 × 100 ms). Every stream's pauses differ, so
//! its utterances are cut at different places (Whisper's text depends on
//! where its audio starts and ends: one recording is one draw). Speech
//! onset and end of each clip are where the offline VAD (500 ms silence)
//! finds them. Per utterance: onset → first non-empty partial (and → first
//! partial of any text, which separates the pipeline from when the model
//! first says something), end of speech → final; per partial: lag (arrival
//! − when the last audio it covered was spoken) and the words it retracted;
//! per run: the finals' WER and, measured by the same server before the
//! streams start, the WER of the same clips sent as files to
//! `/v1/transcribe`. Several `--streams` values give the capacity curve;
//! the JSON has one object per value.
//!
//! Two variants test the voice detection on harder input: `--quiet-db`
//! makes every third clip quiet (its peak at that level), and the report
//! counts the quiet clips that got no final; `--noise-db` fills each pause
//! with hiss (breath-shaped in every other pause) at that level, and finals
//! outside speech are false starts, reported per minute of noise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use glagol_core::audio::{self, synth, AudioLimits};
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
    /// The server's live endpoint, with any query settings (`model` and
    /// `language` also apply to the file transcriptions).
    #[arg(long, default_value = "ws://127.0.0.1:8765/v1/ws")]
    url: String,
    /// Concurrent streams per run (comma-separated for several runs).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    streams: Vec<usize>,
    /// Minimum recording length, seconds (the clips repeat).
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Every third clip quiet: its peak at this level, dBFS (e.g. -46).
    #[arg(long, allow_hyphen_values = true)]
    quiet_db: Option<f32>,
    /// Hiss and breaths at this RMS level, dBFS, in every pause (e.g. -40).
    #[arg(long, allow_hyphen_values = true)]
    noise_db: Option<f32>,
}

/// One manifest clip: its audio file, its samples and its reference text.
struct Source {
    file: PathBuf,
    samples: Vec<f32>,
    reference: String,
}

/// One stream's audio, and where each clip's speech is in it.
struct Recording {
    audio: Vec<f32>,
    clips: Vec<Clip>,
    /// Seconds of noise in the pauses.
    noise_s: f64,
}

struct Clip {
    speech: (f64, f64),
    /// Which manifest clip this is.
    source: usize,
    /// Made quiet (`--quiet-db`).
    quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.manifest)
        .with_context(|| args.manifest.display().to_string())?;
    let entries: Vec<Value> = serde_json::from_str(&text)?;
    let dir = args.manifest.parent().unwrap_or(Path::new("."));
    let sources: Vec<Source> = entries
        .iter()
        .map(|e| {
            let file = dir.join(e["filename"].as_str().unwrap_or_default());
            let audio = audio::decode_file(&file, &AudioLimits::default())?;
            Ok(Source {
                file,
                samples: audio.samples,
                reference: e["reference"].as_str().unwrap_or_default().to_string(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!sources.is_empty(), "the manifest lists no clips");
    // Also loads the model before any stream starts.
    let files = sources
        .iter()
        .map(|s| transcribe_file(&args.url, &s.file))
        .collect::<anyhow::Result<Vec<String>>>()?;
    let vad = VadModel::embedded()?;
    let most = args.streams.iter().copied().max().unwrap_or(1);
    let recordings = (0..most as u64)
        .map(|seed| record(&vad, &sources, &args, seed))
        .collect::<anyhow::Result<Vec<Recording>>>()?;
    // Streams start spread over one clip-and-pause period, so that their
    // utterances end at different moments, as independent callers' do (all
    // streams say the same clips: started together, every final would be
    // asked for at once).
    let period = recordings[0].audio.len() as f64 / 16_000.0 / recordings[0].clips.len() as f64;
    for &n in &args.streams {
        let started = Instant::now();
        let handles: Vec<_> = recordings[..n]
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (url, audio) = (args.url.clone(), r.audio.clone());
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
            &recordings[..n],
            &sources,
            &files,
            started.elapsed().as_secs_f64(),
        );
        println!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The text the server gives `file` sent to `/v1/transcribe` with the live
/// URL's model and language.
fn transcribe_file(live_url: &str, file: &Path) -> anyhow::Result<String> {
    let (base, query) = live_url.split_once('?').unwrap_or((live_url, ""));
    let base = base
        .replacen("ws://", "http://", 1)
        .replacen("wss://", "https://", 1);
    let base = base.strip_suffix("/v1/ws").unwrap_or(&base);
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| p.starts_with("model=") || p.starts_with("language="))
        .collect();
    let url = format!("{base}/v1/transcribe?format=json&{}", kept.join("&"));
    let body = std::fs::read(file).with_context(|| file.display().to_string())?;
    // A model loaded on demand answers 503 until it is ready.
    let patience = Instant::now() + Duration::from_secs(300);
    let text = loop {
        let mut response = ureq::post(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .send(&body[..])
            .with_context(|| format!("POST {url}"))?;
        let text = response.body_mut().read_to_string()?;
        match response.status().as_u16() {
            200..=299 => break text,
            503 if Instant::now() < patience => std::thread::sleep(Duration::from_secs(1)),
            status => anyhow::bail!("POST {url}: {status} {text}"),
        }
    };
    let v: Value = serde_json::from_str(&text)?;
    Ok(v["text"].as_str().unwrap_or_default().to_string())
}

/// The clips joined: 0.5 s lead, then each clip and a pause of 1.2–3.0 s
/// (a fixed pattern for `seed` 0, drawn from `seed` otherwise), repeated
/// to at least `seconds`; and where the VAD finds each clip's speech.
fn record(
    vad: &std::sync::Arc<VadModel>,
    sources: &[Source],
    args: &Args,
    seed: u64,
) -> anyhow::Result<Recording> {
    let mut audio = vec![0.0f32; 8_000];
    let mut spans = Vec::new();
    let (mut k, mut noise_s) = (0, 0.0);
    while audio.len() < (args.seconds * 16_000.0) as usize || k < sources.len() {
        let source = k % sources.len();
        let quiet = args.quiet_db.filter(|_| k % 3 == 2);
        let clip = match quiet {
            Some(db) => synth::at_peak(&sources[source].samples, db),
            None => sources[source].samples.clone(),
        };
        spans.push((
            audio.len(),
            audio.len() + clip.len(),
            source,
            quiet.is_some(),
        ));
        audio.extend_from_slice(&clip);
        let pause = if seed == 0 {
            1.2 + (k * 7 % 10) as f64 * 0.2
        } else {
            1.2 + (mix(seed, k as u64) % 1801) as f64 / 1000.0
        };
        match args.noise_db {
            // 0.3 s of silence each side, so the noise is apart from speech.
            Some(db) if pause > 1.0 => {
                audio.extend(std::iter::repeat_n(0.0, 4_800));
                audio.extend(synth::hiss(pause - 0.6, k % 2 == 1, db));
                audio.extend(std::iter::repeat_n(0.0, 4_800));
                noise_s += pause - 0.6;
            }
            _ => audio.extend(std::iter::repeat_n(0.0, (pause * 16_000.0) as usize)),
        }
        k += 1;
    }
    let config = VadConfig {
        min_silence_ms: 500,
        ..Default::default()
    };
    let segments = speech_segments(vad, &audio, config)?;
    let clips = spans
        .iter()
        .map(|&(a, b, source, quiet)| {
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
                source,
                quiet,
            }
        })
        .collect();
    Ok(Recording {
        audio,
        clips,
        noise_s,
    })
}

/// A well-spread hash of (`seed`, `k`) (SplitMix64's finaliser).
fn mix(seed: u64, k: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(k.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Streams `audio` like a microphone; returns every message with its
/// arrival time in seconds after the stream's start.
fn stream(url: &str, audio: &[f32]) -> anyhow::Result<Vec<(f64, Value)>> {
    let mut ws = live_client::connect(url, None)?;
    let mut received = Vec::new();
    let t0 = Instant::now();
    let mut read = |ws: &mut live_client::Socket, until: Instant| {
        live_client::read_until(ws, until, |m| {
            received.push((t0.elapsed().as_secs_f64(), m))
        })
    };
    for (i, frame) in audio.chunks(1600).enumerate() {
        if let Some(code) = read(&mut ws, t0 + Duration::from_millis(100 * (i as u64 + 1)))? {
            // Over a session limit, say: the last message is its error.
            let said = received
                .last()
                .map(|(_, m)| m.to_string())
                .unwrap_or_default();
            anyhow::bail!("the server closed a stream ({code}) after {i} frames: {said}");
        }
        ws.send(Message::binary(live_client::pcm16(frame)))?;
    }
    ws.send(Message::text(r#"{"type":"stop"}"#))?;
    while read(&mut ws, Instant::now() + Duration::from_secs(1))?.is_none() {}
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
    recordings: &[Recording],
    sources: &[Source],
    files: &[String],
    wall: f64,
) -> Value {
    let (mut first_partial, mut to_final, mut lag) = (Vec::new(), Vec::new(), Vec::new());
    // Any first partial, words or not: the pipeline's latency apart from
    // when the model first says something.
    let mut first_any = Vec::new();
    let (mut retracted, mut partials, mut finals_count) = (0usize, 0usize, 0usize);
    let (mut errors, mut file_errors, mut words) = (0usize, 0usize, 0usize);
    let (mut split, mut missed, mut stray) = (0usize, 0usize, 0usize);
    let (mut quiet, mut quiet_missed) = (0usize, 0usize);
    for (run, recording) in runs.iter().zip(recordings) {
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
        // Each final belongs to the clip whose speech it overlaps most; a
        // clip cut in two by a pause inside it has several.
        let mut heard: Vec<Vec<&(f64, Value)>> = vec![Vec::new(); recording.clips.len()];
        for f in &finals {
            let best = (0..recording.clips.len())
                .map(|i| (i, overlap(&f.1, &recording.clips[i])))
                .filter(|&(_, o)| o > 0.0)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match best {
                Some((i, _)) => heard[i].push(f),
                None => stray += 1,
            }
        }
        for (clip, finals) in recording.clips.iter().zip(&heard) {
            let source = &sources[clip.source];
            quiet += usize::from(clip.quiet);
            quiet_missed += usize::from(clip.quiet && finals.is_empty());
            file_errors += wer::word_errors(&source.reference, &files[clip.source]).0;
            let text: Vec<&str> = finals
                .iter()
                .map(|(_, m)| m["text"].as_str().unwrap_or(""))
                .collect();
            let (e, n) = wer::word_errors(&source.reference, &text.join(" "));
            errors += e;
            words += n;
            let (Some((_, first)), Some((final_at, _))) = (finals.first(), finals.last()) else {
                missed += 1;
                continue;
            };
            split += usize::from(finals.len() > 1);
            let (onset, end) = clip.speech;
            to_final.push(final_at - end);
            let id = first["utterance_id"].as_u64();
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
        }
    }
    let percent = |e: usize| 100.0 * e as f64 / words.max(1) as f64;
    let noise_minutes = recordings.iter().map(|r| r.noise_s).sum::<f64>() / 60.0;
    let hundredths = |x: f64| (x * 100.0).round() / 100.0;
    json!({
        "streams": runs.len(),
        "wall_s": (wall * 10.0).round() / 10.0,
        "utterances": recordings.iter().map(|r| r.clips.len()).sum::<usize>(),
        "finals": finals_count,
        "utterances_with_several_finals": split,
        "utterances_without_final": missed,
        "finals_outside_speech": stray,
        "quiet_clips": quiet,
        "quiet_clips_without_final": quiet_missed,
        "noise_minutes": (noise_minutes * 100.0).round() / 100.0,
        "false_starts_per_noise_minute": (noise_minutes > 0.0).then(|| (stray as f64 / noise_minutes * 100.0).round() / 100.0),
        "onset_to_first_partial_s": {"p50": percentile(&mut first_partial.clone(), 0.5), "p95": percentile(&mut first_partial, 0.95)},
        "onset_to_first_partial_any_s": {"p50": percentile(&mut first_any.clone(), 0.5), "p95": percentile(&mut first_any, 0.95)},
        "end_of_speech_to_final_s": {"p50": percentile(&mut to_final.clone(), 0.5), "p95": percentile(&mut to_final, 0.95)},
        "partial_lag_s": {"p50": percentile(&mut lag.clone(), 0.5), "p95": percentile(&mut lag, 0.95)},
        "partials": partials,
        "words_retracted_per_partial": ((retracted as f64 / partials.max(1) as f64) * 1000.0).round() / 1000.0,
        "words": words,
        "finals_wer_percent": hundredths(percent(errors)),
        "file_wer_percent": hundredths(percent(file_errors)),
        "finals_wer_minus_file_wer": hundredths(percent(errors) - percent(file_errors)),
    })
}

fn overlap(m: &Value, clip: &Clip) -> f64 {
    let (a, b) = (
        m["start"].as_f64().unwrap_or(0.0),
        m["end"].as_f64().unwrap_or(0.0),
    );
    (b.min(clip.speech.1) - a.max(clip.speech.0)).max(0.0)
}
