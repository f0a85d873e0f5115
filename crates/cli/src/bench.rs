//! `glagol bench`: speed, memory and accuracy on a manifest of files.
//!
//! A manifest is a JSON array of `{"filename", "language"?, "reference"?}`
//! (paths relative to the manifest), as in `../shared/fixtures/*/manifest.json`.
//! Per model it prints audio seconds, wall seconds, real-time factor,
//! model load time, peak RSS of the process, and WER over the entries that
//! have a reference (normalised: lowercase, no punctuation, ё→е).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use glagol_core::audio::{self, AudioLimits};
use glagol_core::engine::{self, TranscribeOptions};
use glagol_core::models::ModelStore;
use glagol_core::pipeline;
use glagol_core::vad::{VadConfig, VadModel};
use glagol_core::wer;
use serde::Deserialize;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    kind: Option<Kind>,
    /// Manifest JSON file(s).
    #[arg(long, required = true)]
    manifest: Vec<PathBuf>,
    /// Model(s) to measure.
    #[arg(long, short, default_value = "whisper-base")]
    model: Vec<String>,
    #[command(flatten)]
    engine: crate::engine_args::EngineArgs,
    /// Force a language instead of each entry's own (`auto` to detect).
    #[arg(long, short)]
    language: Option<String>,
    /// Gate with the VAD.
    #[arg(long)]
    vad: bool,
    /// Recognise this many files per engine call (cross-request batching).
    #[arg(long, default_value_t = 1)]
    group: usize,
    /// Run the manifest this many times after one warm-up run and report
    /// the fastest (0: a single run without warm-up).
    #[arg(long, default_value_t = 0)]
    repeat: usize,
    /// Print one JSON object per model instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Kind {
    /// Live transcription against a running server: latency, accuracy, capacity.
    Stream(crate::bench_stream::Args),
    /// Speaker diarization on WAV + RTTM pairs: DER, speaker count, cost.
    Diarization(crate::bench_diarization::Args),
}

#[derive(Deserialize)]
struct Entry {
    filename: String,
    language: Option<String>,
    reference: Option<String>,
}

pub fn run(args: Args, store: &ModelStore) -> anyhow::Result<ExitCode> {
    match args.kind {
        Some(Kind::Stream(stream)) => return crate::bench_stream::run(stream),
        Some(Kind::Diarization(d)) => return crate::bench_diarization::run(d, store),
        None => {}
    }
    let mut items = Vec::new();
    for m in &args.manifest {
        let text =
            std::fs::read_to_string(m).with_context(|| format!("reading {}", m.display()))?;
        let entries: Vec<Entry> =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", m.display()))?;
        let dir = m.parent().unwrap_or(Path::new("."));
        for e in entries {
            let samples = audio::decode_file(&dir.join(&e.filename), &AudioLimits::unlimited())
                .with_context(|| e.filename.clone())?
                .samples;
            items.push((e, samples));
        }
    }
    let vad = if args.vad {
        Some(VadModel::embedded()?)
    } else {
        None
    };
    if !args.json {
        println!(
            "{:<22} {:>5} {:>8} {:>8} {:>7} {:>7} {:>9} {:>7}",
            "model", "files", "audio_s", "wall_s", "rtf", "load_s", "peak_mb", "wer%"
        );
    }
    for name in &args.model {
        let model = store.resolve(name)?;
        let t0 = Instant::now();
        let config = args.engine.config();
        let engine = engine::load(&model, &config)?;
        let load_s = t0.elapsed().as_secs_f64();
        let audio_s: f64 = items
            .iter()
            .map(|(_, s)| s.len() as f64 / audio::SAMPLE_RATE as f64)
            .sum();
        let options: Vec<TranscribeOptions> = items
            .iter()
            .map(|(e, _)| TranscribeOptions {
                language: args
                    .language
                    .clone()
                    .or_else(|| e.language.clone())
                    .or(Some("auto".into())),
                threads: config.threads,
                ..Default::default()
            })
            .collect();
        let group = args.group.max(1);
        if group > 1 && vad.is_some() {
            anyhow::bail!("--group and --vad cannot be combined");
        }
        let mut best: Option<(f64, Vec<f64>, Vec<glagol_core::engine::Transcript>)> = None;
        // The first pass warms caches and thread pools; it is timed only
        // when it is the only one.
        for pass in 0..=args.repeat.max(1) {
            if pass == 0 && args.repeat == 0 {
                continue;
            }
            let mut times = Vec::new();
            let mut results = Vec::new();
            for (batch, opts) in items.chunks(group).zip(options.chunks(group)) {
                let t = Instant::now();
                if group == 1 {
                    results.push(pipeline::transcribe(
                        engine.as_ref(),
                        &batch[0].1,
                        &opts[0],
                        vad.as_ref().map(|m| (m, VadConfig::default())),
                    )?);
                } else {
                    let requests: Vec<engine::Request> = batch
                        .iter()
                        .zip(opts)
                        .map(|((_, s), o)| engine::Request {
                            audio: s,
                            options: o,
                        })
                        .collect();
                    for r in engine.transcribe_batch(&requests) {
                        results.push(r?);
                    }
                }
                let dt = t.elapsed().as_secs_f64() / batch.len() as f64;
                times.extend(std::iter::repeat_n(dt, batch.len()));
            }
            let wall: f64 = times.iter().sum();
            if best.as_ref().is_none_or(|(w, _, _)| wall < *w) && (pass > 0 || args.repeat == 0) {
                best = Some((wall, times, results));
            }
        }
        let (wall_s, times, results) = best.expect("at least one timed pass");
        let (mut errors, mut words) = (0usize, 0usize);
        let mut per_file = Vec::new();
        for (((e, _), tr), dt) in items.iter().zip(&results).zip(&times) {
            if let Some(r) = &e.reference {
                let (err, n) = wer::word_errors(r, &tr.text);
                errors += err;
                words += n;
            }
            per_file.push(serde_json::json!({"file": e.filename, "seconds": dt, "text": tr.text, "language": tr.language}));
        }
        let wer_pct = (words > 0).then(|| 100.0 * errors as f64 / words as f64);
        let peak_mb = peak_rss_bytes().map(|b| b as f64 / 1e6);
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "model": name, "engine": model.engine, "threads": config.threads, "batch": config.max_batch, "group": group, "int8": config.int8, "files": items.len(),
                    "audio_seconds": audio_s, "wall_seconds": wall_s, "rtf": wall_s / audio_s.max(1e-9),
                    "load_seconds": load_s, "peak_rss_mb": peak_mb, "wer_percent": wer_pct, "per_file": per_file,
                })
            );
        } else {
            println!(
                "{:<22} {:>5} {:>8.2} {:>8.2} {:>7.3} {:>7.2} {:>9.0} {:>7}",
                name,
                items.len(),
                audio_s,
                wall_s,
                wall_s / audio_s.max(1e-9),
                load_s,
                peak_mb.unwrap_or(0.0),
                wer_pct
                    .map(|w| format!("{w:.1}"))
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Peak resident set size of this process (Linux `VmHWM`).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
