//! The SQLite job database: numbered migrations and the row mapping.

use rusqlite::{Connection, Row};

use crate::jobs::model::{AttemptInfo, DeliveryState, JobParams, JobRecord, JobStatus};

/// Migrations in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    idempotency_key TEXT,
    status TEXT NOT NULL,
    model TEXT NOT NULL,
    params TEXT NOT NULL,
    file_name TEXT,
    audio_path TEXT,
    audio_bytes INTEGER NOT NULL,
    audio_sha256 TEXT NOT NULL,
    metadata TEXT,
    webhook_url TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_after INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    segments_done INTEGER NOT NULL DEFAULT 0,
    segments_total INTEGER,
    processed_ms INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER,
    result_path TEXT,
    error_code TEXT,
    error_message TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    event_seq INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs(owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_ready ON jobs(status, priority DESC, run_after, id);
CREATE INDEX jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE job_events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    job_id TEXT,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    first_at INTEGER NOT NULL,
    next_at INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    lease_owner TEXT,
    lease_until INTEGER,
    delivered_at INTEGER
);
CREATE INDEX deliveries_due ON webhook_deliveries(state, next_at);
CREATE INDEX deliveries_job ON webhook_deliveries(job_id);
CREATE TABLE webhook_disabled_urls (
    url TEXT PRIMARY KEY,
    at INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE job_attempts (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    node TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    outcome TEXT,
    PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;
"#,
];

/// Opens (creating) the database with durable settings and migrates it.
pub fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    // WAL with FULL: a commit is on disk before the client hears 202, even
    // across a power loss, not only a crash of this process.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    migrate(&mut conn)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The columns [`job_from_row`] reads, in order.
pub const JOB_COLUMNS: &str = "id, owner, idempotency_key, status, model, params, file_name, \
    audio_path, audio_bytes, audio_sha256, metadata, webhook_url, priority, attempt, \
    max_attempts, lease_owner, cancel_requested, segments_done, segments_total, processed_ms, \
    duration_ms, result_path, error_code, error_message, created_at, started_at, finished_at";

pub fn job_from_row(row: &Row<'_>) -> rusqlite::Result<JobRecord> {
    let status: String = row.get(3)?;
    let params: String = row.get(5)?;
    let metadata: Option<String> = row.get(10)?;
    let bad = |i: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, what.into())
    };
    Ok(JobRecord {
        id: row.get(0)?,
        owner: row.get(1)?,
        idempotency_key: row.get(2)?,
        status: JobStatus::parse(&status).ok_or_else(|| bad(3, format!("status {status:?}")))?,
        model: row.get(4)?,
        params: serde_json::from_str::<JobParams>(&params).map_err(|e| bad(5, e.to_string()))?,
        file_name: row.get(6)?,
        audio_path: row.get(7)?,
        audio_bytes: row.get::<_, i64>(8)? as u64,
        audio_sha256: row.get(9)?,
        metadata: metadata
            .map(|m| serde_json::from_str(&m))
            .transpose()
            .map_err(|e| bad(10, e.to_string()))?,
        webhook_url: row.get(11)?,
        priority: row.get(12)?,
        attempt: row.get(13)?,
        max_attempts: row.get(14)?,
        lease_owner: row.get(15)?,
        cancel_requested: row.get::<_, i64>(16)? != 0,
        segments_done: row.get::<_, i64>(17)? as u64,
        segments_total: row.get::<_, Option<i64>>(18)?.map(|n| n as u64),
        processed_ms: row.get::<_, i64>(19)? as u64,
        duration_ms: row.get::<_, Option<i64>>(20)?.map(|n| n as u64),
        result_path: row.get(21)?,
        error_code: row.get(22)?,
        error_message: row.get(23)?,
        created_at: row.get(24)?,
        started_at: row.get(25)?,
        finished_at: row.get(26)?,
        deliveries: Vec::new(),
        attempts: Vec::new(),
    })
}

/// The webhook deliveries of a job, oldest first.
pub fn deliveries_of(conn: &Connection, job_id: &str) -> rusqlite::Result<Vec<DeliveryState>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, event, state, attempts, last_status, last_error, next_at, delivered_at \
         FROM webhook_deliveries WHERE job_id = ?1 ORDER BY first_at, id",
    )?;
    let rows = stmt.query_map([job_id], |r| {
        let state: String = r.get(2)?;
        let next_at: i64 = r.get(6)?;
        Ok(DeliveryState {
            id: r.get(0)?,
            event: r.get(1)?,
            next_attempt_at: (state == "pending").then_some(next_at.div_euclid(1000)),
            state,
            attempts: r.get(3)?,
            last_status: r.get::<_, Option<i64>>(4)?.map(|s| s as u16),
            last_error: r.get(5)?,
            delivered_at: r.get::<_, Option<i64>>(7)?.map(|t| t.div_euclid(1000)),
        })
    })?;
    rows.collect()
}

/// The attempts of a job, first first.
pub fn attempts_of(conn: &Connection, job_id: &str) -> rusqlite::Result<Vec<AttemptInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT attempt, node, started_at, ended_at, outcome FROM job_attempts \
         WHERE job_id = ?1 ORDER BY attempt",
    )?;
    let rows = stmt.query_map([job_id], |r| {
        Ok(AttemptInfo {
            attempt: r.get(0)?,
            node: r.get(1)?,
            started_at: r.get::<_, i64>(2)?.div_euclid(1000),
            ended_at: r.get::<_, Option<i64>>(3)?.map(|t| t.div_euclid(1000)),
            outcome: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Records how an attempt ended.
pub fn end_attempt(
    conn: &Connection,
    job_id: &str,
    attempt: u32,
    outcome: &str,
    now: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE job_attempts SET ended_at = ?4, outcome = ?3 WHERE job_id = ?1 AND attempt = ?2",
        rusqlite::params![job_id, attempt, outcome, now],
    )?;
    Ok(())
}
