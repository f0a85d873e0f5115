//! `glagol runtime …`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use glagol_core::models::download::Progress;
use glagol_core::runtime::{self, ORT_WHEEL_SHA256, ORT_WHEEL_URL};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Subcommand)]
pub enum Command {
    /// Download the pinned ONNX Runtime wheel from PyPI, verify it and
    /// extract the library into glagol's data directory.
    Install {
        /// Wheel URL (a mirror); needs --sha256.
        #[arg(long, requires = "sha256", value_name = "URL")]
        url: Option<String>,
        /// Expected SHA-256 of the wheel at --url.
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// Install into this directory instead of the data directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Show which library would be used, and load it.
    Status,
}

pub fn run(cmd: Command, explicit: Option<&Path>) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Install { url, sha256, dir } => {
            let url = url.unwrap_or_else(|| ORT_WHEEL_URL.to_string());
            // The checksum must outlive the download call's 'static bound.
            let sha: &'static str = match sha256 {
                Some(s) => Box::leak(s.to_lowercase().into_boxed_str()),
                None => ORT_WHEEL_SHA256,
            };
            let dir = dir.unwrap_or_else(runtime::runtime_dir);
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "onnxruntime [{bar:40}] {bytes}/{total_bytes} eta {eta}",
                )
                .expect("static template is valid")
                .progress_chars("=> "),
            );
            let path = runtime::install(&url, sha, &dir, &mut |p| match p {
                Progress::Started { done, total } => {
                    bar.set_length(total.unwrap_or(0));
                    bar.set_position(done);
                }
                Progress::Advanced { done } => bar.set_position(done),
            })?;
            bar.finish_and_clear();
            println!(
                "installed ONNX Runtime {} at {}",
                runtime::ORT_VERSION,
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            let located = runtime::locate(explicit)?;
            println!("library: {}", located.path.display());
            println!("found via: {}", located.source);
            if let Some(v) = runtime::version_from_name(&located.path) {
                println!("file version: {v}");
            }
            runtime::environment()?;
            println!("status: loaded OK (glagol pins {})", runtime::ORT_VERSION);
            Ok(ExitCode::SUCCESS)
        }
    }
}
