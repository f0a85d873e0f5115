//! `glagol stream`: a live client for a running server's `/v1/ws`. Streams
//! a file (any container, in real time or as fast as the server takes it)
//! or raw PCM from stdin, and prints partials in place on stderr and finals
//! on their own lines on stdout.

use std::io::{IsTerminal, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use glagol_core::audio::{self, AudioLimits};
use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

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
    /// Send as fast as the server takes it instead of in real time.
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

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

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
    let mut request = url
        .as_str()
        .into_client_request()
        .context("the server URL")?;
    if let Some(key) = &args.api_key {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {key}").parse()?);
    }
    let (mut ws, _) =
        tungstenite::connect(request).with_context(|| format!("connecting to {}", args.url))?;
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(5)))?;
    }
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
            printer.pump(&mut ws)?;
        }
    } else {
        let audio = audio::decode_file(&args.input, &AudioLimits::default())?;
        let start = Instant::now();
        for (i, frame) in audio.samples.chunks(1600).enumerate() {
            let bytes: Vec<u8> = frame
                .iter()
                .flat_map(|s| ((s * 32767.0) as i16).to_le_bytes())
                .collect();
            ws.send(Message::binary(bytes))?;
            printer.pump(&mut ws)?;
            if !args.fast {
                let due = start + Duration::from_millis(100 * (i as u64 + 1));
                while Instant::now() < due {
                    printer.pump(&mut ws)?;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    ws.send(Message::text(r#"{"type":"stop"}"#))?;
    while !printer.closed {
        printer.pump(&mut ws)?;
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
}

impl Printer {
    fn new() -> Printer {
        Printer {
            tty: std::io::stderr().is_terminal(),
            closed: false,
            failed: false,
        }
    }

    fn pump(&mut self, ws: &mut Socket) -> anyhow::Result<()> {
        loop {
            match ws.read() {
                Ok(Message::Text(t)) => self.show(&serde_json::from_str(&t)?),
                Ok(Message::Close(frame)) => {
                    self.closed = true;
                    if let Some(f) = frame.filter(|f| u16::from(f.code) != 1000) {
                        eprintln!(
                            "glagol: the server closed the session: {} {}",
                            u16::from(f.code),
                            f.reason
                        );
                        self.failed = true;
                    }
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(())
                }
                Err(tungstenite::Error::ConnectionClosed)
                | Err(tungstenite::Error::AlreadyClosed) => {
                    self.closed = true;
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn show(&mut self, m: &Value) {
        let text = m["text"].as_str().unwrap_or_default();
        match m["type"].as_str() {
            Some("partial") if self.tty => {
                eprint!("\r\x1b[2K… {text}");
                let _ = std::io::stderr().flush();
            }
            Some("final") => {
                if self.tty {
                    eprint!("\r\x1b[2K");
                }
                println!(
                    "[{:8.2} – {:8.2}] {text}",
                    m["start"].as_f64().unwrap_or(0.0),
                    m["end"].as_f64().unwrap_or(0.0)
                );
            }
            Some("error") => {
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
