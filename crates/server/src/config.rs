//! Server configuration: plain data, merged from flags, `GLAGOL_*`
//! environment variables and a TOML file (in that order of precedence;
//! the CLI layer does the merging).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Everything `glagol serve` can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// SHA-256 hex digests of the accepted API keys (none: no auth).
    pub api_key_hashes: Vec<String>,
    /// Allow a non-loopback listener without API keys.
    pub insecure_no_auth: bool,
    pub models_dir: PathBuf,
    /// Model used when a request names none, and what `whisper-1` means.
    pub default_model: String,
    /// Request model names → installed model names.
    pub aliases: HashMap<String, String>,
    /// Models loaded at start.
    pub preload: Vec<String>,
    /// Unload a model idle this long; None = never.
    pub idle_ttl: Option<Duration>,
    /// Wait for a cold model to load instead of answering 503.
    pub wait_for_load: bool,
    pub max_body_bytes: usize,
    pub max_audio_seconds: f64,
    pub inference_timeout: Duration,
    /// Concurrent inferences per model.
    pub workers: usize,
    /// Requests allowed to wait for a worker, per model.
    pub queue_depth: usize,
    /// GigaAM requests recognised together at most (1: no batching).
    pub max_batch: usize,
    /// How long a GigaAM request waits for others to batch with.
    pub batch_wait: Duration,
    pub threads: usize,
    pub drain: Duration,
    /// Browser origins allowed besides loopback ones (`*` for any).
    pub allowed_origins: Vec<String>,
    /// Requests per minute per API key or client IP (None: unlimited).
    pub rate_limit_per_minute: Option<u32>,
    /// Where Prometheus `/metrics` is served (None: nowhere).
    pub metrics_listen: Option<SocketAddr>,
    /// Bytes the process may grow to by loading models (None: whatever the
    /// system has available). A load that does not fit waits.
    pub memory_limit: Option<u64>,
    /// How often a load waiting for memory checks again.
    pub memory_retry: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8765".parse().expect("static address"),
            api_key_hashes: Vec::new(),
            insecure_no_auth: false,
            models_dir: glagol_core::models::ModelStore::default_dir(),
            default_model: "whisper-base".into(),
            aliases: HashMap::new(),
            preload: Vec::new(),
            idle_ttl: Some(Duration::from_secs(300)),
            wait_for_load: false,
            max_body_bytes: 100 << 20,
            max_audio_seconds: 3.0 * 3600.0,
            inference_timeout: Duration::from_secs(600),
            workers: 1,
            queue_depth: 16,
            // Off by default: on a 2-core CPU, batches of GigaAM requests
            // measured 6–15 % less throughput than one request at a time
            // (the encoder already keeps the cores busy; padding adds work).
            max_batch: 1,
            batch_wait: Duration::from_millis(5),
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(8),
            drain: Duration::from_secs(30),
            allowed_origins: Vec::new(),
            rate_limit_per_minute: None,
            metrics_listen: Some("127.0.0.1:9765".parse().expect("static address")),
            memory_limit: None,
            memory_retry: Duration::from_secs(10),
        }
    }
}

/// Hashes an API key for storage and comparison.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.trim().as_bytes()))
}

/// The TOML file's shape; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    /// Plain keys (hashed on load) …
    pub api_keys: Option<Vec<String>>,
    /// … or their SHA-256 hex digests.
    pub api_key_hashes: Option<Vec<String>>,
    pub insecure_no_auth: Option<bool>,
    pub models_dir: Option<PathBuf>,
    pub default_model: Option<String>,
    pub aliases: Option<HashMap<String, String>>,
    pub preload: Option<Vec<String>>,
    /// Seconds; -1 = never.
    pub idle_ttl: Option<i64>,
    pub wait_for_load: Option<bool>,
    pub max_body_bytes: Option<usize>,
    pub max_audio_seconds: Option<f64>,
    pub inference_timeout: Option<u64>,
    pub workers: Option<usize>,
    pub queue_depth: Option<usize>,
    pub max_batch: Option<usize>,
    /// Milliseconds.
    pub batch_wait_ms: Option<u64>,
    pub threads: Option<usize>,
    pub drain: Option<u64>,
    pub allowed_origins: Option<Vec<String>>,
    pub rate_limit_per_minute: Option<u32>,
    /// Address, or "off".
    pub metrics_listen: Option<String>,
    /// Megabytes.
    pub memory_limit_mb: Option<u64>,
    /// Seconds.
    pub memory_retry: Option<u64>,
}

impl FileConfig {
    pub fn load(path: &std::path::Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

impl ServerConfig {
    /// Checks what cannot be served safely.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.listen.ip().is_loopback()
            && self.api_key_hashes.is_empty()
            && !self.insecure_no_auth
        {
            anyhow::bail!(
                "refusing to listen on {} without API keys: configure --api-key (or api_keys in the config file), \
                 or pass --insecure-no-auth to serve an open endpoint on purpose",
                self.listen
            );
        }
        if self.workers == 0 {
            anyhow::bail!("workers must be at least 1");
        }
        if self.max_batch == 0 {
            anyhow::bail!("max_batch must be at least 1 (1 turns batching off)");
        }
        Ok(())
    }
}
