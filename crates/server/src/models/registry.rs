//! The model registry: one slot per installed model, with its lifecycle
//! state, its scheduler while loaded, and the leases held on it.
//!
//! State changes are published twice: on a per-slot `watch` channel, which
//! is what a request waiting for a load awaits (no polling), and as
//! [`ModelEvent`]s on a broadcast channel for `/v1/models/events`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glagol_core::engine::EngineConfig;
use glagol_core::models::{InstalledModel, ModelStore};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::installed::Installed;
use super::{Lease, LoadEngine};
use crate::error::{ErrorKind, ServiceError};
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::sys;

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

impl State {
    pub const ALL: [State; 5] = [
        State::Unloaded,
        State::Loading,
        State::Ready,
        State::WaitingForMemory,
        State::Failed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::Unloaded => "unloaded",
            State::Loading => "loading",
            State::Ready => "ready",
            State::WaitingForMemory => "waiting_for_memory",
            State::Failed => "failed",
        }
    }
}

/// A lifecycle event: `model_loading`, `model_ready`, `model_unloaded`,
/// `model_waiting_for_memory`, `model_failed`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelEvent {
    #[schema(value_type = String)]
    pub event: &'static str,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A model's state as reported to clients.
#[derive(Debug, Clone)]
pub struct ModelStatus {
    pub state: State,
    /// Unix seconds.
    pub loaded_at: Option<u64>,
    /// Process RSS growth measured when the model loaded.
    pub resident_bytes: Option<u64>,
    pub error: Option<String>,
    /// Items waiting for a worker.
    pub queued: usize,
    /// Leases held now.
    pub leases: usize,
}

pub enum LoadOutcome {
    AlreadyReady,
    Initiated,
}

pub(super) struct Slot {
    pub state: State,
    pub watch: watch::Sender<State>,
    pub scheduler: Option<Arc<Scheduler>>,
    pub error: Option<String>,
    pub loaded_at: Option<u64>,
    pub last_used: Instant,
    pub resident_bytes: Option<u64>,
    pub leases: usize,
    /// Bumped by every load and unload: a load thread or lease of an older
    /// generation no longer speaks for the slot.
    pub generation: u64,
    /// The running load's cancel flag.
    pub cancel: Arc<AtomicBool>,
    /// Memory the running load is expected to take (admission of others).
    pub reserved: u64,
    /// Failed loads in a row, and when another may start.
    pub failures: u32,
    pub retry_at: Option<Instant>,
    /// Held by a load thread for its whole run: one load per model at a time.
    pub load_lock: Arc<Mutex<()>>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            state: State::Unloaded,
            watch: watch::channel(State::Unloaded).0,
            scheduler: None,
            error: None,
            loaded_at: None,
            last_used: Instant::now(),
            resident_bytes: None,
            leases: 0,
            generation: 0,
            cancel: Arc::new(AtomicBool::new(false)),
            reserved: 0,
            failures: 0,
            retry_at: None,
            load_lock: Arc::new(Mutex::new(())),
        }
    }

    pub fn set_state(&mut self, state: State) {
        self.state = state;
        self.watch.send_replace(state);
    }
}

pub struct Registry {
    pub(super) installed: Installed,
    pub(super) engine_config: EngineConfig,
    pub(super) scheduling: SchedulerConfig,
    pub(super) load_engine: LoadEngine,
    slots: Mutex<HashMap<String, Slot>>,
    events: broadcast::Sender<ModelEvent>,
    /// Bytes the process may grow to (0: whatever the system has free).
    pub(super) memory_limit: AtomicU64,
    /// How often a load waiting for memory checks again, in ms.
    pub(super) memory_retry_ms: AtomicU64,
}

fn status_of(slot: Option<&Slot>) -> ModelStatus {
    match slot {
        Some(slot) => ModelStatus {
            state: slot.state,
            loaded_at: slot.loaded_at,
            resident_bytes: slot.resident_bytes,
            error: slot.error.clone(),
            queued: slot.scheduler.as_ref().map_or(0, |s| s.queued()),
            leases: slot.leases,
        },
        None => ModelStatus {
            state: State::Unloaded,
            loaded_at: None,
            resident_bytes: None,
            error: None,
            queued: 0,
            leases: 0,
        },
    }
}

pub(super) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Registry {
    pub fn new(
        store: ModelStore,
        engine_config: EngineConfig,
        scheduling: SchedulerConfig,
        load_engine: LoadEngine,
    ) -> Arc<Registry> {
        Arc::new(Registry {
            installed: Installed::new(store),
            engine_config,
            scheduling,
            load_engine,
            slots: Mutex::new(HashMap::new()),
            events: broadcast::channel(256).0,
            memory_limit: AtomicU64::new(0),
            memory_retry_ms: AtomicU64::new(10_000),
        })
    }

    /// Sets the memory budget (None: the system's available memory) and how
    /// often a waiting load checks again; waiting loads see it at their next check.
    pub fn set_memory_policy(&self, limit_bytes: Option<u64>, retry: Duration) {
        self.memory_limit
            .store(limit_bytes.unwrap_or(0), Ordering::SeqCst);
        self.memory_retry_ms
            .store(retry.as_millis().max(50) as u64, Ordering::SeqCst);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ModelEvent> {
        self.events.subscribe()
    }

    pub(super) fn emit(&self, event: &'static str, model: &str, message: Option<String>) {
        let _ = self.events.send(ModelEvent {
            event,
            model: model.to_string(),
            message,
        });
    }

    pub(super) fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every installed model with its status, by name.
    pub fn list(&self) -> Vec<(InstalledModel, ModelStatus)> {
        let installed = self.installed.list();
        let slots = self.slots();
        installed
            .into_iter()
            .map(|m| {
                let status = status_of(slots.get(&m.name));
                (m, status)
            })
            .collect()
    }

    /// One installed model with its status, or 404 `model_not_found`.
    pub fn get(&self, name: &str) -> Result<(InstalledModel, ModelStatus), ServiceError> {
        let model = self.installed(name)?;
        let status = status_of(self.slots().get(name));
        Ok((model, status))
    }

    /// An installed model of any kind (the diarization models too).
    pub fn installed_any(&self, name: &str) -> Option<InstalledModel> {
        self.installed.any(name)
    }

    /// The installed model `name`, or 404 `model_not_found`.
    pub fn installed(&self, name: &str) -> Result<InstalledModel, ServiceError> {
        self.installed.get(name).ok_or_else(|| {
            let pull = if name.len() <= 64 { name } else { "NAME" };
            ServiceError::new(
                ErrorKind::NotFound,
                "model_not_found",
                format!(
                    "model {} is not installed; see GET /v1/models, or run `glagol models pull {pull}`",
                    glagol_core::engine::quoted(name)
                ),
            )
        })
    }

    /// Starts loading `name` unless it is ready or loading already (an
    /// explicit load also retries a failed model at once).
    pub fn load(self: &Arc<Self>, name: &str) -> Result<LoadOutcome, ServiceError> {
        self.installed(name)?;
        let mut slots = self.slots();
        let slot = slots.entry(name.to_string()).or_insert_with(Slot::new);
        match slot.state {
            State::Ready => Ok(LoadOutcome::AlreadyReady),
            State::Loading | State::WaitingForMemory => Ok(LoadOutcome::Initiated),
            State::Unloaded | State::Failed => {
                self.start_load(name, slot)?;
                Ok(LoadOutcome::Initiated)
            }
        }
    }

    /// A lease on a ready model. A model that is not ready starts loading;
    /// then, with `wait`, the call waits for it (woken by the state change)
    /// up to that long, else answers 503 `model_not_ready`. A model whose
    /// load failed answers `model_failed` until its retry backoff ends.
    pub async fn acquire(
        self: &Arc<Self>,
        name: &str,
        wait: Option<Duration>,
    ) -> Result<Lease, ServiceError> {
        self.installed(name)?;
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        loop {
            let mut changed = {
                let mut slots = self.slots();
                let slot = slots.entry(name.to_string()).or_insert_with(Slot::new);
                match slot.state {
                    State::Ready => {
                        if let Some(scheduler) = &slot.scheduler {
                            slot.leases += 1;
                            slot.last_used = Instant::now();
                            return Ok(Lease::new(
                                self.clone(),
                                name,
                                slot.generation,
                                scheduler.clone(),
                            ));
                        }
                    }
                    State::Failed => match slot.retry_at {
                        Some(at) if at > Instant::now() => {
                            let message = slot.error.clone().unwrap_or_default();
                            return Err(ServiceError::unavailable(
                                "model_failed",
                                format!("model '{name}' failed to load: {message}"),
                            )
                            .retry_after(at - Instant::now()));
                        }
                        _ => self.start_load(name, slot)?,
                    },
                    State::Unloaded => self.start_load(name, slot)?,
                    // Waiting for memory may last indefinitely: never hold a
                    // request on it.
                    State::WaitingForMemory => {
                        let why = slot.error.clone().unwrap_or_default();
                        return Err(ServiceError::unavailable(
                            "model_not_ready",
                            format!("model '{name}' is waiting for memory ({why}); retry later"),
                        )
                        .retry_after(Duration::from_secs(5)));
                    }
                    State::Loading => {}
                }
                slot.watch.subscribe()
            };
            let not_ready = || {
                ServiceError::unavailable(
                    "model_not_ready",
                    format!("model '{name}' is loading; retry after a few seconds"),
                )
                .retry_after(Duration::from_secs(5))
            };
            let Some(deadline) = deadline else {
                return Err(not_ready());
            };
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(not_ready()),
            }
        }
    }

    /// Drops a lease (called by [`Lease`]'s `Drop`).
    pub(super) fn release(&self, name: &str, generation: u64) {
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(name) {
            if slot.generation == generation {
                slot.leases = slot.leases.saturating_sub(1);
                slot.last_used = Instant::now();
            }
        }
    }

    /// Unloads a model (waiting for its running work to finish); returns
    /// whether it was loaded or loading. Blocks: call off the async runtime.
    pub fn unload(&self, name: &str) -> Result<bool, ServiceError> {
        self.installed(name)?;
        Ok(self.unload_if(name, |_| true))
    }

    /// Unloads `name` if `idle` says so of its slot, under the lock.
    fn unload_if(&self, name: &str, unload: impl Fn(&Slot) -> bool) -> bool {
        let scheduler = {
            let mut slots = self.slots();
            let Some(slot) = slots.get_mut(name) else {
                return false;
            };
            if slot.state == State::Unloaded || !unload(slot) {
                return false;
            }
            slot.cancel.store(true, Ordering::SeqCst);
            slot.generation += 1;
            slot.leases = 0;
            slot.loaded_at = None;
            slot.resident_bytes = None;
            slot.reserved = 0;
            slot.error = None;
            slot.failures = 0;
            slot.retry_at = None;
            slot.set_state(State::Unloaded);
            slot.scheduler.take()
        };
        if let Some(s) = scheduler {
            s.stop();
        }
        sys::release_memory();
        self.emit("model_unloaded", name, None);
        true
    }

    /// Unloads ready models without leases, idle for at least `ttl`.
    /// Blocks: call off the async runtime.
    pub fn reap_idle(&self, ttl: Duration) {
        let candidates: Vec<String> = self.slots().keys().cloned().collect();
        for name in candidates {
            let idle = |s: &Slot| {
                s.state == State::Ready
                    && s.leases == 0
                    && s.last_used.elapsed() >= ttl
                    && s.scheduler
                        .as_ref()
                        .is_none_or(|q| q.queued() == 0 && q.running() == 0)
            };
            if self.unload_if(&name, idle) {
                tracing::info!(model = %name, "unloaded idle model");
            }
        }
    }

    /// Fails the waiting work of every model with `why` (the drain
    /// deadline of a shutdown); running work goes on.
    pub fn abandon_queued(&self, why: &ServiceError) {
        let schedulers: Vec<Arc<Scheduler>> = self
            .slots()
            .values()
            .filter_map(|s| s.scheduler.clone())
            .collect();
        for s in schedulers {
            s.abandon_queued(why);
        }
    }

    /// The end of a shutdown: unloads every model (a load is cancelled,
    /// running engine work ends at the engine's next cancellation point) and
    /// waits for the workers and load threads to return. The process must
    /// not exit while one is inside ONNX Runtime or whisper.cpp: their
    /// static destructors run at exit and can pull the ground from under it
    /// (a crash instead of exit 0). Blocks: call off the async runtime.
    pub fn stop_all(&self) {
        let names: Vec<String> = self.slots().keys().cloned().collect();
        for name in &names {
            self.unload_if(name, |_| true);
        }
        let loads: Vec<_> = self.slots().values().map(|s| s.load_lock.clone()).collect();
        for load in loads {
            drop(load.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }

    /// Whether any model can take work: some installed, not all saturated.
    pub fn readiness(&self) -> Result<(), String> {
        if self.installed.list().is_empty() {
            return Err("no models installed".into());
        }
        let slots = self.slots();
        let ready: Vec<_> = slots
            .values()
            .filter_map(|s| s.scheduler.as_ref().filter(|_| s.state == State::Ready))
            .collect();
        if !ready.is_empty() && ready.iter().all(|s| s.saturated()) {
            return Err("saturated: every loaded model's queue is full".into());
        }
        Ok(())
    }
}
