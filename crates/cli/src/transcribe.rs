//! `glagol transcribe`.

use std::fs;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::ValueEnum;
use glagol_core::audio::{self, AudioLimits};
use glagol_core::diarize::cluster::SpeakerCount;
use glagol_core::diarize::{assign, DiarizeOptions, Diarizer};
use glagol_core::engine::{self, Task, TranscribeOptions};
use glagol_core::format::{self, OutputFormat};
use glagol_core::models::ModelStore;
use glagol_core::pipeline;
use glagol_core::vad::{VadConfig, VadModel};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Clone, Copy, ValueEnum)]
enum PcmArg {
    S16le,
    F32le,
}

#[derive(Clone, Copy, ValueEnum)]
enum TaskArg {
    Transcribe,
    Translate,
}

#[derive(clap::Args)]
pub struct Args {
    /// Audio files (any common container), or `-` for stdin.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Catalog name, installed model name, or a path to a model file/directory.
    #[arg(long, short, default_value = "whisper-base", env = "GLAGOL_MODEL")]
    model: String,
    /// Spoken language (ISO 639-1), or `auto` to detect.
    #[arg(long, short, default_value = "auto")]
    language: String,
    #[arg(long, value_enum, default_value = "transcribe")]
    task: TaskArg,
    /// txt, json, verbose_json, srt, vtt or diarized_json.
    #[arg(long, short, default_value = "txt")]
    format: OutputFormat,
    /// Write `<name>.<ext>` files here instead of printing to stdout.
    #[arg(long, short, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Include word-level timestamps (verbose_json).
    #[arg(long)]
    word_timestamps: bool,
    #[command(flatten)]
    engine: crate::engine_args::EngineArgs,
    /// Detect speech first; transcribe only speech (timestamps stay on the original timeline).
    #[arg(long)]
    vad: bool,
    /// Text that conditions the decoder (names, spelling, style).
    #[arg(long)]
    prompt: Option<String>,
    /// Starting sampling temperature (the decoder raises it on failure).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Treat the inputs as headerless PCM in this sample format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pcm: Option<PcmArg>,
    /// Sample rate of --pcm input.
    #[arg(long, default_value_t = 16_000, requires = "pcm")]
    rate: u32,
    /// Interleaved channels of --pcm input.
    #[arg(long, default_value_t = 1, requires = "pcm")]
    channels: usize,
    /// Longest accepted audio, in seconds.
    #[arg(long, default_value_t = 4.0 * 3600.0)]
    max_duration: f64,
    #[command(flatten)]
    speakers: SpeakerArgs,
}

#[derive(clap::Args)]
struct SpeakerArgs {
    /// Label segments and words with speakers (also implied by `--format diarized_json`).
    #[arg(long)]
    diarize: bool,
    /// The number of speakers, when known.
    #[arg(long, value_name = "N")]
    num_speakers: Option<usize>,
    /// At least this many speakers.
    #[arg(long, value_name = "N")]
    min_speakers: Option<usize>,
    /// At most this many speakers.
    #[arg(long, value_name = "N")]
    max_speakers: Option<usize>,
    #[command(flatten)]
    models: crate::engine_args::DiarizationModels,
}

impl SpeakerArgs {
    /// The loaded models and options, when speakers are wanted.
    fn load(
        &self,
        format: OutputFormat,
        store: &ModelStore,
        threads: usize,
    ) -> anyhow::Result<Option<(Diarizer, DiarizeOptions)>> {
        if !self.diarize && !format.needs_speakers() {
            return Ok(None);
        }
        let diarizer = self.models.load(store, threads)?;
        let options = DiarizeOptions {
            speakers: SpeakerCount {
                exactly: self.num_speakers,
                min: self.min_speakers.unwrap_or(1),
                max: self.max_speakers,
            },
            ..DiarizeOptions::default()
        };
        Ok(Some((diarizer, options)))
    }
}

pub fn run(args: Args, store: &ModelStore) -> anyhow::Result<ExitCode> {
    let model = store.resolve(&args.model)?;
    let engine = engine::load(&model, &args.engine.config())?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.engine.threads.unwrap_or(cores.min(4)).max(1);
    let speakers = args.speakers.load(args.format, store, threads)?;
    let vad = if args.vad {
        Some(VadModel::embedded().context("loading the voice activity detector")?)
    } else {
        None
    };
    if let Some(dir) = &args.output_dir {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let limits = AudioLimits {
        max_duration_s: args.max_duration,
        ..AudioLimits::default()
    };

    let mut first_error: Option<anyhow::Error> = None;
    for file in &args.files {
        let models = Models {
            engine: engine.as_ref(),
            vad: vad.as_ref(),
            speakers: speakers.as_ref(),
        };
        if let Err(e) = transcribe_one(&args, file, &limits, &models) {
            eprintln!("glagol: {}: {e:#}", file.display());
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => Ok(crate::exit::code_for(&e)),
    }
}

/// What recognises a file.
struct Models<'a> {
    engine: &'a dyn engine::Engine,
    vad: Option<&'a Arc<VadModel>>,
    speakers: Option<&'a (Diarizer, DiarizeOptions)>,
}

fn transcribe_one(
    args: &Args,
    file: &Path,
    limits: &AudioLimits,
    models: &Models<'_>,
) -> anyhow::Result<()> {
    let audio = match (args.pcm, file.as_os_str() == "-") {
        (Some(pcm), stdin) => {
            let bytes = if stdin {
                let mut bytes = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .context("reading stdin")?;
                bytes
            } else {
                fs::read(file).map_err(|source| audio::AudioError::Io {
                    path: file.display().to_string(),
                    source,
                })?
            };
            let format = match pcm {
                PcmArg::S16le => audio::PcmFormat::S16Le,
                PcmArg::F32le => audio::PcmFormat::F32Le,
            };
            audio::from_pcm(&bytes, format, args.rate, args.channels, limits)?
        }
        (None, true) => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading stdin")?;
            audio::decode_bytes(bytes, None, limits)?
        }
        (None, false) => audio::decode_file(file, limits)?,
    };

    let bar = progress_bar(audio.duration());
    let events: Option<engine::EventSink> = bar.clone().map(|b| {
        Arc::new(move |e: engine::EngineEvent<'_>| {
            if let engine::EngineEvent::Progress(p) = e {
                b.set_position((p.fraction() * 1000.0) as u64)
            }
        }) as engine::EventSink
    });
    let options = TranscribeOptions {
        language: Some(args.language.clone()),
        task: match args.task {
            TaskArg::Transcribe => Task::Transcribe,
            TaskArg::Translate => Task::Translate,
        },
        word_timestamps: args.word_timestamps || models.speakers.is_some(),
        initial_prompt: args.prompt.clone(),
        temperature: args.temperature,
        threads: args.engine.threads.unwrap_or(0),
        events,
        ..Default::default()
    };
    // Speakers are found beside recognition, on another thread.
    let (transcript, speakers) = std::thread::scope(|scope| {
        let speakers = models.speakers.map(|(diarizer, options)| {
            scope.spawn(|| diarizer.diarize(&audio.samples, options, &|| false))
        });
        let transcript = pipeline::transcribe(
            models.engine,
            &audio.samples,
            &options,
            models.vad.map(|m| (m, VadConfig::default())),
        );
        let speakers = speakers.map(|h| h.join().expect("diarization does not panic"));
        (transcript, speakers)
    });
    let mut transcript = transcript?;
    if let Some(speakers) = speakers {
        let speakers = speakers.context("diarization")?;
        assign::apply(&mut transcript, &speakers, &[]);
        if !args.word_timestamps {
            transcript.segments.iter_mut().for_each(|s| s.words.clear());
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let rendered = format::render(&transcript, args.format);
    match &args.output_dir {
        Some(dir) => {
            let stem = if file.as_os_str() == "-" {
                "stdin".to_string()
            } else {
                file.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string()
            };
            let out = dir.join(format!("{stem}.{}", args.format.extension()));
            fs::write(&out, rendered).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("{} -> {}", file.display(), out.display());
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(rendered.as_bytes())?;
            if !rendered.ends_with('\n') {
                stdout.write_all(b"\n")?;
            }
        }
    }
    Ok(())
}

/// A bar on stderr for files long enough to wait for, when stderr is a terminal.
fn progress_bar(duration: f64) -> Option<ProgressBar> {
    if duration < 30.0 || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent}% (eta {eta})",
        )
        .expect("static template is valid"),
    );
    Some(bar)
}
