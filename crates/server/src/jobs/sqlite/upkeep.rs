//! Upkeep of the job table: recovering jobs whose node stopped, and
//! retention.

use std::time::Duration;

use rusqlite::{params, Connection};

use super::{add_event, ended};
use crate::jobs::model::now_ms;
use crate::jobs::store::{
    after_interruption, retry_delay_ms, Expired, QueueStats, StoreError, REQUEUED,
};

/// Requeues running jobs whose lease ended (all of them with `all`), or
/// ends them: cancelled if a cancel was asked, else `attempts_exhausted`
/// once they had their attempts.
pub fn recover(conn: &mut Connection, all: bool) -> Result<u64, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let now = now_ms();
    let stuck: Vec<(String, u32, u32, bool)> = {
        let mut stmt = tx.prepare(
            "SELECT id, attempt, max_attempts, cancel_requested FROM jobs \
             WHERE status = 'running' AND (?1 OR lease_until < ?2)",
        )?;
        let rows = stmt.query_map(params![all, now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, attempt, max_attempts, cancel) in &stuck {
        super::schema::end_attempt(&tx, id, *attempt, "interrupted", now)?;
        if let Some(outcome) = after_interruption(*attempt, *max_attempts, *cancel) {
            let e = outcome.ending();
            tx.execute(
                "UPDATE jobs SET status = ?2, error_code = ?3, error_message = ?4, \
                 finished_at = ?5, lease_owner = NULL, lease_until = NULL WHERE id = ?1",
                params![id, e.status, e.error_code, e.error_message, now],
            )?;
            ended(&tx, id)?;
        } else {
            tx.execute(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_until = NULL, \
                 run_after = ?2 WHERE id = ?1",
                params![id, now + retry_delay_ms(*attempt)],
            )?;
            let data = serde_json::json!({"attempt": attempt, "reason": REQUEUED});
            add_event(&tx, id, "queued", &data.to_string())?;
        }
    }
    tx.commit()?;
    Ok(stuck.len() as u64)
}

/// Forgets audio and finished jobs past their retention; the files to delete.
pub fn expire(
    conn: &mut Connection,
    (audio_after, results_after): (Duration, Duration),
) -> Result<Expired, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let now = now_ms();
    let mut expired = Expired::default();
    let audio_before = now - audio_after.as_millis() as i64;
    let audio: Vec<(String, String)> = {
        let mut stmt = tx.prepare(
            "SELECT id, audio_path FROM jobs WHERE audio_path IS NOT NULL \
             AND finished_at IS NOT NULL AND finished_at <= ?1",
        )?;
        let rows = stmt.query_map([audio_before], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, path) in audio {
        tx.execute("UPDATE jobs SET audio_path = NULL WHERE id = ?1", [&id])?;
        expired.files.push(path);
    }
    let results_before = now - results_after.as_millis() as i64;
    let old: Vec<(String, Option<String>, Option<String>)> = {
        let mut stmt = tx.prepare(
            "SELECT id, audio_path, result_path FROM jobs \
             WHERE finished_at IS NOT NULL AND finished_at <= ?1",
        )?;
        let rows = stmt.query_map([results_before], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, audio, result) in old {
        tx.execute("DELETE FROM job_events WHERE job_id = ?1", [&id])?;
        tx.execute("DELETE FROM job_attempts WHERE job_id = ?1", [&id])?;
        tx.execute(
            "DELETE FROM webhook_deliveries WHERE job_id = ?1 AND state != 'pending'",
            [&id],
        )?;
        tx.execute("DELETE FROM jobs WHERE id = ?1", [&id])?;
        expired.files.extend(audio.into_iter().chain(result));
        expired.jobs_deleted += 1;
    }
    tx.commit()?;
    Ok(expired)
}

/// How many jobs wait and run, and when the oldest waiting one came.
pub fn stats(conn: &mut Connection) -> Result<QueueStats, StoreError> {
    Ok(conn.query_row(
        "SELECT COALESCE(SUM(status = 'queued'), 0), COALESCE(SUM(status = 'running'), 0), \
         MIN(CASE WHEN status = 'queued' THEN created_at END) \
         FROM jobs WHERE status IN ('queued', 'running')",
        [],
        |r| {
            Ok(QueueStats {
                queued: r.get::<_, i64>(0)? as u64,
                running: r.get::<_, i64>(1)? as u64,
                oldest_queued_at: r.get(2)?,
            })
        },
    )?)
}
