//! The PostgreSQL job schema: numbered migrations, applied under an
//! advisory lock so nodes starting together migrate once, and the row
//! mapping. Times are Unix milliseconds from the database's clock
//! (`glagol_now_ms()`), never a node's, so leases mean the same to all.

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use crate::jobs::model::{AttemptInfo, DeliveryState, JobParams, JobRecord, JobStatus};
use crate::jobs::store::StoreError;

const MIGRATIONS: &[&str] = &[r#"
CREATE FUNCTION glagol_now_ms() RETURNS bigint LANGUAGE sql VOLATILE
    AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    idempotency_key TEXT,
    status TEXT NOT NULL,
    model TEXT NOT NULL,
    params TEXT NOT NULL,
    file_name TEXT,
    audio_path TEXT,
    audio_bytes BIGINT NOT NULL,
    audio_sha256 TEXT NOT NULL,
    metadata TEXT,
    webhook_url TEXT,
    priority BIGINT NOT NULL DEFAULT 0,
    attempt INT NOT NULL DEFAULT 0,
    max_attempts INT NOT NULL,
    run_after BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    segments_done BIGINT NOT NULL DEFAULT 0,
    segments_total BIGINT,
    processed_ms BIGINT NOT NULL DEFAULT 0,
    duration_ms BIGINT,
    result_path TEXT,
    error_code TEXT,
    error_message TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    event_seq BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs(owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_ready ON jobs(priority DESC, id) WHERE status = 'queued';
CREATE INDEX jobs_leased ON jobs(lease_until) WHERE status = 'running';
CREATE INDEX jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE job_events (
    job_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE job_attempts (
    job_id TEXT NOT NULL,
    attempt INT NOT NULL,
    node TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    outcome TEXT,
    PRIMARY KEY (job_id, attempt)
);
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    job_id TEXT,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INT NOT NULL DEFAULT 0,
    first_at BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    last_status INT,
    last_error TEXT,
    lease_owner TEXT,
    lease_until BIGINT,
    delivered_at BIGINT
);
CREATE INDEX deliveries_due ON webhook_deliveries(next_at) WHERE state = 'pending';
CREATE INDEX deliveries_job ON webhook_deliveries(job_id);
CREATE TABLE webhook_disabled_urls (
    url TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);
"#];

/// Applies the migrations not yet applied, one node at a time.
pub async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7355608001)", &[])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS glagol_migrations (version INT PRIMARY KEY)")
        .await?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM glagol_migrations",
            &[],
        )
        .await?
        .get(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO glagol_migrations (version) VALUES ($1)",
            &[&(i as i32 + 1)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub const JOB_COLUMNS: &str = "id, owner, idempotency_key, status, model, params, file_name, \
    audio_path, audio_bytes, audio_sha256, metadata, webhook_url, priority, attempt, \
    max_attempts, lease_owner, cancel_requested, segments_done, segments_total, processed_ms, \
    duration_ms, result_path, error_code, error_message, created_at, started_at, finished_at";

fn bad(what: String) -> StoreError {
    StoreError::Db(format!("a stored job does not read back: {what}"))
}

pub fn job_from_row(row: &Row) -> Result<JobRecord, StoreError> {
    let status: String = row.try_get(3)?;
    let params: String = row.try_get(5)?;
    let metadata: Option<String> = row.try_get(10)?;
    let attempt: i32 = row.try_get(13)?;
    let max_attempts: i32 = row.try_get(14)?;
    let unsigned = |i: usize| -> Result<u64, StoreError> { Ok(row.try_get::<_, i64>(i)? as u64) };
    let maybe = |i: usize| -> Result<Option<u64>, StoreError> {
        Ok(row.try_get::<_, Option<i64>>(i)?.map(|n| n as u64))
    };
    Ok(JobRecord {
        id: row.try_get(0)?,
        owner: row.try_get(1)?,
        idempotency_key: row.try_get(2)?,
        status: JobStatus::parse(&status).ok_or_else(|| bad(format!("status {status:?}")))?,
        model: row.try_get(4)?,
        params: serde_json::from_str::<JobParams>(&params).map_err(|e| bad(e.to_string()))?,
        file_name: row.try_get(6)?,
        audio_path: row.try_get(7)?,
        audio_bytes: unsigned(8)?,
        audio_sha256: row.try_get(9)?,
        metadata: metadata
            .map(|m| serde_json::from_str(&m))
            .transpose()
            .map_err(|e| bad(e.to_string()))?,
        webhook_url: row.try_get(11)?,
        priority: row.try_get(12)?,
        attempt: attempt as u32,
        max_attempts: max_attempts as u32,
        lease_owner: row.try_get(15)?,
        cancel_requested: row.try_get(16)?,
        segments_done: unsigned(17)?,
        segments_total: maybe(18)?,
        processed_ms: unsigned(19)?,
        duration_ms: maybe(20)?,
        result_path: row.try_get(21)?,
        error_code: row.try_get(22)?,
        error_message: row.try_get(23)?,
        created_at: row.try_get(24)?,
        started_at: row.try_get(25)?,
        finished_at: row.try_get(26)?,
        deliveries: Vec::new(),
        attempts: Vec::new(),
    })
}

/// A job with its deliveries and attempts.
pub async fn load<C: GenericClient>(c: &C, id: &str) -> Result<Option<JobRecord>, StoreError> {
    let Some(row) = c
        .query_opt(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"),
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let mut job = job_from_row(&row)?;
    complete(c, &mut job).await?;
    Ok(Some(job))
}

/// Fills in a job's deliveries and attempts.
pub async fn complete<C: GenericClient>(c: &C, job: &mut JobRecord) -> Result<(), StoreError> {
    let rows = c
        .query(
            "SELECT id, event, state, attempts, last_status, last_error, next_at, delivered_at \
             FROM webhook_deliveries WHERE job_id = $1 ORDER BY first_at, id",
            &[&job.id],
        )
        .await?;
    job.deliveries = rows
        .iter()
        .map(|r| {
            let state: String = r.try_get(2)?;
            let next_at: i64 = r.try_get(6)?;
            Ok(DeliveryState {
                id: r.try_get(0)?,
                event: r.try_get(1)?,
                next_attempt_at: (state == "pending").then_some(next_at.div_euclid(1000)),
                state,
                attempts: r.try_get::<_, i32>(3)? as u32,
                last_status: r.try_get::<_, Option<i32>>(4)?.map(|s| s as u16),
                last_error: r.try_get(5)?,
                delivered_at: r.try_get::<_, Option<i64>>(7)?.map(|t| t.div_euclid(1000)),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let rows = c
        .query(
            "SELECT attempt, node, started_at, ended_at, outcome FROM job_attempts \
             WHERE job_id = $1 ORDER BY attempt",
            &[&job.id],
        )
        .await?;
    job.attempts = rows
        .iter()
        .map(|r| {
            Ok(AttemptInfo {
                attempt: r.try_get::<_, i32>(0)? as u32,
                node: r.try_get(1)?,
                started_at: r.try_get::<_, i64>(2)?.div_euclid(1000),
                ended_at: r.try_get::<_, Option<i64>>(3)?.map(|t| t.div_euclid(1000)),
                outcome: r.try_get(4)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(())
}

/// Closes the record of one attempt with its outcome.
pub async fn end_attempt(
    tx: &Transaction<'_>,
    id: &str,
    attempt: u32,
    outcome: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE job_attempts SET ended_at = glagol_now_ms(), outcome = $3 WHERE job_id = $1 AND attempt = $2",
        &[&id, &(attempt as i32), &outcome],
    )
    .await?;
    Ok(())
}
