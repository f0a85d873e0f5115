//! Durable transcription jobs: an upload accepted is never lost.
//!
//! A job is accepted only once its audio is flushed to disk (`files`) and
//! its row committed (`store`, SQLite by default, behind the [`JobStore`]
//! trait so several nodes can later share PostgreSQL). The [`runner`]
//! claims jobs with a lease, recognises them through the service layer in
//! the scheduler's background class (live sessions and interactive
//! requests go first), persists progress at every segment — the progress
//! write is also the lease's heartbeat — and ends each attempt with one
//! fenced transaction that also writes the webhook outbox row the
//! [`webhook::sender`] delivers. A job whose node stopped is requeued from
//! its stored audio; after `job_attempts` it fails with `attempts_exhausted`.

pub mod files;
mod maintenance;
pub mod model;
#[cfg(feature = "postgres")]
pub mod postgres;
mod runner;
pub mod sqlite;
pub mod store;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use self::files::JobFiles;
pub use self::model::{Job, JobEvent, JobParams, JobRecord, JobStatus};
pub use self::store::{Cancelled, Inserted, JobStore, ListQuery, StoreError};
use self::webhook::guard::Guard;
use crate::error::{ErrorKind, ServiceError};
use crate::state::AppState;

/// When a client may try again after the job store was unreachable.
const STORE_RETRY: Duration = Duration::from_secs(5);

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => {
                ServiceError::new(ErrorKind::NotFound, "job_not_found", "no such job")
            }
            StoreError::Conflict(status) => ServiceError::new(
                ErrorKind::Conflict,
                "job_finished",
                format!(
                    "the job is {}; only queued and running jobs can be cancelled \
                     (DELETE with ?purge=true deletes a finished job's audio and result)",
                    status.as_str()
                ),
            ),
            StoreError::Fenced => ServiceError::new(
                ErrorKind::Conflict,
                "job_moved",
                "the job changed hands while this was done; read it again",
            ),
            StoreError::Db(message) => ServiceError::new(ErrorKind::Internal, "job_store", message),
            StoreError::Unavailable(message) => ServiceError::unavailable(
                "job_store_unavailable",
                format!("the job store cannot be reached: {message}; retry later"),
            )
            .retry_after(STORE_RETRY),
            StoreError::Full(message) => ServiceError::new(
                ErrorKind::InsufficientStorage,
                "insufficient_storage",
                format!("the job store's disk is full: {message}"),
            ),
        }
    }
}

/// The jobs subsystem of a running server.
pub struct Jobs {
    pub store: Arc<dyn JobStore>,
    pub files: JobFiles,
    /// This server's name in leases.
    pub node: String,
    pub guard: Arc<Guard>,
    lease: Duration,
    wake_runner: Notify,
    wake_sender: Arc<Notify>,
    wake_maintenance: Notify,
    /// Bumped whenever this node writes job events: event streams wake on it.
    events: watch::Sender<u64>,
    /// Running jobs on this node, each with its poke (cancel asked).
    running: Mutex<HashMap<String, (String, Arc<Notify>)>>,
    /// Jobs handed back for a passing condition (no memory, model
    /// unloaded), with how often: a condition that never passes fails the job.
    deferred: Mutex<HashMap<String, u32>>,
}

impl Jobs {
    /// Opens the job directory and store, requeues the jobs a previous run
    /// left running, and starts the runner, the webhook sender and the
    /// maintenance loop.
    pub async fn start(state: &Arc<AppState>) -> anyhow::Result<Arc<Jobs>> {
        let config = state.config();
        let s = &config.settings;
        let store = open_store(&s.job_store, &s.jobs_dir).await?;
        let files = JobFiles::open(&s.jobs_dir, store.exclusive())?;
        // An exclusive store is this node's alone (it holds the directory's
        // lock): every job left running was interrupted. A shared one
        // recovers only jobs whose lease ran out.
        let recovered = store.recover(store.exclusive()).await?;
        if recovered > 0 {
            tracing::warn!(recovered, "requeued jobs interrupted by the previous run");
        }
        let guard = Arc::new(Guard {
            allow_private: s.webhook_allow_private,
            allow: s
                .webhook_allow_cidrs
                .iter()
                .map(|c| c.parse().map_err(|e: String| anyhow::anyhow!(e)))
                .collect::<anyhow::Result<_>>()?,
        });
        let node = if s.node_id.trim().is_empty() {
            format!(
                "{}-{}",
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_else(|_| "glagol".into()),
                std::process::id()
            )
        } else {
            s.node_id.trim().to_string()
        };
        let policy = webhook::sender::SendPolicy {
            secrets: webhook::secrets(&s.webhook_secrets, files.root())?,
            guard: guard.clone(),
            timeout: Duration::from_secs_f64(s.webhook_timeout),
            retries: s
                .webhook_retries
                .iter()
                .map(|r| Duration::from_secs_f64(*r))
                .collect(),
            ca_file: Some(s.webhook_ca_file.clone()).filter(|f| !f.as_os_str().is_empty()),
        };
        let sender = Arc::new(webhook::sender::Sender::new(
            store.clone(),
            node.clone(),
            policy,
            state.current_config(),
        )?);
        let jobs = Arc::new(Jobs {
            store,
            files,
            node,
            guard,
            lease: Duration::from_secs(s.job_lease),
            wake_runner: Notify::new(),
            wake_sender: Arc::new(Notify::new()),
            wake_maintenance: Notify::new(),
            events: watch::channel(0).0,
            running: Mutex::new(HashMap::new()),
            deferred: Mutex::new(HashMap::new()),
        });
        maintenance::remove_orphans(&jobs).await;
        tokio::spawn(sender.run(jobs.wake_sender.clone()));
        if s.role != "api" {
            tokio::spawn(runner::run(state.clone(), jobs.clone()));
        }
        tokio::spawn(maintenance::run(state.clone(), jobs.clone()));
        tokio::spawn(maintenance::forward_model_events(
            state.clone(),
            jobs.clone(),
        ));
        Ok(jobs)
    }

    /// A job was queued: the runner looks for work now.
    pub fn queued(&self) {
        self.wake_runner.notify_one();
        self.written();
    }

    /// Events were written: event streams read them now.
    fn written(&self) {
        self.events.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Resolves at the next event written on this node.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Cancels a job (see [`JobStore::cancel`]); a running job on this node
    /// is told at once.
    pub async fn cancel(&self, id: &str) -> Result<Cancelled, ServiceError> {
        let outcome = self.store.cancel(id).await?;
        match &outcome {
            Cancelled::Requested(_) => {
                let poke = self
                    .running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(id)
                    .map(|(_, poke)| poke.clone());
                if let Some(poke) = poke {
                    poke.notify_one();
                }
            }
            Cancelled::Now(_) => {
                self.written();
                self.wake_sender.notify_one();
            }
        }
        Ok(outcome)
    }

    /// Jobs of `model` running on this node.
    fn running_of(&self, model: &str) -> usize {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|(m, _)| m == model)
            .count()
    }
}

/// The configured store: embedded SQLite in the job directory, or PostgreSQL.
async fn open_store(spec: &str, dir: &std::path::Path) -> anyhow::Result<Arc<dyn JobStore>> {
    if spec == "sqlite" {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        return Ok(Arc::new(sqlite::SqliteStore::open(&dir.join("jobs.db"))?));
    }
    #[cfg(feature = "postgres")]
    {
        Ok(Arc::new(postgres::PgStore::connect(spec).await?))
    }
    #[cfg(not(feature = "postgres"))]
    anyhow::bail!("this glagol was built without the PostgreSQL job store (cargo feature postgres)")
}

impl Jobs {
    /// Waits (up to `limit`) until this node's running jobs are handed
    /// back or finished, after a shutdown began.
    pub async fn handed_back(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
