//! The job store's contract, shaped for several nodes sharing one store:
//! a job is claimed with a lease and an attempt number, progress renews
//! the lease (it is the heartbeat), and every write of a running job is
//! fenced by its attempt, so a node that lost its lease cannot overwrite
//! the work of the node that took the job over. Every state change is one
//! transaction with its event row and, for terminal states, its webhook
//! outbox row.

use std::time::Duration;

use async_trait::async_trait;

use super::model::{JobEvent, JobProgress, JobRecord, JobStatus, NewJob, Outcome};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The attempt no longer owns the job (its lease expired and the job
    /// moved on, or it was cancelled): the caller must stop writing.
    #[error("the job's lease was lost")]
    Fenced,
    #[error("no such job")]
    NotFound,
    /// The job is in a state that does not allow this.
    #[error("the job is {}", .0.as_str())]
    Conflict(JobStatus),
    #[error("job store: {0}")]
    Db(String),
    /// The store cannot be reached or written now (PostgreSQL down, a
    /// locked or failing disk); it may come back.
    #[error("job store unavailable: {0}")]
    Unavailable(String),
    /// The store's disk is full.
    #[error("job store: no space left: {0}")]
    Full(String),
}

/// What `insert` did.
#[derive(Debug)]
pub enum Inserted {
    New(JobRecord),
    /// The owner used this idempotency key before: that job.
    Existing(JobRecord),
}

/// What `cancel` did.
#[derive(Debug)]
pub enum Cancelled {
    /// A queued job, cancelled at once.
    Now(JobRecord),
    /// A running job, asked to stop at its next segment.
    Requested(JobRecord),
}

/// A page of the listing, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this owner's jobs.
    pub owner: Option<String>,
    pub status: Option<JobStatus>,
    pub model: Option<String>,
    /// Only jobs older than this id.
    pub before: Option<String>,
    pub limit: usize,
}

/// What a heartbeat learns.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    pub cancel_requested: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct QueueStats {
    pub queued: u64,
    pub running: u64,
    /// Unix ms of the oldest queued job.
    pub oldest_queued_at: Option<i64>,
}

/// A webhook delivery claimed for sending.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    /// The owner of its job (None: a model event, or the job is gone).
    pub owner: Option<String>,
    pub url: String,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// Unix ms of the first attempt's schedule (the retry window starts there).
    pub first_at: i64,
}

/// How a delivery attempt went.
#[derive(Debug, Clone)]
pub enum DeliveryResult {
    Delivered {
        status: u16,
    },
    /// Try again at `next_at` (Unix ms).
    Retry {
        status: Option<u16>,
        error: String,
        next_at: i64,
    },
    /// No more attempts: the window passed or the address is refused.
    GaveUp {
        status: Option<u16>,
        error: String,
    },
    /// The receiver answered 410: this URL gets nothing more.
    Disabled {
        status: u16,
    },
}

/// Files a job no longer needs (retention): paths relative to the job directory.
#[derive(Debug, Clone, Default)]
pub struct Expired {
    pub files: Vec<String>,
    pub jobs_deleted: u64,
}

#[async_trait]
pub trait JobStore: Send + Sync {
    /// Whether this node is the only one using the store (then every job
    /// left running at start was this node's, interrupted).
    fn exclusive(&self) -> bool;

    /// Stores a new queued job with its `queued` event (or finds the one
    /// its idempotency key already names).
    async fn insert(&self, job: NewJob) -> Result<Inserted, StoreError>;

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;

    async fn list(&self, query: &ListQuery) -> Result<Vec<JobRecord>, StoreError>;

    /// Takes the most urgent ready job of one of `models` for `node`:
    /// status `running`, attempt + 1, leased for `lease`; a `started` event.
    async fn claim(
        &self,
        node: &str,
        models: &[String],
        lease: Duration,
    ) -> Result<Option<JobRecord>, StoreError>;

    /// Renews the lease and, with `progress`, records it with a `progress`
    /// event; each of `segments` (JSON) becomes a `segment` event.
    async fn heartbeat(
        &self,
        id: &str,
        attempt: u32,
        lease: Duration,
        progress: Option<JobProgress>,
        segments: Vec<String>,
    ) -> Result<Heartbeat, StoreError>;

    /// Ends a running attempt, with its terminal event and webhook outbox row.
    async fn finish(
        &self,
        id: &str,
        attempt: u32,
        outcome: Outcome,
    ) -> Result<JobRecord, StoreError>;

    /// Gives a running job back to the queue without counting the attempt
    /// against it (the node is stopping, or cannot run it now).
    async fn release(
        &self,
        id: &str,
        attempt: u32,
        run_after: Duration,
        reason: &str,
    ) -> Result<(), StoreError>;

    /// Cancels a queued job at once or asks a running one to stop;
    /// `Conflict` for a finished one.
    async fn cancel(&self, id: &str) -> Result<Cancelled, StoreError>;

    /// Deletes a finished job's row, events and deliveries; the files it
    /// had (relative paths) are returned for the caller to delete.
    async fn purge(&self, id: &str) -> Result<Vec<String>, StoreError>;

    /// Events after `after`, in order.
    async fn events(&self, id: &str, after: u64) -> Result<Vec<JobEvent>, StoreError>;

    /// Requeues running jobs whose lease ended before now (all running jobs
    /// with `all`, for a single node that knows it is the only one), or
    /// fails them with `attempts_exhausted`. Returns how many were touched.
    async fn recover(&self, all: bool) -> Result<u64, StoreError>;

    async fn stats(&self) -> Result<QueueStats, StoreError>;

    /// Forgets stored audio and results past their retention.
    async fn expire(
        &self,
        audio_after: Duration,
        results_after: Duration,
    ) -> Result<Expired, StoreError>;

    /// Queues a webhook not tied to a job (model lifecycle events).
    async fn enqueue_webhook(&self, event: &str, url: &str, body: String)
        -> Result<(), StoreError>;

    /// Leases up to `limit` due deliveries to `node`.
    async fn claim_deliveries(
        &self,
        node: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError>;

    async fn delivery_result(
        &self,
        id: &str,
        attempts: u32,
        result: DeliveryResult,
    ) -> Result<(), StoreError>;

    /// URLs that answered 410 and get nothing more.
    async fn is_disabled(&self, url: &str) -> Result<bool, StoreError>;
}

/// What ending a job writes: its status and, by outcome, the result or the error.
#[derive(Debug, Clone)]
pub struct Ending {
    pub status: &'static str,
    pub result_path: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

impl Outcome {
    pub fn ending(self) -> Ending {
        let (status, result_path, error_code, error_message) = match self {
            Outcome::Done { result_path } => ("done", Some(result_path), None, None),
            Outcome::Failed { code, message } => ("failed", None, Some(code), Some(message)),
            Outcome::Cancelled => ("cancelled", None, None, None),
        };
        Ending {
            status,
            result_path,
            error_code,
            error_message,
        }
    }
}

/// How a job whose node vanished mid-attempt goes on: ended (cancelled if a
/// cancel was asked, failed once its attempts are used up), or requeued
/// (None) after [`retry_delay_ms`].
pub fn after_interruption(attempt: u32, max_attempts: u32, cancel: bool) -> Option<Outcome> {
    if cancel {
        Some(Outcome::Cancelled)
    } else if attempt >= max_attempts {
        Some(Outcome::Failed {
            code: "attempts_exhausted".into(),
            message: format!(
                "the node running this job stopped during each of its {attempt} attempts"
            ),
        })
    } else {
        None
    }
}

/// Why a requeued job is queued again (its `queued` event).
pub const REQUEUED: &str = "the node running it stopped; retrying from the stored audio";

/// Milliseconds before a job interrupted `attempt` times is tried again.
pub fn retry_delay_ms(attempt: u32) -> i64 {
    1000 * i64::from(attempt.min(30))
}

/// What recording a delivery attempt writes.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub state: &'static str,
    pub status: Option<u16>,
    pub error: Option<String>,
    /// Unix ms of the next attempt (retries only).
    pub next_at: Option<i64>,
    pub delivered: bool,
}

impl DeliveryResult {
    pub fn row(&self) -> DeliveryRow {
        let (state, status, error, next_at) = match self {
            DeliveryResult::Delivered { status } => ("delivered", Some(*status), None, None),
            DeliveryResult::Retry {
                status,
                error,
                next_at,
            } => ("pending", *status, Some(error.clone()), Some(*next_at)),
            DeliveryResult::GaveUp { status, error } => {
                ("gave_up", *status, Some(error.clone()), None)
            }
            DeliveryResult::Disabled { status } => ("disabled", Some(*status), None, None),
        };
        DeliveryRow {
            state,
            status,
            error,
            next_at,
            delivered: state == "delivered",
        }
    }
}
