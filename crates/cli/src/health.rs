//! `glagol health`: asks a running server whether it is ready, for
//! container health checks and scripts on machines with no curl. Exit 0:
//! `/ready` answered 200; 1: anything else (not listening, draining, no
//! model installed, every loaded model's queue full).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct Args {
    /// The server's base URL.
    #[arg(long, env = "GLAGOL_SERVER", default_value = "http://127.0.0.1:8765")]
    server: String,
    /// Ask `/health` (the process answers) instead of `/ready` (it takes work).
    #[arg(long)]
    live: bool,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3.0)]
    timeout: f64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let path = if args.live { "/health" } else { "/ready" };
    let url = format!("{}{path}", args.server.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs_f64(args.timeout.max(0.1))))
        .build()
        .into();
    let mut response = agent
        .get(&url)
        .call()
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    if status != 200 {
        bail!("{url} answered {status}: {}", body.trim());
    }
    println!("{}", body.trim());
    Ok(ExitCode::SUCCESS)
}
