//! `glagol stream`: a live client for a running server's `/v1/ws`. Streams
//! a file (any container, in real time or as fast as the server takes it)
//! or raw PCM from stdin, and prints partials in place on stderr and finals
//! on their own lines on stdout.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use glagol_core::audio::{self, AudioLimits};
use serde_json::Value;
use tungstenite::Message;

use crate::live_client::{self, Socket};

#[derive(clap::Args)]
pub struct Args {
    /// An audio file, or `-` for raw PCM on stdin.
    input: PathBuf,
    /// The server's live endpoint.
    #[arg(long, env = "GLAGOL_URL", default_value = "ws://127.0.0.1:8765/v1/ws")]
    url: String,
    /// Model id or alias (default: the server's default model).
    #[arg(long, short)]
    model: Option<String>,
    /// ISO-639-1 code (default: detected by Whisper).
    #[arg(long, short)]
    language: Option<String>,
    /// Send as fast as recognition goes instead of in real time.
    #[arg(long)]
    fast: bool,
    /// Sample rate of raw PCM on stdin.
    #[arg(long, default_value_t = 16_000)]
    rate: u32,
    /// Sample format of raw PCM on stdin: s16le or f32le.
    #[arg(long, default_value = "s16le")]
    pcm: String,
    /// API key, when the server requires one.
    #[arg(long, env = "GLAGOL_API_KEY")]
    api_key: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let encoding = match args.pcm.as_str() {
        "s16le" => "pcm_s16le",
        "f32le" => "pcm_f32le",
        other => anyhow::bail!("--pcm must be s16le or f32le, not {other}"),
    };
    let stdin = args.input.as_os_str() == "-";
    let (rate, encoding) = if stdin {
        (args.rate, encoding)
    } else {
        (16_000, "pcm_s16le")
    };
    let mut url = format!(
        "{}{}sample_rate={rate}&encoding={encoding}",
        args.url,
        if args.url.contains('?') { "&" } else { "?" }
    );
    for (k, v) in [("model", &args.model), ("language", &args.language)] {
        if let Some(v) = v {
            url.push_str(&format!("&{k}={v}"));
        }
    }
    let mut ws = live_client::connect(&url, args.api_key.as_deref())?;
    let mut printer = Printer::new();
    if stdin {
        let mut input = std::io::stdin().lock();
        let mut buf = vec![0u8; 3200];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            ws.send(Message::binary(buf[..n].to_vec()))?;
            printer.pump(&mut ws, Instant::now())?;
        }
    } else {
        let audio = audio::decode_file(&args.input, &AudioLimits::default())?;
        let start = Instant::now();
        for (i, frame) in audio.samples.chunks(1600).enumerate() {
            ws.send(Message::binary(live_client::pcm16(frame)))?;
            let sent = (i + 1) as f64 * 0.1;
            if args.fast {
                // As fast as recognition goes: no further ahead of the
                // finals than the server holds (its max_backlog_secs).
                printer.pump(&mut ws, Instant::now())?;
                while printer.too_far_ahead(sent) && !printer.closed {
                    printer.pump(&mut ws, Instant::now() + Duration::from_millis(200))?;
                }
            } else {
                printer.pump(&mut ws, start + Duration::from_millis(100 * (i as u64 + 1)))?;
            }
        }
    }
    ws.send(Message::text(r#"{"type":"stop"}"#))?;
    while !printer.closed {
        printer.pump(&mut ws, Instant::now() + Duration::from_secs(1))?;
    }
    Ok(if printer.failed {
        ExitCode::from(crate::exit::RECOGNITION)
    } else {
        ExitCode::SUCCESS
    })
}

struct Printer {
    tty: bool,
    closed: bool,
    failed: bool,
    /// Utterances that ended and wait for their finals.
    pending: usize,
    /// Where the newest final ends, in seconds of audio.
    final_end: f64,
    /// How far ahead of its finals the server lets a client be (`ready`).
    max_backlog: f64,
}

impl Printer {
    fn new() -> Printer {
        Printer {
            tty: std::io::stderr().is_terminal(),
            closed: false,
            failed: false,
            pending: 0,
            final_end: 0.0,
            max_backlog: 60.0,
        }
    }

    /// Whether `sent` seconds of audio are further ahead of the finals
    /// than half of what the server holds.
    fn too_far_ahead(&self, sent: f64) -> bool {
        self.pending > 0 && sent - self.final_end > self.max_backlog / 2.0
    }

    /// Shows the server's messages as they arrive until `until`.
    fn pump(&mut self, ws: &mut Socket, until: Instant) -> anyhow::Result<()> {
        let closed = live_client::read_until(ws, until, |m| self.show(&m))?;
        if let Some(code) = closed {
            self.closed = true;
            if code != 1000 {
                eprintln!("glagol: the server closed the session with code {code}");
                self.failed = true;
            }
        }
        Ok(())
    }

    /// Partials in place on a terminal (with their lag), finals on stdout
    /// with their audio span and how long after its end they came.
    fn show(&mut self, m: &Value) {
        let text = m["text"].as_str().unwrap_or_default();
        let lag = m["processing_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        match m["type"].as_str() {
            Some("ready") => {
                if let Some(secs) = m["max_backlog_secs"].as_f64() {
                    self.max_backlog = secs;
                }
            }
            Some("speech_stopped") => self.pending += 1,
            Some("partial") if self.tty => {
                eprint!("\r\x1b[2K… {text} (+{lag:.2} s)");
                let _ = std::io::stderr().flush();
            }
            Some("final") => {
                self.pending = self.pending.saturating_sub(1);
                self.final_end = m["end"].as_f64().unwrap_or(self.final_end);
                if self.tty {
                    eprint!("\r\x1b[2K");
                }
                println!(
                    "[{:8.2} – {:8.2} | +{lag:.2} s] {text}",
                    m["start"].as_f64().unwrap_or(0.0),
                    m["end"].as_f64().unwrap_or(0.0)
                );
            }
            Some("error") => {
                if m["utterance_id"].is_u64() {
                    self.pending = self.pending.saturating_sub(1);
                }
                eprintln!(
                    "glagol: {}: {}",
                    m["code"].as_str().unwrap_or("error"),
                    m["message"].as_str().unwrap_or("")
                );
                self.failed = true;
            }
            _ => {}
        }
    }
}
