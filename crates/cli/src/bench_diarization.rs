//! `glagol bench diarization`: accuracy and cost of speaker diarization
//! on WAV files with reference RTTMs (`<name>.rttm` beside `<name>.wav`).
//!
//! Per file: audio seconds, wall seconds and real-time factor of the whole
//! pipeline (segmentation, embeddings, clustering), speakers found against
//! the reference's, and DER at collar 0 and ±0.25 s (overlap scored). With
//! `--join N`, each file is also scored as one conversation N times as
//! long (the file repeated, its turns shifted), which the clustering must
//! link across. With `--reference SCRIPT`, the Python reference pipeline
//! (`shared/fixtures/diarization/pyannote_style_reference.py`) is run on
//! the same file and its DER printed alongside.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use glagol_core::audio::{self, AudioLimits};
use glagol_core::diarize::cluster::SpeakerCount;
use glagol_core::diarize::score::{self, LabelledTurn};
use glagol_core::diarize::{DiarizeOptions, Diarizer};
use glagol_core::models::ModelStore;

#[derive(clap::Args)]
pub struct Args {
    /// WAV files, each with its reference `<name>.rttm` beside it.
    #[arg(required = true, value_name = "WAV")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    models: crate::engine_args::DiarizationModels,
    /// Threads for each model.
    #[arg(long, short, default_value_t = 2)]
    threads: usize,
    /// Tell the pipeline the reference's number of speakers.
    #[arg(long)]
    oracle_count: bool,
    /// Also score each file joined this many times into one conversation.
    #[arg(long, value_name = "N")]
    join: Option<usize>,
    /// The Python reference pipeline to run on the same files (needs numpy,
    /// scipy and onnxruntime).
    #[arg(long, value_name = "SCRIPT")]
    reference: Option<PathBuf>,
    /// Print one JSON object per file instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, store: &ModelStore) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    let diarizer = args.models.load(store, args.threads.max(1))?;
    let load_s = t0.elapsed().as_secs_f64();
    if !args.json {
        eprintln!("models loaded in {load_s:.2} s");
        println!(
            "{:<28} {:>8} {:>7} {:>6} {:>9} {:>7} {:>7} {:>8}",
            "file", "audio_s", "wall_s", "rtf", "speakers", "der0%", "der25%", "ref_der0%"
        );
    }
    for file in &args.files {
        let rttm = file.with_extension("rttm");
        let text = std::fs::read_to_string(&rttm)
            .with_context(|| format!("the reference {}", rttm.display()))?;
        let reference = score::parse_rttm(&text).map_err(anyhow::Error::msg)?;
        let samples = audio::decode_file(file, &AudioLimits::unlimited())?.samples;
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let python = match &args.reference {
            Some(script) => reference_der(script, file, &rttm, store, &args.models),
            None => None,
        };
        measure(&args, &diarizer, &name, &samples, &reference, python)?;
        if let Some(n) = args.join.filter(|&n| n > 1) {
            let seconds = samples.len() as f64 / audio::SAMPLE_RATE as f64;
            let joined: Vec<f32> = (0..n).flat_map(|_| samples.iter().copied()).collect();
            let turns: Vec<LabelledTurn> = (0..n)
                .flat_map(|k| {
                    reference.iter().map(move |t| LabelledTurn {
                        start: t.start + k as f64 * seconds,
                        end: t.end + k as f64 * seconds,
                        speaker: t.speaker.clone(),
                    })
                })
                .collect();
            measure(
                &args,
                &diarizer,
                &format!("{name} ×{n}"),
                &joined,
                &turns,
                None,
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn measure(
    args: &Args,
    diarizer: &Diarizer,
    name: &str,
    samples: &[f32],
    reference: &[LabelledTurn],
    python: Option<f64>,
) -> anyhow::Result<()> {
    let mut names: Vec<&str> = reference.iter().map(|t| t.speaker.as_str()).collect();
    names.sort();
    names.dedup();
    let options = DiarizeOptions {
        speakers: SpeakerCount {
            exactly: args.oracle_count.then_some(names.len()),
            ..SpeakerCount::default()
        },
        ..DiarizeOptions::default()
    };
    let seconds = samples.len() as f64 / audio::SAMPLE_RATE as f64;
    let t0 = Instant::now();
    let result = diarizer.diarize(samples, &options, &|| false)?;
    let wall = t0.elapsed().as_secs_f64();
    let hypothesis = result.labelled_turns();
    let der0 = score::der(reference, &hypothesis, seconds, 0.0);
    let der25 = score::der(reference, &hypothesis, seconds, 0.25);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "file": name, "audio_s": seconds, "wall_s": wall, "rtf": wall / seconds,
                "speakers": result.speakers(), "reference_speakers": names.len(),
                "windows": result.windows, "embeddings": result.embeddings,
                "der_collar_0": der0, "der_collar_025": der25,
                "reference_pipeline_der_collar_0": python,
            })
        );
    } else {
        println!(
            "{:<28} {:>8.1} {:>7.2} {:>6.3} {:>9} {:>7.2} {:>7.2} {:>8}",
            name,
            seconds,
            wall,
            wall / seconds,
            format!("{}/{}", result.speakers(), names.len()),
            der0.der * 100.0,
            der25.der * 100.0,
            python.map_or("-".into(), |d| format!("{:.2}", d * 100.0)),
        );
    }
    Ok(())
}

/// The reference pipeline's DER at collar 0 on a file, if it runs.
fn reference_der(
    script: &Path,
    wav: &Path,
    rttm: &Path,
    store: &ModelStore,
    models: &crate::engine_args::DiarizationModels,
) -> Option<f64> {
    let seg = store.resolve(&models.segmentation_model).ok()?.path;
    let emb = store.resolve(&models.diarization_model).ok()?.path;
    let out = std::process::Command::new("python3")
        .arg(script)
        .args([
            "--wav".as_ref(),
            wav.as_os_str(),
            "--ref".as_ref(),
            rttm.as_os_str(),
        ])
        .args([
            "--segmentation".as_ref(),
            seg.as_os_str(),
            "--embedding".as_ref(),
            emb.as_os_str(),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        eprintln!(
            "the reference pipeline failed on {}: {}",
            wav.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    // "  DER collar ±0.00 s: 5.20 % (…"
    let line = text.lines().find(|l| l.contains("DER collar ±0.00"))?;
    let value = line.split(": ").nth(1)?.split(" %").next()?;
    value.trim().parse::<f64>().ok().map(|d| d / 100.0)
}
