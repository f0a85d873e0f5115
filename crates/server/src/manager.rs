//! The model manager: which models are loaded, loading them on demand
//! (with a warm-up inference before they count as ready), unloading them
//! when idle, and the per-model worker pool and queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use glagol_core::engine::{self, Engine, EngineConfig, TranscribeOptions};
use glagol_core::models::{EngineKind, ModelStore};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::batch::Batcher;
use crate::error::ApiError;
use crate::gate::Gate;

/// Where a model is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Unloaded,
    Loading,
    Ready,
    WaitingForMemory,
    Failed,
}

/// A lifecycle event, sent to `/v1/models/events` subscribers.
#[derive(Debug, Clone, Serialize)]
pub struct ModelEvent {
    pub event: &'static str,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

struct Slot {
    state: State,
    engine: Option<Arc<dyn Engine>>,
    error: Option<String>,
    loaded_at: Option<u64>,
    last_used: Instant,
    resident_bytes: Option<u64>,
    gate: Arc<Gate>,
    /// Cross-request batching, for engines that gain from it.
    batcher: Option<Arc<Batcher>>,
    /// Bumped by every load; a load thread whose generation is no longer
    /// current (unloaded, then loaded again) gives up.
    generation: u64,
}

/// What `/v1/models` reports for one model.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    pub id: String,
    /// Always `model`.
    #[schema(value_type = String)]
    pub object: &'static str,
    /// When the model file was installed (Unix seconds).
    pub created: u64,
    #[schema(value_type = String)]
    pub owned_by: &'static str,
    /// `whisper` or `gigaam`.
    #[schema(value_type = String)]
    pub engine: EngineKind,
    /// ISO-639-1 codes; `*` = any (Whisper).
    pub languages: Vec<String>,
    pub state: State,
    /// Unix seconds.
    pub loaded_at: Option<u64>,
    /// Process RSS growth measured when the model loaded.
    pub resident_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Requests waiting for a worker of this model.
    pub queued: usize,
}

pub enum LoadOutcome {
    AlreadyReady,
    Initiated,
}

/// What a request gets to run on a ready model.
pub struct Lease {
    pub engine: Arc<dyn Engine>,
    pub gate: Arc<Gate>,
    pub batcher: Option<Arc<Batcher>>,
}

/// Cross-request batching of GigaAM requests.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Requests recognised together at most (1: no batching).
    pub max_batch: usize,
    /// How long a request waits for company.
    pub max_wait: Duration,
}

pub struct ModelManager {
    store: ModelStore,
    engine_config: EngineConfig,
    workers: usize,
    queue_depth: usize,
    batching: Batching,
    slots: Mutex<HashMap<String, Slot>>,
    events: broadcast::Sender<ModelEvent>,
    /// Bytes the process may grow to (0: whatever the system has free).
    memory_limit: AtomicU64,
    /// How often a load waiting for memory checks again, in ms.
    memory_retry_ms: AtomicU64,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Resident set size of this process, in bytes.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

impl ModelManager {
    pub fn new(
        store: ModelStore,
        engine_config: EngineConfig,
        workers: usize,
        queue_depth: usize,
        batching: Batching,
    ) -> Arc<Self> {
        Arc::new(ModelManager {
            store,
            engine_config,
            workers,
            queue_depth,
            batching,
            slots: Mutex::new(HashMap::new()),
            events: broadcast::channel(256).0,
            memory_limit: AtomicU64::new(0),
            memory_retry_ms: AtomicU64::new(10_000),
        })
    }

    /// Sets the memory budget (None: the system's available memory) and
    /// how often a waiting load checks again. Takes effect for waiting
    /// loads at their next check.
    pub fn set_memory_policy(&self, limit_bytes: Option<u64>, retry: Duration) {
        self.memory_limit
            .store(limit_bytes.unwrap_or(0), Ordering::SeqCst);
        self.memory_retry_ms
            .store(retry.as_millis().max(50) as u64, Ordering::SeqCst);
    }

    /// Whether loading `name` fits in memory now; `Err` says what is short.
    fn memory_fits(&self, name: &str) -> Result<(), String> {
        let Some(model) = self.store.get(name) else {
            return Ok(()); // the load reports the missing model
        };
        let needed = estimated_bytes(&model.path);
        let limit = self.memory_limit.load(Ordering::SeqCst);
        let available = match (limit, rss_bytes()) {
            (0, _) => mem_available_bytes(),
            (limit, Some(rss)) => Some(limit.saturating_sub(rss)),
            (limit, None) => Some(limit),
        };
        match available {
            Some(free) if free < needed => Err(format!(
                "needs about {} MB, {} MB available{}",
                needed >> 20,
                free >> 20,
                if limit > 0 {
                    format!(" under the {} MB memory limit", limit >> 20)
                } else {
                    String::new()
                }
            )),
            _ => Ok(()),
        }
    }

    /// Parks a load until memory allows it, as `waiting_for_memory`;
    /// false when the model was unloaded meanwhile.
    fn wait_for_memory(&self, name: &str, generation: u64) -> bool {
        let mut announced = false;
        loop {
            let fits = self.memory_fits(name);
            {
                let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
                let slot = self.slot(&mut slots, name);
                if slot.generation != generation
                    || !matches!(slot.state, State::Loading | State::WaitingForMemory)
                {
                    return false;
                }
                match &fits {
                    Ok(()) => {
                        slot.state = State::Loading;
                        slot.error = None;
                    }
                    Err(why) => {
                        slot.state = State::WaitingForMemory;
                        slot.error = Some(why.clone());
                    }
                }
            }
            match fits {
                Ok(()) => {
                    if announced {
                        self.emit("model_loading", name, None);
                    }
                    return true;
                }
                Err(why) => {
                    if !announced {
                        tracing::warn!(model = name, "waiting for memory: {why}");
                        self.emit("model_waiting_for_memory", name, Some(why));
                        announced = true;
                    }
                    let retry = self.memory_retry_ms.load(Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(retry));
                }
            }
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ModelEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: &'static str, model: &str, message: Option<String>) {
        let _ = self.events.send(ModelEvent {
            event,
            model: model.to_string(),
            message,
        });
    }

    fn slot<'a>(&self, slots: &'a mut HashMap<String, Slot>, name: &str) -> &'a mut Slot {
        slots.entry(name.to_string()).or_insert_with(|| Slot {
            state: State::Unloaded,
            engine: None,
            error: None,
            loaded_at: None,
            last_used: Instant::now(),
            resident_bytes: None,
            gate: Gate::new(self.workers, self.queue_depth),
            batcher: None,
            generation: 0,
        })
    }

    /// Every installed model with its state.
    pub fn list(&self) -> Vec<ModelInfo> {
        let installed = self.store.list().unwrap_or_default();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        installed
            .into_iter()
            .map(|m| {
                let slot = self.slot(&mut slots, &m.name);
                let languages = match m.engine {
                    EngineKind::Gigaam => vec!["ru".to_string()],
                    EngineKind::Whisper => vec!["*".to_string()],
                    EngineKind::Vad => vec![],
                };
                ModelInfo {
                    created: std::fs::metadata(&m.path)
                        .and_then(|md| md.modified())
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map(|d| d.as_secs())
                        .unwrap_or(0),
                    id: m.name,
                    object: "model",
                    owned_by: "glagol",
                    engine: m.engine,
                    languages,
                    state: slot.state,
                    loaded_at: slot.loaded_at,
                    resident_bytes: slot.resident_bytes,
                    error: slot.error.clone(),
                    queued: slot.gate.queued(),
                }
            })
            .filter(|m| m.engine != EngineKind::Vad)
            .collect()
    }

    pub fn info(&self, name: &str) -> Option<ModelInfo> {
        self.list().into_iter().find(|m| m.id == name)
    }

    fn installed(&self, name: &str) -> Result<(), ApiError> {
        match self.store.get(name) {
            Some(m) if m.engine != EngineKind::Vad => Ok(()),
            _ => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!("model '{name}' is not installed; see GET /v1/models, or run `glagol models pull {name}`"),
            )),
        }
    }

    /// Starts loading `name` unless it is ready or loading already.
    pub fn load(self: &Arc<Self>, name: &str) -> Result<LoadOutcome, ApiError> {
        self.installed(name)?;
        let generation = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let slot = self.slot(&mut slots, name);
            match slot.state {
                State::Ready => return Ok(LoadOutcome::AlreadyReady),
                State::Loading | State::WaitingForMemory => return Ok(LoadOutcome::Initiated),
                State::Unloaded | State::Failed => {
                    slot.state = State::Loading;
                    slot.error = None;
                    slot.generation += 1;
                    slot.generation
                }
            }
        };
        self.emit("model_loading", name, None);
        let me = self.clone();
        let name = name.to_string();
        std::thread::Builder::new()
            .name(format!("load-{name}"))
            .spawn(move || me.load_now(&name, generation))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "load_failed",
                    e.to_string(),
                )
            })?;
        Ok(LoadOutcome::Initiated)
    }

    /// Loads and warms up a model on the calling thread, first waiting for
    /// memory if it does not fit.
    fn load_now(&self, name: &str, generation: u64) {
        // An allocation failure despite the estimate also means "wait".
        while self.wait_for_memory(name, generation) {
            match self.try_load(name, generation) {
                Err(why) if is_out_of_memory(&why) => {
                    {
                        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
                        let slot = self.slot(&mut slots, name);
                        if slot.generation != generation || slot.state != State::Loading {
                            return;
                        }
                        slot.state = State::WaitingForMemory;
                        slot.error = Some(why.clone());
                    }
                    tracing::warn!(model = name, "out of memory while loading: {why}");
                    self.emit("model_waiting_for_memory", name, Some(why));
                    let retry = self.memory_retry_ms.load(Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(retry));
                }
                _ => return,
            }
        }
    }

    /// One load attempt; `Err` carries the message of an out-of-memory
    /// failure (left to the caller), other outcomes are recorded here.
    fn try_load(&self, name: &str, generation: u64) -> Result<(), String> {
        let before = rss_bytes();
        let started = Instant::now();
        let result = self
            .store
            .resolve(name)
            .map_err(|e| e.to_string())
            .and_then(|m| engine::load(&m, &self.engine_config).map_err(|e| e.to_string()))
            .and_then(|e| {
                // A short inference before `ready`, so the first real
                // request does not pay for lazy initialisation.
                let silence = vec![0.0f32; 16_000];
                let options = TranscribeOptions {
                    language: Some(
                        if e.kind() == EngineKind::Gigaam {
                            "ru"
                        } else {
                            "en"
                        }
                        .into(),
                    ),
                    ..Default::default()
                };
                e.transcribe(&silence, &options)
                    .map_err(|err| format!("warm-up failed: {err}"))?;
                Ok(Arc::<dyn Engine>::from(e))
            });
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = self.slot(&mut slots, name);
        if slot.state != State::Loading || slot.generation != generation {
            return Ok(()); // unloaded while loading: drop the result
        }
        match result {
            Ok(engine) => {
                // A batching engine takes a batch's worth of requests per
                // worker; the batcher runs `workers` batches at a time.
                let batched = engine.kind() == EngineKind::Gigaam && self.batching.max_batch > 1;
                slot.batcher = if batched {
                    Batcher::new(
                        engine.clone(),
                        name,
                        self.workers,
                        self.batching.max_batch,
                        self.batching.max_wait,
                    )
                    .map_err(|e| tracing::warn!(model = name, "no batching: {e}"))
                    .ok()
                } else {
                    None
                };
                let permits = if slot.batcher.is_some() {
                    self.workers * self.batching.max_batch
                } else {
                    self.workers
                };
                slot.gate = Gate::new(permits, self.queue_depth);
                slot.engine = Some(engine);
                slot.state = State::Ready;
                slot.loaded_at = Some(now_unix());
                slot.last_used = Instant::now();
                slot.resident_bytes = match (before, rss_bytes()) {
                    (Some(b), Some(a)) => Some(a.saturating_sub(b)),
                    _ => None,
                };
                drop(slots);
                metrics::histogram!("glagol_model_load_seconds", "model" => name.to_string())
                    .record(started.elapsed().as_secs_f64());
                tracing::info!(model = name, "model ready");
                self.emit("model_ready", name, None);
            }
            Err(message) if is_out_of_memory(&message) => return Err(message),
            Err(message) => {
                slot.state = State::Failed;
                slot.error = Some(message.clone());
                drop(slots);
                tracing::warn!(model = name, "model failed to load: {message}");
                self.emit("model_failed", name, Some(message));
            }
        }
        Ok(())
    }

    /// Unloads a model; returns whether it was loaded.
    pub fn unload(&self, name: &str) -> Result<bool, ApiError> {
        self.installed(name)?;
        let engine = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let slot = self.slot(&mut slots, name);
            let was = slot.state;
            slot.state = State::Unloaded;
            slot.loaded_at = None;
            slot.resident_bytes = None;
            if was == State::Unloaded {
                return Ok(false);
            }
            (slot.engine.take(), slot.batcher.take())
        };
        // Requests still holding the engine keep it alive until they end.
        let (engine, batcher) = engine;
        if let Some(b) = batcher {
            b.stop();
        }
        drop(engine);
        release_memory();
        self.emit("model_unloaded", name, None);
        Ok(true)
    }

    /// The engine for a request, or 503 `model_not_ready` (and the load
    /// started) when it is not loaded; with `wait`, waits for the load.
    pub async fn acquire(self: &Arc<Self>, name: &str, wait: bool) -> Result<Lease, ApiError> {
        self.installed(name)?;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            {
                let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
                let slot = self.slot(&mut slots, name);
                if let (State::Ready, Some(engine)) = (slot.state, &slot.engine) {
                    slot.last_used = Instant::now();
                    return Ok(Lease {
                        engine: engine.clone(),
                        gate: slot.gate.clone(),
                        batcher: slot.batcher.clone(),
                    });
                }
                if slot.state == State::Failed && wait {
                    let msg = slot.error.clone().unwrap_or_default();
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "model_failed",
                        format!("model '{name}' failed to load: {msg}"),
                    ));
                }
            }
            self.load(name)?;
            // Waiting for memory may last indefinitely: never hold a
            // request on it, even when configured to wait for loads.
            let waiting_for_memory = {
                let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
                slots
                    .get(name)
                    .filter(|s| s.state == State::WaitingForMemory)
                    .and_then(|s| s.error.clone())
            };
            if !wait || waiting_for_memory.is_some() || Instant::now() > deadline {
                let message = match waiting_for_memory {
                    Some(why) => {
                        format!("model '{name}' is waiting for memory ({why}); retry later")
                    }
                    None => format!("model '{name}' is loading; retry after a few seconds"),
                };
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "model_not_ready",
                    message,
                )
                .retry_after(5));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Marks a model used now (keeps it from the idle unloader).
    pub fn touch(&self, name: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get_mut(name) {
            slot.last_used = Instant::now();
        }
    }

    /// Unloads ready models idle for longer than `ttl`.
    pub fn reap_idle(&self, ttl: Duration) {
        let idle: Vec<String> = {
            let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots
                .iter()
                .filter(|(_, s)| {
                    s.state == State::Ready && s.last_used.elapsed() >= ttl && s.gate.idle()
                })
                .map(|(n, _)| n.clone())
                .collect()
        };
        for name in idle {
            tracing::info!(model = %name, "unloading idle model");
            let _ = self.unload(&name);
        }
    }

    /// Whether any model can take work: some installed, not all saturated.
    pub fn readiness(&self) -> Result<(), String> {
        let models = self.list();
        if models.is_empty() {
            return Err("no models installed".into());
        }
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let ready: Vec<_> = slots.values().filter(|s| s.state == State::Ready).collect();
        if !ready.is_empty() && ready.iter().all(|s| s.gate.saturated()) {
            return Err("saturated: every loaded model's queue is full".into());
        }
        Ok(())
    }
}

/// The memory a model needs once loaded, estimated from its files: the
/// weights plus half again for runtime buffers. For a directory (GigaAM:
/// several heads, only one loaded) the largest file stands for the weights.
fn estimated_bytes(path: &std::path::Path) -> u64 {
    let weights = if path.is_dir() {
        std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    } else {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    };
    weights + weights / 2
}

/// Whether a load error is an allocation failure (ONNX Runtime, ggml, or
/// the system), which waiting may cure, rather than a broken model.
fn is_out_of_memory(message: &str) -> bool {
    let m = message.to_lowercase();
    [
        "out of memory",
        "bad_alloc",
        "bad allocation",
        "failed to allocate",
        "cannot allocate memory",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// `MemAvailable` from /proc/meminfo, in bytes.
fn mem_available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Hands freed heap back to the operating system, so unloading a model
/// shows up in RSS (glibc keeps freed memory otherwise).
fn release_memory() {
    #[cfg(target_os = "linux")]
    unsafe {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        malloc_trim(0);
    }
}
