//! Server configuration, each setting declared once.
//!
//! The [`settings!`] table below is the only place a setting is named: it
//! yields [`Overrides`] — every setting optional — which is both the
//! command-line flags of `glagol serve` (with their `GLAGOL_*` environment
//! variables, through clap) and the TOML file's shape (through serde); and
//! [`Settings`], the merged values (flags and environment > file >
//! default). [`Config`] is a validated `Settings` with the values derived
//! from it; a reload (SIGHUP) builds a new one and applies only the
//! settings marked `reload`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use self::keys::{owner_name, KeySpec, Keys, Scope, Tenant};

/// When a changed setting takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// On SIGHUP.
    Reload,
    /// Only after a restart.
    Restart,
}

macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        #[arg($($arg:tt)*)]
        $name:ident: $ty:ty = $default:expr, $when:ident;
    )*) => {
        /// Settings as given on the command line, in the environment or in
        /// the file; `None` where not given.
        #[derive(Debug, Clone, Default, clap::Args, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Overrides {
            $(
                $(#[doc = $doc])*
                #[arg($($arg)*)]
                pub $name: Option<$ty>,
            )*
        }

        /// Every setting with its value.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Settings {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Settings { $( $name: $default, )* }
            }
        }

        impl Settings {
            /// Flags (and environment) over the file over the defaults.
            pub fn merge(flags: Overrides, file: Overrides) -> Settings {
                let mut s = Settings::default();
                $( if let Some(v) = flags.$name.or(file.$name) { s.$name = v; } )*
                s
            }

            /// The settings that differ from `new`, with when they apply.
            fn changes(&self, new: &Settings) -> Vec<(&'static str, When)> {
                let mut out = Vec::new();
                $( if self.$name != new.$name { out.push((stringify!($name), When::$when)); } )*
                out
            }

            /// Puts back into `new` the values that only a restart may change.
            fn keep_restart_only(&self, new: &mut Settings) {
                $( if When::$when == When::Restart { new.$name = self.$name.clone(); } )*
            }
        }
    };
}

settings! {
    /// Address to listen on (non-loopback needs API keys or --insecure-no-auth).
    #[arg(long, env = "GLAGOL_LISTEN", value_name = "ADDR")]
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8765)), Restart;
    /// An accepted API key (repeatable; comma-separated in GLAGOL_API_KEYS).
    #[arg(long = "api-key", env = "GLAGOL_API_KEYS", value_delimiter = ',', value_name = "KEY")]
    api_keys: Vec<String> = Vec::new(), Reload;
    /// An accepted API key given as its SHA-256 hex digest (repeatable).
    #[arg(long = "api-key-hash", env = "GLAGOL_API_KEY_HASHES", value_delimiter = ',', value_name = "SHA256")]
    api_key_hashes: Vec<String> = Vec::new(), Reload;
    /// Named keys with scopes and per-key limits (file only: `[[keys]]`; docs/security.md).
    #[arg(skip)]
    keys: Vec<KeySpec> = Vec::new(), Reload;
    /// Serve a non-loopback address without API keys.
    #[arg(long, env = "GLAGOL_INSECURE_NO_AUTH", num_args = 0..=1, default_missing_value = "true")]
    insecure_no_auth: bool = false, Restart;
    /// The model store (the global --models-dir / GLAGOL_MODELS_DIR).
    #[arg(skip)]
    models_dir: PathBuf = glagol_core::models::ModelStore::default_dir(), Restart;
    /// Model used when a request names none (and for `whisper-1`).
    #[arg(long, env = "GLAGOL_DEFAULT_MODEL", value_name = "MODEL")]
    default_model: String = "whisper-base".into(), Reload;
    /// Request model names mapped to installed models (file only).
    #[arg(skip)]
    aliases: HashMap<String, String> = HashMap::new(), Reload;
    /// Models to load at start (repeatable).
    #[arg(long, env = "GLAGOL_PRELOAD", value_delimiter = ',', value_name = "MODEL")]
    preload: Vec<String> = Vec::new(), Restart;
    /// Unload a model after this many idle seconds (-1: never; 0: as soon as idle).
    #[arg(long, env = "GLAGOL_IDLE_TTL", allow_hyphen_values = true, value_name = "SECONDS")]
    idle_ttl: i64 = 300, Reload;
    /// Wait for a cold model to load instead of answering 503.
    #[arg(long, env = "GLAGOL_WAIT_FOR_LOAD", num_args = 0..=1, default_missing_value = "true")]
    wait_for_load: bool = false, Reload;
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "GLAGOL_MAX_BODY_BYTES", value_name = "BYTES")]
    max_body_bytes: u64 = 100 << 20, Reload;
    /// Longest accepted audio, in seconds.
    #[arg(long, env = "GLAGOL_MAX_AUDIO_SECONDS", value_name = "SECONDS")]
    max_audio_seconds: f64 = 3.0 * 3600.0, Reload;
    /// Speaker-embedding model for diarization (`diarize=true`).
    #[arg(long, env = "GLAGOL_DIARIZATION_MODEL", value_name = "MODEL")]
    diarization_model: String = "campplus-zh-en".into(), Reload;
    /// Speaker-segmentation model for diarization.
    #[arg(long, env = "GLAGOL_SEGMENTATION_MODEL", value_name = "MODEL")]
    segmentation_model: String = "pyannote-segmentation-3.0".into(), Reload;
    /// Longest audio diarization runs on, in seconds (longer: 413 `diarization_too_long`).
    #[arg(long, env = "GLAGOL_MAX_DIARIZATION_SECONDS", value_name = "SECONDS")]
    max_diarization_seconds: f64 = 2.0 * 3600.0, Reload;
    /// Longest a request may take to recognise, in seconds.
    #[arg(long, env = "GLAGOL_INFERENCE_TIMEOUT", value_name = "SECONDS")]
    inference_timeout: u64 = 600, Reload;
    /// Concurrent inferences per model (worker threads).
    #[arg(long, env = "GLAGOL_WORKERS")]
    workers: usize = 1, Restart;
    /// Requests that may wait for a worker, per model (0: none wait).
    #[arg(long, env = "GLAGOL_QUEUE_DEPTH")]
    queue_depth: usize = 16, Restart;
    /// Items recognised together at most, for engines that gain from it (1: no batching).
    #[arg(long, env = "GLAGOL_MAX_BATCH")]
    max_batch: usize = 1, Restart;
    /// Milliseconds a batch waits for more items.
    #[arg(long, env = "GLAGOL_BATCH_WAIT_MS", value_name = "MS")]
    batch_wait_ms: u64 = 5, Restart;
    /// Threads per inference.
    #[arg(long, short, env = "GLAGOL_THREADS")]
    threads: usize = default_threads(), Restart;
    /// Run Whisper's encoder over its whole 30 s window even for shorter audio (slower).
    #[arg(long, env = "GLAGOL_WHISPER_FULL_WINDOW", num_args = 0..=1, default_missing_value = "true")]
    whisper_full_window: bool = false, Restart;
    /// Memory, in MB, for decoded audio of all requests in flight (0: unlimited).
    #[arg(long, env = "GLAGOL_AUDIO_MEMORY_MB", value_name = "MB")]
    audio_memory_mb: u64 = 2048, Reload;
    /// Seconds a client may take to send a request's head (and an idle
    /// keep-alive connection may wait for its next request).
    #[arg(long, env = "GLAGOL_HEADER_READ_TIMEOUT", value_name = "SECONDS")]
    header_read_timeout: u64 = 30, Restart;
    /// Live sessions per model at a time (more: close 1013 with `retry_after_ms`).
    #[arg(long, env = "GLAGOL_MAX_SESSIONS", value_name = "N")]
    max_sessions: usize = 32, Reload;
    /// Live sessions per API key (or client address without keys).
    #[arg(long, env = "GLAGOL_MAX_SESSIONS_PER_KEY", value_name = "N")]
    max_sessions_per_key: usize = 16, Reload;
    /// Seconds a live session may go without a message before it is closed.
    #[arg(long, env = "GLAGOL_SESSION_IDLE_TIMEOUT", value_name = "SECONDS")]
    session_idle_timeout: u64 = 60, Reload;
    /// Longest live session, in seconds of audio.
    #[arg(long, env = "GLAGOL_MAX_SESSION_SECONDS", value_name = "SECONDS")]
    max_session_seconds: u64 = 3600, Reload;
    /// Largest WebSocket message, in bytes (audio frames, JSON events).
    #[arg(long, env = "GLAGOL_MAX_FRAME_BYTES", value_name = "BYTES")]
    max_frame_bytes: usize = 1 << 20, Reload;
    /// Seconds of a live session's speech that may wait for recognition; a
    /// client further ahead is not read until recognition catches up.
    #[arg(long, env = "GLAGOL_MAX_LIVE_BACKLOG", value_name = "SECONDS")]
    max_live_backlog: u64 = 60, Reload;
    /// How many times faster than real time a live session's audio is read
    /// once it is `max_live_backlog` seconds ahead of its wall clock (0: unbounded).
    #[arg(long, env = "GLAGOL_MAX_LIVE_SPEED", value_name = "FACTOR")]
    max_live_speed: f64 = 10.0, Reload;
    /// Serve Wyoming (Home Assistant's speech-to-text protocol) here too:
    /// tcp://HOST:PORT (10300 by convention) or unix://PATH (off when empty).
    #[arg(long, env = "GLAGOL_WYOMING", value_name = "URI")]
    wyoming: String = String::new(), Restart;
    /// The model for a Wyoming language, LANG=MODEL (repeatable; `*=MODEL`
    /// for the others; default: the default model).
    #[arg(long = "wyoming-model", env = "GLAGOL_WYOMING_MODELS", value_delimiter = ',', value_name = "LANG=MODEL")]
    wyoming_models: Vec<String> = Vec::new(), Reload;
    /// Announce the Wyoming listener by zeroconf (`_wyoming._tcp`) as this
    /// instance name (`--wyoming-zeroconf` alone: `glagol`; TCP only).
    #[arg(long, env = "GLAGOL_WYOMING_ZEROCONF", num_args = 0..=1, default_missing_value = "glagol", value_name = "NAME")]
    wyoming_zeroconf: String = String::new(), Restart;
    /// Wyoming: end an utterance at the speaker's silence and answer before
    /// audio-stop (advertises that no external VAD is needed).
    #[arg(long, env = "GLAGOL_WYOMING_ENDPOINTING", num_args = 0..=1, default_missing_value = "true")]
    wyoming_endpointing: bool = false, Reload;
    /// Seconds to let in-flight requests finish after SIGTERM (0: exit at once).
    #[arg(long, env = "GLAGOL_DRAIN", value_name = "SECONDS")]
    drain: u64 = 30, Reload;
    /// A browser origin allowed besides loopback and same-origin ones (repeatable; `*` for any).
    #[arg(long = "allow-origin", env = "GLAGOL_ALLOWED_ORIGINS", value_delimiter = ',', value_name = "ORIGIN")]
    allowed_origins: Vec<String> = Vec::new(), Reload;
    /// Requests per minute per API key or client address (0: unlimited).
    #[arg(long = "rate-limit", env = "GLAGOL_RATE_LIMIT", value_name = "PER_MINUTE")]
    rate_limit_per_minute: u32 = 0, Reload;
    /// Where Prometheus /metrics is served ("off" to disable).
    #[arg(long, env = "GLAGOL_METRICS_LISTEN", value_name = "ADDR|off")]
    metrics_listen: String = "127.0.0.1:9765".into(), Restart;
    /// Memory, in MB, the server may grow to by loading models (0: what the system has available).
    #[arg(long, env = "GLAGOL_MEMORY_LIMIT_MB", value_name = "MB")]
    memory_limit_mb: u64 = 0, Reload;
    /// Seconds between checks of a load waiting for memory.
    #[arg(long, env = "GLAGOL_MEMORY_RETRY", value_name = "SECONDS")]
    memory_retry: u64 = 10, Reload;
    /// Where durable jobs keep their uploads and transcripts (and the embedded database);
    /// with a PostgreSQL store, a directory every node shares (e.g. an NFS mount).
    #[arg(long, visible_alias = "job-dir", env = "GLAGOL_JOBS_DIR", value_name = "DIR")]
    jobs_dir: PathBuf = glagol_core::data_dir().join("jobs"), Restart;
    /// The job store: `sqlite` (embedded, one node) or `postgres://user@host/db` (shared by nodes).
    #[arg(long, env = "GLAGOL_JOB_STORE", value_name = "sqlite|URL")]
    job_store: String = "sqlite".into(), Restart;
    /// This node's name in job leases and attempts (default: host name and process id).
    #[arg(long, env = "GLAGOL_NODE_ID", value_name = "NAME")]
    node_id: String = String::new(), Restart;
    /// `all`, `api` (accepts jobs, runs none) or `worker` (runs jobs, accepts none); api and
    /// worker need a PostgreSQL job store.
    #[arg(long, env = "GLAGOL_ROLE", value_name = "all|api|worker")]
    role: String = "all".into(), Restart;
    /// Largest job upload, in bytes (streamed to disk, never held in memory).
    #[arg(long, env = "GLAGOL_MAX_JOB_BYTES", value_name = "BYTES")]
    max_job_bytes: u64 = 2 << 30, Reload;
    /// Jobs recognised at once per model (they run in the background class).
    #[arg(long, env = "GLAGOL_JOB_CONCURRENCY", value_name = "N")]
    job_concurrency: usize = 1, Restart;
    /// Attempts a job gets when the server running it stops or crashes.
    #[arg(long, env = "GLAGOL_JOB_ATTEMPTS", value_name = "N")]
    job_attempts: u32 = 3, Reload;
    /// Seconds a running job's lease lasts without a heartbeat.
    #[arg(long, env = "GLAGOL_JOB_LEASE", value_name = "SECONDS")]
    job_lease: u64 = 30, Restart;
    /// Longest a job may take to recognise, in seconds (its model's load included).
    #[arg(long, env = "GLAGOL_JOB_TIMEOUT", value_name = "SECONDS")]
    job_timeout: u64 = 6 * 3600, Reload;
    /// Seconds a job's audio is kept after it ends (0: deleted when it ends).
    #[arg(long, env = "GLAGOL_JOB_AUDIO_RETENTION", value_name = "SECONDS")]
    job_audio_retention: u64 = 0, Reload;
    /// Seconds a finished job and its transcript are kept.
    #[arg(long, env = "GLAGOL_JOB_RESULT_RETENTION", value_name = "SECONDS")]
    job_result_retention: u64 = 7 * 86_400, Reload;
    /// A webhook signing secret, `whsec_` + base64 (repeatable for rotation: every one signs;
    /// default: one generated and kept in the jobs directory).
    #[arg(long = "webhook-secret", env = "GLAGOL_WEBHOOK_SECRET", value_delimiter = ',', value_name = "WHSEC")]
    webhook_secrets: Vec<String> = Vec::new(), Restart;
    /// Let webhooks reach private, loopback and link-local addresses.
    #[arg(long, env = "GLAGOL_WEBHOOK_ALLOW_PRIVATE", num_args = 0..=1, default_missing_value = "true")]
    webhook_allow_private: bool = false, Restart;
    /// A non-public address range webhooks may reach anyway, e.g. 10.0.0.0/8 (repeatable).
    #[arg(long = "webhook-allow-cidr", env = "GLAGOL_WEBHOOK_ALLOW_CIDRS", value_delimiter = ',', value_name = "CIDR")]
    webhook_allow_cidrs: Vec<String> = Vec::new(), Restart;
    /// Seconds one webhook attempt may take.
    #[arg(long, env = "GLAGOL_WEBHOOK_TIMEOUT", value_name = "SECONDS")]
    webhook_timeout: f64 = 15.0, Restart;
    /// Seconds before each webhook retry; after the last one a delivery is given up.
    #[arg(long, env = "GLAGOL_WEBHOOK_RETRIES", value_delimiter = ',', value_name = "SECONDS,…")]
    webhook_retries: Vec<f64> = vec![5.0, 300.0, 1800.0, 7200.0, 18_000.0, 36_000.0, 36_000.0], Restart;
    /// A PEM file of CA certificates webhook receivers may also chain to (a private CA);
    /// Mozilla's roots, built in, and the system's store are trusted anyway.
    #[arg(long, env = "GLAGOL_WEBHOOK_CA_FILE", value_name = "FILE")]
    webhook_ca_file: PathBuf = PathBuf::new(), Restart;
    /// A URL that gets model lifecycle webhooks: model_ready, model_unloaded,
    /// model_waiting_for_memory (repeatable).
    #[arg(long = "model-events-webhook", env = "GLAGOL_MODEL_EVENTS_WEBHOOKS", value_delimiter = ',', value_name = "URL")]
    model_event_webhooks: Vec<String> = Vec::new(), Restart;
    /// Also send model lifecycle webhooks to every webhook URL of a job not yet finished.
    #[arg(long, env = "GLAGOL_MODEL_EVENTS_TO_JOB_WEBHOOKS", num_args = 0..=1, default_missing_value = "true")]
    model_events_to_job_webhooks: bool = false, Restart;
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8)
}

impl Overrides {
    /// Reads a TOML file of settings.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Overrides> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

/// Hashes an API key for storage and comparison.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.trim().as_bytes()))
}

/// Validated settings and what follows from them.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    /// The accepted API keys by SHA-256 hex digest (empty: no auth).
    pub keys: Keys,
    /// Where metrics are served (None: nowhere).
    pub metrics_addr: Option<SocketAddr>,
}

impl Config {
    /// Checks every setting; an error names the setting and what it must be.
    pub fn new(settings: Settings) -> anyhow::Result<Config> {
        let s = &settings;
        let keys = keys::keys(&s.api_keys, &s.api_key_hashes, &s.keys)?;
        if !s.listen.ip().is_loopback() && keys.is_empty() && !s.insecure_no_auth {
            anyhow::bail!(
                "refusing to listen on {} without API keys: configure --api-key (or api_keys in the config file), \
                 or pass --insecure-no-auth to serve an open endpoint on purpose",
                s.listen
            );
        }
        validate::ranges(s)?;
        let metrics_addr = match s.metrics_listen.as_str() {
            "off" => None,
            addr => Some(addr.parse().map_err(|e| {
                anyhow::anyhow!("metrics_listen must be an address such as 127.0.0.1:9765, or \"off\": {addr:?}: {e}")
            })?),
        };
        Ok(Config {
            keys,
            metrics_addr,
            settings,
        })
    }

    /// None: never unload.
    pub fn idle_ttl(&self) -> Option<Duration> {
        u64::try_from(self.settings.idle_ttl)
            .ok()
            .map(Duration::from_secs)
    }

    pub fn inference_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.inference_timeout)
    }

    pub fn job_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.job_timeout)
    }

    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.settings.drain)
    }

    pub fn batch_wait(&self) -> Duration {
        Duration::from_millis(self.settings.batch_wait_ms)
    }

    /// Bytes the process may grow to by loading models (None: the system's available memory).
    pub fn memory_limit(&self) -> Option<u64> {
        (self.settings.memory_limit_mb > 0).then_some(self.settings.memory_limit_mb << 20)
    }

    /// Bytes of decoded audio allowed in flight (None: unlimited).
    pub fn audio_memory(&self) -> Option<u64> {
        (self.settings.audio_memory_mb > 0).then_some(self.settings.audio_memory_mb << 20)
    }

    pub fn memory_retry(&self) -> Duration {
        Duration::from_secs(self.settings.memory_retry)
    }

    /// A request's model name (a configured alias, one of OpenAI's —
    /// `whisper-1`, `gpt-…` — or none) as an installed name.
    pub fn resolve_model(&self, name: Option<&str>) -> String {
        let s = &self.settings;
        match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) if s.aliases.contains_key(n) => s.aliases[n].clone(),
            Some("whisper-1") | None => s.default_model.clone(),
            Some(n) if n.starts_with("gpt-") => s.default_model.clone(),
            Some(n) => n.to_string(),
        }
    }

    /// The configuration a reload yields: `new`'s reloadable settings over
    /// this one's restart-only ones, with a note per change.
    pub fn reloaded(&self, mut new: Settings) -> anyhow::Result<(Config, Vec<String>)> {
        let mut notes = Vec::new();
        for (name, when) in self.settings.changes(&new) {
            notes.push(match when {
                When::Reload => format!("{name} reloaded"),
                When::Restart => format!("{name} changed; restart to apply it"),
            });
        }
        self.settings.keep_restart_only(&mut new);
        Ok((Config::new(new)?, notes))
    }
}

/// The configuration in force, swapped whole on reload; readers take a
/// snapshot (an `Arc`) per request.
pub struct Current(RwLock<Arc<Config>>);

impl Current {
    pub fn new(config: Config) -> Self {
        Current(RwLock::new(Arc::new(config)))
    }

    pub fn get(&self) -> Arc<Config> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, config: Config) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }
}

mod keys;
#[cfg(test)]
mod tests;
mod validate;
