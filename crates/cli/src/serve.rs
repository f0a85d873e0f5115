//! `glagol serve`: flags > `GLAGOL_*` environment > `--config` TOML file >
//! built-in defaults. The settings themselves are declared once, in
//! `glagol_server::config`.

use std::path::PathBuf;
use std::process::ExitCode;

use glagol_server::{Config, Overrides, Settings};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// TOML configuration file (every key optional; the flags' names with `_`).
    #[arg(long, env = "GLAGOL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Overrides,
}

fn settings(args: &Args, models_dir: &Option<PathBuf>) -> anyhow::Result<Settings> {
    let file = match &args.config {
        Some(p) => Overrides::from_file(p)?,
        None => Overrides::default(),
    };
    let mut flags = args.settings.clone();
    flags.models_dir = models_dir.clone();
    Ok(Settings::merge(flags, file))
}

pub fn run(args: Args, models_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let initial = Config::new(settings(&args, &models_dir)?)?;
    let reloader: glagol_server::Reloader = Box::new(move || settings(&args, &models_dir));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(glagol_server::serve(initial, Some(reloader)))?;
    Ok(ExitCode::SUCCESS)
}
