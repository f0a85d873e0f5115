//! The PostgreSQL job store, for several nodes sharing one queue.
//!
//! A claim is `FOR UPDATE SKIP LOCKED`: racing nodes each take a different
//! job without waiting for each other. Leases run on the database's clock.
//! Every write of a running attempt names the attempt and matches no row
//! once the job moved on (fencing). Nodes find new work by polling (the
//! runner looks every second and at once for jobs submitted to itself).

mod outbox;
mod schema;
mod upkeep;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Transaction,
};
use tokio_postgres::types::ToSql;

use self::schema::{complete, end_attempt, job_from_row, load, JOB_COLUMNS};
use super::model::{JobEvent, JobProgress, JobRecord, JobStatus, NewJob, Outcome};
use super::store::{
    Cancelled, Delivery, DeliveryResult, Expired, Heartbeat, Inserted, JobStore, ListQuery,
    QueueStats, StoreError,
};

/// How long a request waits for a connection from the pool.
const POOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // A lost connection, or a server going away (shutdown, crash,
        // failover), is the store being unreachable, not a fault of ours.
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        let gone = e.is_closed()
            || io
            || e.code().is_some_and(|c| {
                let c = c.code();
                c.starts_with("08") || c.starts_with("57P") || c == "53300"
            });
        if gone {
            StoreError::Unavailable(format!("PostgreSQL: {e}"))
        } else {
            StoreError::Db(e.to_string())
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        // No connection could be had: refused, timed out, or closed.
        StoreError::Unavailable(format!("PostgreSQL: {e}"))
    }
}

pub struct PgStore {
    pool: Pool,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host/db`, or `?host=/socket/dir`)
    /// and migrates the schema.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Db(format!("job store URL: {e}")))?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Bounded waits: an unreachable server (a partition, not only a
        // refusal) answers `job_store_unavailable` instead of hanging.
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Db(format!("PostgreSQL pool: {e}")))?;
        let mut client = pool.get().await?;
        schema::migrate(&mut client).await?;
        Ok(PgStore { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }
}

async fn add_event(
    tx: &Transaction<'_>,
    id: &str,
    kind: &str,
    data: &str,
) -> Result<u64, StoreError> {
    let seq: i64 = tx
        .query_one(
            "UPDATE jobs SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq",
            &[&id],
        )
        .await?
        .get(0);
    tx.execute(
        "INSERT INTO job_events (job_id, seq, kind, data, at) VALUES ($1, $2, $3, $4, glagol_now_ms())",
        &[&id, &seq, &kind, &data],
    )
    .await?;
    Ok(seq as u64)
}

/// The terminal event and webhook outbox row of a job that just ended.
async fn ended(tx: &Transaction<'_>, id: &str) -> Result<JobRecord, StoreError> {
    let job = load(tx, id).await?.ok_or(StoreError::NotFound)?;
    let now = crate::jobs::model::now_ms();
    let document = job.document(now);
    let kind = job.status.as_str();
    add_event(
        tx,
        id,
        kind,
        &serde_json::to_string(&document).unwrap_or_default(),
    )
    .await?;
    if let Some(url) = &job.webhook_url {
        let event = format!("job.{kind}");
        let body = crate::jobs::webhook::body(&event, now, &document);
        outbox::enqueue(tx, Some(id), &event, url, &body).await?;
    }
    load(tx, id).await?.ok_or(StoreError::NotFound)
}

#[async_trait]
impl JobStore for PgStore {
    fn exclusive(&self) -> bool {
        false
    }

    async fn insert(&self, job: NewJob) -> Result<Inserted, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let params = serde_json::to_string(&job.params).unwrap_or_default();
        let metadata = job.metadata.as_ref().map(|m| m.to_string());
        let inserted = tx
            .execute(
                "INSERT INTO jobs (id, owner, idempotency_key, status, model, params, file_name, \
                 audio_path, audio_bytes, audio_sha256, metadata, webhook_url, priority, \
                 max_attempts, run_after, created_at) \
                 VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                 glagol_now_ms(), glagol_now_ms()) \
                 ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
                &[
                    &job.id,
                    &job.owner,
                    &job.idempotency_key,
                    &job.model,
                    &params,
                    &job.file_name,
                    &job.audio_path,
                    &(job.audio_bytes as i64),
                    &job.audio_sha256,
                    &metadata,
                    &job.webhook_url,
                    &job.priority,
                    &(job.max_attempts as i32),
                ],
            )
            .await?;
        if inserted == 0 {
            let id: String = tx
                .query_one(
                    "SELECT id FROM jobs WHERE owner = $1 AND idempotency_key = $2",
                    &[&job.owner, &job.idempotency_key],
                )
                .await?
                .get(0);
            let found = load(&tx, &id).await?.ok_or(StoreError::NotFound)?;
            return Ok(Inserted::Existing(found));
        }
        add_event(&tx, &job.id, "queued", r#"{"attempt":0}"#).await?;
        let stored = load(&tx, &job.id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(Inserted::New(stored))
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        load(&self.client().await?, id).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<JobRecord>, StoreError> {
        let client = self.client().await?;
        let status = query.status.map(|s| s.as_str().to_string());
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE true");
        let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(owner) = &query.owner {
            args.push(owner);
            sql += &format!(" AND owner = ${}", args.len());
        }
        if let Some(status) = &status {
            args.push(status);
            sql += &format!(" AND status = ${}", args.len());
        }
        if let Some(model) = &query.model {
            args.push(model);
            sql += &format!(" AND model = ${}", args.len());
        }
        if let Some(before) = &query.before {
            args.push(before);
            sql += &format!(" AND id < ${}", args.len());
        }
        sql += &format!(" ORDER BY id DESC LIMIT {}", query.limit);
        let rows = client.query(&sql, &args).await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut job = job_from_row(row)?;
            complete(&client, &mut job).await?;
            jobs.push(job);
        }
        Ok(jobs)
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
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let models = models.to_vec();
        let lease_ms = lease.as_millis() as i64;
        let Some(row) = tx
            .query_opt(
                "WITH c AS (SELECT id FROM jobs WHERE status = 'queued' AND run_after <= glagol_now_ms() \
                 AND model = ANY($1) ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 UPDATE jobs j SET status = 'running', attempt = j.attempt + 1, lease_owner = $2, \
                 lease_until = glagol_now_ms() + $3, started_at = glagol_now_ms(), segments_done = 0, \
                 segments_total = NULL, processed_ms = 0 FROM c WHERE j.id = c.id \
                 RETURNING j.id, j.attempt",
                &[&models, &node, &lease_ms],
            )
            .await?
        else {
            return Ok(None);
        };
        let id: String = row.get(0);
        let attempt: i32 = row.get(1);
        tx.execute(
            "INSERT INTO job_attempts (job_id, attempt, node, started_at) VALUES ($1, $2, $3, glagol_now_ms())",
            &[&id, &attempt, &node],
        )
        .await?;
        let data = serde_json::json!({"attempt": attempt, "node": node}).to_string();
        add_event(&tx, &id, "started", &data).await?;
        let job = load(&tx, &id).await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn heartbeat(
        &self,
        id: &str,
        attempt: u32,
        lease: Duration,
        progress: Option<JobProgress>,
        segments: Vec<String>,
    ) -> Result<Heartbeat, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let (attempt_i, lease_ms) = (attempt as i32, lease.as_millis() as i64);
        let row = match progress {
            Some(p) => {
                tx.query_opt(
                    "UPDATE jobs SET lease_until = glagol_now_ms() + $3, segments_done = $4, \
                     segments_total = $5, processed_ms = $6, duration_ms = $7 \
                     WHERE id = $1 AND attempt = $2 AND status = 'running' RETURNING cancel_requested",
                    &[
                        &id,
                        &attempt_i,
                        &lease_ms,
                        &(p.segments_done as i64),
                        &p.segments_total.map(|n| n as i64),
                        &(p.processed_ms as i64),
                        &(p.duration_ms as i64),
                    ],
                )
                .await?
            }
            None => {
                tx.query_opt(
                    "UPDATE jobs SET lease_until = glagol_now_ms() + $3 \
                     WHERE id = $1 AND attempt = $2 AND status = 'running' RETURNING cancel_requested",
                    &[&id, &attempt_i, &lease_ms],
                )
                .await?
            }
        };
        let Some(row) = row else {
            return Err(StoreError::Fenced);
        };
        for segment in &segments {
            add_event(&tx, id, "segment", segment).await?;
        }
        if let Some(p) = progress {
            add_event(
                &tx,
                id,
                "progress",
                &super::model::progress_event(attempt, &p),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Heartbeat {
            cancel_requested: row.get(0),
        })
    }

    async fn finish(
        &self,
        id: &str,
        attempt: u32,
        outcome: Outcome,
    ) -> Result<JobRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let e = outcome.ending();
        let changed = tx
            .execute(
                "UPDATE jobs SET status = $3, result_path = $4, error_code = $5, error_message = $6, \
                 finished_at = glagol_now_ms(), lease_owner = NULL, lease_until = NULL, \
                 processed_ms = CASE WHEN $3 = 'done' THEN COALESCE(duration_ms, processed_ms) \
                 ELSE processed_ms END \
                 WHERE id = $1 AND attempt = $2 AND status = 'running'",
                &[&id, &(attempt as i32), &e.status, &e.result_path, &e.error_code, &e.error_message],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::Fenced);
        }
        end_attempt(&tx, id, attempt, e.status).await?;
        let job = ended(&tx, id).await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn release(
        &self,
        id: &str,
        attempt: u32,
        run_after: Duration,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE jobs SET status = 'queued', attempt = attempt - 1, lease_owner = NULL, \
                 lease_until = NULL, run_after = glagol_now_ms() + $3 \
                 WHERE id = $1 AND attempt = $2 AND status = 'running'",
                &[&id, &(attempt as i32), &(run_after.as_millis() as i64)],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::Fenced);
        }
        // The attempt number is given back, so the next claim reuses it.
        tx.execute(
            "DELETE FROM job_attempts WHERE job_id = $1 AND attempt = $2",
            &[&id, &(attempt as i32)],
        )
        .await?;
        let data = serde_json::json!({"attempt": attempt - 1, "reason": reason}).to_string();
        add_event(&tx, id, "queued", &data).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn cancel(&self, id: &str) -> Result<Cancelled, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt("SELECT status FROM jobs WHERE id = $1 FOR UPDATE", &[&id])
            .await?
            .ok_or(StoreError::NotFound)?;
        let status: String = row.get(0);
        let outcome = match JobStatus::parse(&status) {
            Some(JobStatus::Queued) => {
                tx.execute(
                    "UPDATE jobs SET status = 'cancelled', finished_at = glagol_now_ms() WHERE id = $1",
                    &[&id],
                )
                .await?;
                Cancelled::Now(ended(&tx, id).await?)
            }
            Some(JobStatus::Running) => {
                tx.execute(
                    "UPDATE jobs SET cancel_requested = true WHERE id = $1",
                    &[&id],
                )
                .await?;
                Cancelled::Requested(load(&tx, id).await?.ok_or(StoreError::NotFound)?)
            }
            Some(done) => return Err(StoreError::Conflict(done)),
            None => return Err(StoreError::Db(format!("status {status:?}"))),
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn purge(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let job = load(&tx, id).await?.ok_or(StoreError::NotFound)?;
        if !job.status.is_terminal() {
            return Err(StoreError::Conflict(job.status));
        }
        for table in ["job_events", "job_attempts"] {
            tx.execute(&format!("DELETE FROM {table} WHERE job_id = $1"), &[&id])
                .await?;
        }
        tx.execute("DELETE FROM jobs WHERE id = $1", &[&id]).await?;
        tx.commit().await?;
        Ok(job.audio_path.into_iter().chain(job.result_path).collect())
    }

    async fn events(&self, id: &str, after: u64) -> Result<Vec<JobEvent>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT seq, kind, data FROM job_events WHERE job_id = $1 AND seq > $2 ORDER BY seq",
                &[&id, &(after as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| JobEvent {
                seq: r.get::<_, i64>(0) as u64,
                kind: r.get(1),
                data: r.get(2),
            })
            .collect())
    }

    async fn recover(&self, all: bool) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let recovered = upkeep::recover(&tx, all).await?;
        tx.commit().await?;
        Ok(recovered)
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT COUNT(*) FILTER (WHERE status = 'queued'), COUNT(*) FILTER (WHERE status = 'running'), \
                 MIN(created_at) FILTER (WHERE status = 'queued') \
                 FROM jobs WHERE status IN ('queued', 'running')",
                &[],
            )
            .await?;
        Ok(QueueStats {
            queued: row.get::<_, i64>(0) as u64,
            running: row.get::<_, i64>(1) as u64,
            oldest_queued_at: row.get(2),
        })
    }

    async fn expire(
        &self,
        audio_after: Duration,
        results_after: Duration,
    ) -> Result<Expired, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let expired = upkeep::expire(&tx, audio_after, results_after).await?;
        tx.commit().await?;
        Ok(expired)
    }

    async fn enqueue_webhook(
        &self,
        event: &str,
        url: &str,
        body: String,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        outbox::enqueue(&tx, None, event, url, &body).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_deliveries(
        &self,
        node: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        outbox::claim(&mut self.client().await?, node, lease, limit).await
    }

    async fn delivery_result(
        &self,
        id: &str,
        attempts: u32,
        result: DeliveryResult,
    ) -> Result<(), StoreError> {
        outbox::record(&mut self.client().await?, id, attempts, result).await
    }

    async fn is_disabled(&self, url: &str) -> Result<bool, StoreError> {
        outbox::is_disabled(&self.client().await?, url).await
    }
}
