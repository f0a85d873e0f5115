//! `glagol serve`: flags > `GLAGOL_*` environment > `--config` TOML file >
//! built-in defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use glagol_server::config::hash_key;
use glagol_server::{FileConfig, ServerConfig};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Address to listen on (non-loopback needs API keys or --insecure-no-auth).
    #[arg(long, env = "GLAGOL_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// TOML configuration file.
    #[arg(long, env = "GLAGOL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// An accepted API key (repeatable; comma-separated in GLAGOL_API_KEYS).
    #[arg(
        long = "api-key",
        env = "GLAGOL_API_KEYS",
        value_delimiter = ',',
        value_name = "KEY"
    )]
    api_keys: Vec<String>,
    /// Serve a non-loopback address without API keys.
    #[arg(long)]
    insecure_no_auth: bool,
    /// Model used when a request names none (and for `whisper-1`).
    #[arg(long, env = "GLAGOL_DEFAULT_MODEL")]
    default_model: Option<String>,
    /// Models to load at start (repeatable).
    #[arg(long, env = "GLAGOL_PRELOAD", value_delimiter = ',')]
    preload: Vec<String>,
    /// Unload a model after this many idle seconds (-1: never).
    #[arg(long, env = "GLAGOL_IDLE_TTL", allow_hyphen_values = true)]
    idle_ttl: Option<i64>,
    /// Wait for a cold model to load instead of answering 503.
    #[arg(long)]
    wait_for_load: bool,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "GLAGOL_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Longest accepted audio, in seconds.
    #[arg(long, env = "GLAGOL_MAX_AUDIO_SECONDS")]
    max_audio_seconds: Option<f64>,
    /// Per-request inference timeout, in seconds.
    #[arg(long, env = "GLAGOL_INFERENCE_TIMEOUT")]
    inference_timeout: Option<u64>,
    /// Concurrent inferences per model.
    #[arg(long, env = "GLAGOL_WORKERS")]
    workers: Option<usize>,
    /// Requests that may wait for a worker, per model.
    #[arg(long, env = "GLAGOL_QUEUE_DEPTH")]
    queue_depth: Option<usize>,
    /// GigaAM requests recognised together at most (1: no batching).
    #[arg(long, env = "GLAGOL_MAX_BATCH")]
    max_batch: Option<usize>,
    /// Milliseconds a GigaAM request waits for others to batch with.
    #[arg(long, env = "GLAGOL_BATCH_WAIT_MS")]
    batch_wait_ms: Option<u64>,
    /// Threads per inference.
    #[arg(long, short, env = "GLAGOL_THREADS")]
    threads: Option<usize>,
    /// A browser origin allowed besides loopback ones (repeatable; `*` for any).
    #[arg(
        long = "allow-origin",
        env = "GLAGOL_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    allowed_origins: Vec<String>,
    /// Requests per minute per API key or client IP.
    #[arg(long, env = "GLAGOL_RATE_LIMIT")]
    rate_limit: Option<u32>,
    /// Where Prometheus /metrics is served ("off" to disable).
    #[arg(long, env = "GLAGOL_METRICS_LISTEN", value_name = "ADDR|off")]
    metrics_listen: Option<String>,
    /// Memory, in MB, the server may grow to by loading models (default:
    /// what the system has available); a load that does not fit waits.
    #[arg(long, env = "GLAGOL_MEMORY_LIMIT_MB")]
    memory_limit_mb: Option<u64>,
    /// Seconds between checks of a load waiting for memory.
    #[arg(long, env = "GLAGOL_MEMORY_RETRY")]
    memory_retry: Option<u64>,
    /// Seconds to let in-flight requests finish after SIGTERM.
    #[arg(long, env = "GLAGOL_DRAIN")]
    drain: Option<u64>,
}

fn ttl(seconds: i64) -> Option<Duration> {
    (seconds >= 0).then(|| Duration::from_secs(seconds as u64))
}

pub fn config(args: Args, models_dir: Option<PathBuf>) -> anyhow::Result<ServerConfig> {
    let file = match &args.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let d = ServerConfig::default();
    let mut keys: Vec<String> = args
        .api_keys
        .iter()
        .filter(|k| !k.is_empty())
        .map(|k| hash_key(k))
        .collect();
    if keys.is_empty() {
        keys.extend(
            file.api_keys
                .unwrap_or_default()
                .iter()
                .map(|k| hash_key(k)),
        );
        keys.extend(
            file.api_key_hashes
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.to_lowercase()),
        );
    }
    Ok(ServerConfig {
        memory_limit: args
            .memory_limit_mb
            .or(file.memory_limit_mb)
            .map(|mb| mb << 20),
        memory_retry: args
            .memory_retry
            .or(file.memory_retry)
            .map(Duration::from_secs)
            .unwrap_or(d.memory_retry),
        listen: args.listen.or(file.listen).unwrap_or(d.listen),
        api_key_hashes: keys,
        insecure_no_auth: args.insecure_no_auth || file.insecure_no_auth.unwrap_or(false),
        models_dir: models_dir.or(file.models_dir).unwrap_or(d.models_dir),
        default_model: args
            .default_model
            .or(file.default_model)
            .unwrap_or(d.default_model),
        aliases: file.aliases.unwrap_or_default(),
        preload: if args.preload.is_empty() {
            file.preload.unwrap_or_default()
        } else {
            args.preload
        },
        idle_ttl: match args.idle_ttl.or(file.idle_ttl) {
            Some(s) => ttl(s),
            None => d.idle_ttl,
        },
        wait_for_load: args.wait_for_load || file.wait_for_load.unwrap_or(false),
        max_body_bytes: args
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(d.max_body_bytes),
        max_audio_seconds: args
            .max_audio_seconds
            .or(file.max_audio_seconds)
            .unwrap_or(d.max_audio_seconds),
        inference_timeout: args
            .inference_timeout
            .or(file.inference_timeout)
            .map(Duration::from_secs)
            .unwrap_or(d.inference_timeout),
        workers: args.workers.or(file.workers).unwrap_or(d.workers),
        queue_depth: args
            .queue_depth
            .or(file.queue_depth)
            .unwrap_or(d.queue_depth),
        threads: args.threads.or(file.threads).unwrap_or(d.threads),
        max_batch: args.max_batch.or(file.max_batch).unwrap_or(d.max_batch),
        batch_wait: args
            .batch_wait_ms
            .or(file.batch_wait_ms)
            .map(Duration::from_millis)
            .unwrap_or(d.batch_wait),
        drain: args
            .drain
            .or(file.drain)
            .map(Duration::from_secs)
            .unwrap_or(d.drain),
        allowed_origins: if args.allowed_origins.is_empty() {
            file.allowed_origins.unwrap_or_default()
        } else {
            args.allowed_origins
        },
        rate_limit_per_minute: args.rate_limit.or(file.rate_limit_per_minute),
        metrics_listen: match args.metrics_listen.or(file.metrics_listen) {
            None => d.metrics_listen,
            Some(v) if v == "off" => None,
            Some(v) => Some(
                v.parse()
                    .map_err(|e| anyhow::anyhow!("--metrics-listen {v}: {e}"))?,
            ),
        },
    })
}

pub fn run(args: Args, models_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let initial = config(args.clone(), models_dir.clone())?;
    let reloader: glagol_server::Reloader =
        Box::new(move || config(args.clone(), models_dir.clone()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(glagol_server::serve(initial, Some(reloader)))?;
    Ok(ExitCode::SUCCESS)
}
