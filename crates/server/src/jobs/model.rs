//! What a job is: its stored record, the parameters it was submitted with,
//! and the document every reader sees (`GET /v1/jobs/{id}`, the terminal
//! SSE events and the webhook body are all this one shape).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "done" => JobStatus::Done,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Done | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// How to recognise a job's audio: the native API's options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobParams {
    /// ISO-639-1 code; detected when absent (Whisper).
    pub language: Option<String>,
    /// `transcribe` or `translate`.
    pub task: String,
    pub word_timestamps: bool,
    /// Recognise only the speech the VAD finds.
    pub vad: bool,
    pub prompt: Option<String>,
    /// Label segments and words with speakers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub diarize: bool,
    /// The number of speakers, when known (diarization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_speakers: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_speakers: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_speakers: Option<usize>,
}

impl JobParams {
    /// What the job asks of diarization, checked.
    pub fn diarize_request(
        &self,
    ) -> Result<Option<crate::service::diarization::DiarizeRequest>, crate::error::ServiceError>
    {
        if !self.diarize {
            return Ok(None);
        }
        crate::service::diarization::DiarizeRequest::with_counts(
            self.num_speakers,
            self.min_speakers,
            self.max_speakers,
        )
        .map(Some)
    }
}

/// A job as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    /// Who submitted it (an API key's hash, or empty): scopes idempotency keys.
    pub owner: String,
    pub idempotency_key: Option<String>,
    pub status: JobStatus,
    pub model: String,
    pub params: JobParams,
    pub file_name: Option<String>,
    /// The stored upload, relative to the job directory (None once deleted).
    pub audio_path: Option<String>,
    pub audio_bytes: u64,
    pub audio_sha256: String,
    pub metadata: Option<serde_json::Value>,
    pub webhook_url: Option<String>,
    pub priority: i64,
    /// Attempts started; also the fencing token of the running one.
    pub attempt: u32,
    pub max_attempts: u32,
    pub lease_owner: Option<String>,
    pub cancel_requested: bool,
    pub segments_done: u64,
    pub segments_total: Option<u64>,
    pub processed_ms: u64,
    pub duration_ms: Option<u64>,
    /// The transcript, relative to the job directory.
    pub result_path: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The webhook deliveries made for it, oldest first.
    pub deliveries: Vec<DeliveryState>,
    /// Its attempts, first first.
    pub attempts: Vec<AttemptInfo>,
}

/// One attempt at a job: which node ran it and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AttemptInfo {
    pub attempt: u32,
    /// The node that claimed it (`--node-id`).
    pub node: String,
    /// Unix seconds.
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// `done`, `failed`, `cancelled`, or `interrupted` (the node vanished; its lease ran
    /// out); absent while running. An attempt handed back (the node stopped, or could not run
    /// the job then) is not counted and not listed: its `queued` event says why.
    pub outcome: Option<String>,
}

/// One webhook delivery as a job shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeliveryState {
    /// The `webhook-id` header, stable across retries.
    pub id: String,
    /// `job.done`, `job.failed` or `job.cancelled`.
    pub event: String,
    /// `pending`, `delivered`, `gave_up` or `disabled` (the URL answered 410).
    pub state: String,
    pub attempts: u32,
    /// The receiver's last HTTP status.
    pub last_status: Option<u16>,
    /// The last failure (connection error, timeout, refused address).
    pub last_error: Option<String>,
    /// Unix seconds of the next attempt while pending.
    pub next_attempt_at: Option<i64>,
    pub delivered_at: Option<i64>,
}

/// A job being submitted.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub owner: String,
    pub idempotency_key: Option<String>,
    pub model: String,
    pub params: JobParams,
    pub file_name: Option<String>,
    pub audio_path: String,
    pub audio_bytes: u64,
    pub audio_sha256: String,
    pub metadata: Option<serde_json::Value>,
    pub webhook_url: Option<String>,
    pub priority: i64,
    pub max_attempts: u32,
    pub created_at: i64,
}

/// Recognition progress of a running job.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JobProgress {
    pub segments_done: u64,
    pub segments_total: Option<u64>,
    pub processed_ms: u64,
    pub duration_ms: u64,
}

/// How a job ends.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Recognised; the transcript is at this path (relative to the job directory).
    Done {
        result_path: String,
    },
    Failed {
        code: String,
        message: String,
    },
    Cancelled,
}

/// `GET /v1/jobs/{id}`: a job, as every reader (and webhook) sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Job {
    pub id: String,
    /// Always `transcription.job`.
    pub object: &'static str,
    pub status: JobStatus,
    /// The name of the API key that submitted it (absent on a server without keys).
    pub owner: Option<String>,
    pub model: String,
    pub params: JobParams,
    pub priority: i64,
    pub file: JobFile,
    pub progress: JobProgressView,
    /// Attempts started (a job is retried after a crash of the node running it).
    pub attempt: u32,
    pub max_attempts: u32,
    /// Unix seconds.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Seconds from submission to the last start, and from then to the end (or now).
    pub timings: JobTimings,
    pub error: Option<JobError>,
    /// Set when a cancel was asked for a running job; it stops at its next segment.
    pub cancel_requested: bool,
    pub webhook_url: Option<String>,
    pub webhooks: Vec<DeliveryState>,
    /// Each attempt with the node that ran it.
    pub attempts: Vec<AttemptInfo>,
    /// What the client attached at submission, echoed unchanged.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Where the transcript is, once done.
    pub result_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobFile {
    pub name: Option<String>,
    pub bytes: u64,
    pub sha256: String,
    /// False once the audio was deleted (retention, purge).
    pub stored: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobProgressView {
    /// Chunks (GigaAM) or segments (Whisper) recognised.
    pub segments_done: u64,
    /// Chunks in all, where known in advance.
    pub segments_total: Option<u64>,
    pub seconds_processed: f64,
    /// Seconds of audio (known once decoded).
    pub duration: Option<f64>,
    /// 0–100.
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobTimings {
    pub queued_seconds: Option<f64>,
    pub running_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobError {
    /// e.g. `not_audio`, `attempts_exhausted`, `model_not_found`.
    pub code: String,
    pub message: String,
}

impl JobRecord {
    /// The document of this job, at `now` (Unix ms).
    pub fn document(&self, now: i64) -> Job {
        let secs = |ms: i64| ms.div_euclid(1000);
        let percent = match (self.status, self.duration_ms) {
            (JobStatus::Done, _) => 100.0,
            (_, Some(d)) if d > 0 => {
                ((self.processed_ms as f64 / d as f64) * 1000.0).round() / 10.0
            }
            _ => 0.0,
        };
        let end = self.finished_at.unwrap_or(now);
        Job {
            id: self.id.clone(),
            object: "transcription.job",
            status: self.status,
            owner: (!self.owner.is_empty()).then(|| crate::config::owner_name(&self.owner)),
            model: self.model.clone(),
            params: self.params.clone(),
            priority: self.priority,
            file: JobFile {
                name: self.file_name.clone(),
                bytes: self.audio_bytes,
                sha256: self.audio_sha256.clone(),
                stored: self.audio_path.is_some(),
            },
            progress: JobProgressView {
                segments_done: self.segments_done,
                segments_total: self.segments_total,
                seconds_processed: self.processed_ms as f64 / 1000.0,
                duration: self.duration_ms.map(|d| d as f64 / 1000.0),
                percent: percent.min(100.0),
            },
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            created_at: secs(self.created_at),
            started_at: self.started_at.map(secs),
            finished_at: self.finished_at.map(secs),
            timings: JobTimings {
                queued_seconds: self
                    .started_at
                    .map(|s| (s - self.created_at).max(0) as f64 / 1000.0),
                running_seconds: self.started_at.map(|s| (end - s).max(0) as f64 / 1000.0),
            },
            error: self.error_code.as_ref().map(|code| JobError {
                code: code.clone(),
                message: self.error_message.clone().unwrap_or_default(),
            }),
            cancel_requested: self.cancel_requested,
            webhook_url: self.webhook_url.clone(),
            webhooks: self.deliveries.clone(),
            attempts: self.attempts.clone(),
            metadata: self.metadata.clone(),
            result_url: (self.status == JobStatus::Done && self.result_path.is_some())
                .then(|| format!("/v1/jobs/{}/result", self.id)),
        }
    }
}

/// An event in a job's log: SSE replays these by `seq` (`Last-Event-ID`).
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    pub seq: u64,
    /// `queued`, `started`, `progress`, `segment`, `done`, `failed`, `cancelled`.
    pub kind: String,
    /// JSON.
    pub data: String,
}

impl JobEvent {
    pub fn is_terminal(&self) -> bool {
        matches!(self.kind.as_str(), "done" | "failed" | "cancelled")
    }
}

/// The data of a `progress` event.
pub fn progress_event(attempt: u32, p: &JobProgress) -> String {
    let percent = if p.duration_ms > 0 {
        (p.processed_ms as f64 / p.duration_ms as f64 * 1000.0).round() / 10.0
    } else {
        0.0
    };
    serde_json::json!({
        "attempt": attempt,
        "segments_done": p.segments_done,
        "segments_total": p.segments_total,
        "seconds_processed": p.processed_ms as f64 / 1000.0,
        "duration": p.duration_ms as f64 / 1000.0,
        "percent": percent.min(100.0),
    })
    .to_string()
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new job id: time-ordered, so the newest-first listing is by id.
pub fn new_job_id() -> String {
    format!("job_{}", uuid::Uuid::now_v7().simple())
}
