//! The embedded job store: one SQLite database (WAL, `synchronous=FULL`)
//! used by one node. Calls run off the async runtime on one connection;
//! SQLite has one writer at a time anyway, and a claim is a single
//! `BEGIN IMMEDIATE` transaction, so two runners never take the same job.

mod schema;
mod upkeep;
mod webhooks;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};

use self::schema::{attempts_of, deliveries_of, end_attempt, job_from_row, JOB_COLUMNS};
use super::model::{now_ms, JobEvent, JobProgress, JobRecord, JobStatus, NewJob, Outcome};
use super::store::{
    Cancelled, Delivery, DeliveryResult, Expired, Heartbeat, Inserted, JobStore, ListQuery,
    QueueStats, StoreError,
};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::DiskFull) => StoreError::Full(e.to_string()),
            Some(
                C::DatabaseBusy
                | C::DatabaseLocked
                | C::SystemIoFailure
                | C::CannotOpen
                | C::ReadOnly
                | C::OutOfMemory,
            ) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Db(e.to_string()),
        }
    }
}

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(schema::open(path)?)),
        })
    }

    /// Runs `f` on the connection, off the async runtime.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Db(format!("store call failed: {e}")))?
    }
}

fn load(conn: &Connection, id: &str) -> Result<Option<JobRecord>, StoreError> {
    let mut job = conn
        .query_row(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
            [id],
            job_from_row,
        )
        .optional()?;
    if let Some(job) = &mut job {
        job.deliveries = deliveries_of(conn, id)?;
        job.attempts = attempts_of(conn, id)?;
    }
    Ok(job)
}

/// Appends an event to a job's log; returns its sequence number.
fn add_event(tx: &Transaction<'_>, id: &str, kind: &str, data: &str) -> Result<u64, StoreError> {
    let seq: i64 = tx.query_row(
        "UPDATE jobs SET event_seq = event_seq + 1 WHERE id = ?1 RETURNING event_seq",
        [id],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO job_events (job_id, seq, kind, data, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, seq, kind, data, now_ms()],
    )?;
    Ok(seq as u64)
}

/// The terminal event of a job that just ended, and its webhook outbox
/// row, in the transaction that ended it.
fn ended(tx: &Transaction<'_>, id: &str) -> Result<JobRecord, StoreError> {
    let job = load(tx, id)?.ok_or(StoreError::NotFound)?;
    let now = now_ms();
    let document = job.document(now);
    let kind = job.status.as_str();
    add_event(
        tx,
        id,
        kind,
        &serde_json::to_string(&document).unwrap_or_default(),
    )?;
    if let Some(url) = &job.webhook_url {
        let event = format!("job.{kind}");
        let body = crate::jobs::webhook::body(&event, now, &document);
        webhooks::enqueue(tx, Some(id), &event, url, &body, now)?;
    }
    Ok(load(tx, id)?.expect("the row read above"))
}

#[async_trait]
impl JobStore for SqliteStore {
    fn exclusive(&self) -> bool {
        true
    }

    async fn insert(&self, job: NewJob) -> Result<Inserted, StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if let Some(key) = &job.idempotency_key {
                let existing: Option<String> = tx
                    .query_row(
                        "SELECT id FROM jobs WHERE owner = ?1 AND idempotency_key = ?2",
                        params![job.owner, key],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(id) = existing {
                    let found = load(&tx, &id)?.ok_or(StoreError::NotFound)?;
                    return Ok(Inserted::Existing(found));
                }
            }
            tx.execute(
                "INSERT INTO jobs (id, owner, idempotency_key, status, model, params, file_name, \
                 audio_path, audio_bytes, audio_sha256, metadata, webhook_url, priority, \
                 max_attempts, run_after, created_at) \
                 VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)",
                params![
                    job.id,
                    job.owner,
                    job.idempotency_key,
                    job.model,
                    serde_json::to_string(&job.params).unwrap_or_default(),
                    job.file_name,
                    job.audio_path,
                    job.audio_bytes as i64,
                    job.audio_sha256,
                    job.metadata.as_ref().map(|m| m.to_string()),
                    job.webhook_url,
                    job.priority,
                    job.max_attempts,
                    job.created_at,
                ],
            )?;
            add_event(&tx, &job.id, "queued", r#"{"attempt":0}"#)?;
            let stored = load(&tx, &job.id)?.ok_or(StoreError::NotFound)?;
            tx.commit()?;
            Ok(Inserted::New(stored))
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let id = id.to_string();
        self.call(move |conn| load(conn, &id)).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<JobRecord>, StoreError> {
        let query = query.clone();
        self.call(move |conn| {
            let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1");
            let mut args: Vec<String> = Vec::new();
            if let Some(owner) = &query.owner {
                args.push(owner.clone());
                sql += &format!(" AND owner = ?{}", args.len());
            }
            if let Some(status) = query.status {
                args.push(status.as_str().into());
                sql += &format!(" AND status = ?{}", args.len());
            }
            if let Some(model) = &query.model {
                args.push(model.clone());
                sql += &format!(" AND model = ?{}", args.len());
            }
            if let Some(before) = &query.before {
                args.push(before.clone());
                sql += &format!(" AND id < ?{}", args.len());
            }
            sql += &format!(" ORDER BY id DESC LIMIT {}", query.limit);
            let mut stmt = conn.prepare(&sql)?;
            let jobs = stmt
                .query_map(params_from_iter(args.iter()), job_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            jobs.into_iter()
                .map(|mut job| {
                    job.deliveries = deliveries_of(conn, &job.id)?;
                    job.attempts = attempts_of(conn, &job.id)?;
                    Ok(job)
                })
                .collect()
        })
        .await
    }

    async fn claim(
        &self,
        node: &str,
        models: &[String],
        lease: Duration,
    ) -> Result<Option<JobRecord>, StoreError> {
        if models.is_empty() {
            return Ok(None);
        }
        let (node, models) = (node.to_string(), models.to_vec());
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let now = now_ms();
            let marks = (0..models.len())
                .map(|i| format!("?{}", i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            let mut args: Vec<rusqlite::types::Value> = vec![now.into()];
            args.extend(models.iter().map(|m| m.clone().into()));
            let id: Option<String> = tx
                .query_row(
                    &format!(
                        "SELECT id FROM jobs WHERE status = 'queued' AND run_after <= ?1 \
                         AND model IN ({marks}) ORDER BY priority DESC, id LIMIT 1"
                    ),
                    params_from_iter(args),
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else {
                return Ok(None);
            };
            let attempt: u32 = tx.query_row(
                "UPDATE jobs SET status = 'running', attempt = attempt + 1, lease_owner = ?2, \
                 lease_until = ?3, started_at = ?4, segments_done = 0, segments_total = NULL, \
                 processed_ms = 0 WHERE id = ?1 RETURNING attempt",
                params![id, node, now + lease.as_millis() as i64, now],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO job_attempts (job_id, attempt, node, started_at) VALUES (?1, ?2, ?3, ?4)",
                params![id, attempt, node, now],
            )?;
            add_event(
                &tx,
                &id,
                "started",
                &serde_json::json!({"attempt": attempt, "node": node}).to_string(),
            )?;
            let job = load(&tx, &id)?;
            tx.commit()?;
            Ok(job)
        })
        .await
    }

    async fn heartbeat(
        &self,
        id: &str,
        attempt: u32,
        lease: Duration,
        progress: Option<JobProgress>,
        segments: Vec<String>,
    ) -> Result<Heartbeat, StoreError> {
        let id = id.to_string();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let until = now_ms() + lease.as_millis() as i64;
            let cancel: Option<i64> = match progress {
                Some(p) => tx.query_row(
                    "UPDATE jobs SET lease_until = ?3, segments_done = ?4, segments_total = ?5, \
                     processed_ms = ?6, duration_ms = ?7 \
                     WHERE id = ?1 AND attempt = ?2 AND status = 'running' RETURNING cancel_requested",
                    params![
                        id,
                        attempt,
                        until,
                        p.segments_done as i64,
                        p.segments_total.map(|n| n as i64),
                        p.processed_ms as i64,
                        p.duration_ms as i64
                    ],
                    |r| r.get(0),
                ),
                None => tx.query_row(
                    "UPDATE jobs SET lease_until = ?3 \
                     WHERE id = ?1 AND attempt = ?2 AND status = 'running' RETURNING cancel_requested",
                    params![id, attempt, until],
                    |r| r.get(0),
                ),
            }
            .optional()?;
            let Some(cancel) = cancel else {
                return Err(StoreError::Fenced);
            };
            for segment in &segments {
                add_event(&tx, &id, "segment", segment)?;
            }
            if let Some(p) = progress {
                add_event(&tx, &id, "progress", &super::model::progress_event(attempt, &p))?;
            }
            tx.commit()?;
            Ok(Heartbeat {
                cancel_requested: cancel != 0,
            })
        })
        .await
    }

    async fn finish(
        &self,
        id: &str,
        attempt: u32,
        outcome: Outcome,
    ) -> Result<JobRecord, StoreError> {
        let id = id.to_string();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let e = outcome.ending();
            let changed = tx.execute(
                "UPDATE jobs SET status = ?3, result_path = ?4, error_code = ?5, \
                 error_message = ?6, finished_at = ?7, lease_owner = NULL, lease_until = NULL, \
                 processed_ms = CASE WHEN ?3 = 'done' THEN COALESCE(duration_ms, processed_ms) \
                 ELSE processed_ms END \
                 WHERE id = ?1 AND attempt = ?2 AND status = 'running'",
                params![
                    id,
                    attempt,
                    e.status,
                    e.result_path,
                    e.error_code,
                    e.error_message,
                    now_ms()
                ],
            )?;
            if changed == 0 {
                return Err(StoreError::Fenced);
            }
            end_attempt(&tx, &id, attempt, e.status, now_ms())?;
            let job = ended(&tx, &id)?;
            tx.commit()?;
            Ok(job)
        })
        .await
    }

    async fn release(
        &self,
        id: &str,
        attempt: u32,
        run_after: Duration,
        reason: &str,
    ) -> Result<(), StoreError> {
        let (id, reason) = (id.to_string(), reason.to_string());
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let changed = tx.execute(
                "UPDATE jobs SET status = 'queued', attempt = attempt - 1, lease_owner = NULL, \
                 lease_until = NULL, run_after = ?3 \
                 WHERE id = ?1 AND attempt = ?2 AND status = 'running'",
                params![id, attempt, now_ms() + run_after.as_millis() as i64],
            )?;
            if changed == 0 {
                return Err(StoreError::Fenced);
            }
            // The attempt number is given back, so the next claim reuses it.
            tx.execute(
                "DELETE FROM job_attempts WHERE job_id = ?1 AND attempt = ?2",
                params![id, attempt],
            )?;
            let data = serde_json::json!({"attempt": attempt - 1, "reason": reason});
            add_event(&tx, &id, "queued", &data.to_string())?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn cancel(&self, id: &str) -> Result<Cancelled, StoreError> {
        let id = id.to_string();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let job = load(&tx, &id)?.ok_or(StoreError::NotFound)?;
            let outcome = match job.status {
                JobStatus::Queued => {
                    tx.execute(
                        "UPDATE jobs SET status = 'cancelled', finished_at = ?2 WHERE id = ?1",
                        params![id, now_ms()],
                    )?;
                    Cancelled::Now(ended(&tx, &id)?)
                }
                JobStatus::Running => {
                    tx.execute(
                        "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1",
                        params![id],
                    )?;
                    Cancelled::Requested(load(&tx, &id)?.ok_or(StoreError::NotFound)?)
                }
                done => return Err(StoreError::Conflict(done)),
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn purge(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let id = id.to_string();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let job = load(&tx, &id)?.ok_or(StoreError::NotFound)?;
            if !job.status.is_terminal() {
                return Err(StoreError::Conflict(job.status));
            }
            tx.execute("DELETE FROM job_events WHERE job_id = ?1", [&id])?;
            tx.execute("DELETE FROM job_attempts WHERE job_id = ?1", [&id])?;
            tx.execute("DELETE FROM jobs WHERE id = ?1", [&id])?;
            tx.commit()?;
            Ok(job.audio_path.into_iter().chain(job.result_path).collect())
        })
        .await
    }

    async fn events(&self, id: &str, after: u64) -> Result<Vec<JobEvent>, StoreError> {
        let id = id.to_string();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, kind, data FROM job_events WHERE job_id = ?1 AND seq > ?2 ORDER BY seq",
            )?;
            let events = stmt
                .query_map(params![id, after as i64], |r| {
                    Ok(JobEvent {
                        seq: r.get::<_, i64>(0)? as u64,
                        kind: r.get(1)?,
                        data: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(events)
        })
        .await
    }

    async fn recover(&self, all: bool) -> Result<u64, StoreError> {
        self.call(move |conn| upkeep::recover(conn, all)).await
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        self.call(upkeep::stats).await
    }

    async fn expire(
        &self,
        audio_after: Duration,
        results_after: Duration,
    ) -> Result<Expired, StoreError> {
        self.call(move |conn| upkeep::expire(conn, (audio_after, results_after)))
            .await
    }

    async fn enqueue_webhook(
        &self,
        event: &str,
        url: &str,
        body: String,
    ) -> Result<(), StoreError> {
        let (event, url) = (event.to_string(), url.to_string());
        self.call(move |conn| {
            let tx = conn.transaction()?;
            webhooks::enqueue(&tx, None, &event, &url, &body, now_ms())?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        node: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let node = node.to_string();
        self.call(move |conn| webhooks::claim(conn, &node, lease, limit))
            .await
    }

    async fn delivery_result(
        &self,
        id: &str,
        attempts: u32,
        result: DeliveryResult,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        self.call(move |conn| webhooks::record(conn, &id, attempts, result))
            .await
    }

    async fn is_disabled(&self, url: &str) -> Result<bool, StoreError> {
        let url = url.to_string();
        self.call(move |conn| webhooks::is_disabled(conn, &url))
            .await
    }
}
