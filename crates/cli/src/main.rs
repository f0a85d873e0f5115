//! `glagol`: the command-line front end.
//!
//! Each subcommand lives in its own module and only composes
//! `glagol-core`; failures are reported as one line on stderr and mapped to
//! the documented exit codes in [`exit`].

mod bench;
mod bench_diarization;
mod bench_stream;
mod engine_args;
mod exit;
mod health;
mod jobs;
mod live_client;
mod models;
mod runtime;
mod serve;
mod stream;
mod transcribe;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Private on-device speech-to-text.
#[derive(Parser)]
#[command(name = "glagol", version, about, propagate_version = true)]
struct Cli {
    /// Model store directory.
    #[arg(long, global = true, env = "GLAGOL_MODELS_DIR", value_name = "DIR")]
    models_dir: Option<PathBuf>,
    /// Path to libonnxruntime (default: search; see `glagol runtime status`).
    #[arg(long, global = true, env = "GLAGOL_ORT_LIB", value_name = "FILE")]
    ort_lib: Option<PathBuf>,
    /// Log lines on stderr as `text` or `json` (one object per line). The
    /// level is set with GLAGOL_LOG (e.g. `debug`, `glagol_server=debug`).
    #[arg(long, global = true, env = "GLAGOL_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (OpenAI-compatible and native APIs).
    Serve(Box<serve::Args>),
    /// Transcribe or translate audio files (or `-` for stdin).
    Transcribe(transcribe::Args),
    /// List, download, import, verify and remove models.
    #[command(subcommand)]
    Models(models::Command),
    /// Install or inspect the ONNX Runtime library.
    #[command(subcommand)]
    Runtime(runtime::Command),
    /// Measure speed, memory and accuracy on a manifest of files.
    Bench(bench::Args),
    /// Stream a file or raw PCM from stdin to a running server's live endpoint.
    Stream(stream::Args),
    /// Submit, list, watch, fetch and cancel a running server's durable jobs.
    Jobs(jobs::Args),
    /// Exit 0 when a running server is ready (for container health checks).
    Health(health::Args),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat, server: bool) {
    // A server logs its requests and model lifecycle; a CLI run only warns.
    // Symphonia reports every failed probe as an error of its own; glagol
    // turns those into typed errors, so its log lines are noise.
    let default = if server { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GLAGOL_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{default},symphonia_core=off,symphonia_bundle_mp3=off,ort=warn"
        ))
    });
    // Colour only for a person: container logs and journald get plain text.
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, matches!(cli.command, Command::Serve(_)));
    glagol_core::runtime::set_library(cli.ort_lib.clone());
    let store = glagol_core::models::ModelStore::new(
        cli.models_dir
            .clone()
            .unwrap_or_else(glagol_core::models::ModelStore::default_dir),
    );
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args, cli.models_dir.clone()),
        Command::Transcribe(args) => transcribe::run(args, &store),
        Command::Models(cmd) => models::run(cmd, &store),
        Command::Runtime(cmd) => runtime::run(cmd, cli.ort_lib.as_deref()),
        Command::Bench(args) => bench::run(args, &store),
        Command::Stream(args) => stream::run(args),
        Command::Jobs(args) => jobs::run(args),
        Command::Health(args) => health::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("glagol: {}", exit::message(&e));
            exit::code_for(&e)
        }
    }
}
