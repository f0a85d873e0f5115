//! Upkeep of the job table in PostgreSQL: recovering jobs whose node
//! stopped, and retention. Rows another node holds are skipped, not waited
//! for (`SKIP LOCKED`); that node's next pass takes them.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Transaction};

use super::schema::end_attempt;
use super::{add_event, ended};
use crate::jobs::store::{after_interruption, retry_delay_ms, Expired, StoreError, REQUEUED};

/// Requeues running jobs whose lease ended (all of them with `all`), or
/// ends them: cancelled if a cancel was asked, else `attempts_exhausted`
/// once they had their attempts.
pub async fn recover(tx: &Transaction<'_>, all: bool) -> Result<u64, StoreError> {
    let stuck = tx
        .query(
            "SELECT id, attempt, max_attempts, cancel_requested FROM jobs \
             WHERE status = 'running' AND ($1 OR lease_until < glagol_now_ms()) \
             FOR UPDATE SKIP LOCKED",
            &[&all],
        )
        .await?;
    for row in &stuck {
        let id: String = row.get(0);
        let attempt = row.get::<_, i32>(1) as u32;
        let max_attempts = row.get::<_, i32>(2) as u32;
        let cancel: bool = row.get(3);
        end_attempt(tx, &id, attempt, "interrupted").await?;
        if let Some(outcome) = after_interruption(attempt, max_attempts, cancel) {
            let e = outcome.ending();
            tx.execute(
                "UPDATE jobs SET status = $2, error_code = $3, error_message = $4, \
                 finished_at = glagol_now_ms(), lease_owner = NULL, lease_until = NULL WHERE id = $1",
                &[&id, &e.status, &e.error_code, &e.error_message],
            )
            .await?;
            ended(tx, &id).await?;
        } else {
            tx.execute(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_until = NULL, \
                 run_after = glagol_now_ms() + $2 WHERE id = $1",
                &[&id, &retry_delay_ms(attempt)],
            )
            .await?;
            let data = serde_json::json!({"attempt": attempt, "reason": REQUEUED});
            add_event(tx, &id, "queued", &data.to_string()).await?;
        }
    }
    Ok(stuck.len() as u64)
}

/// Drops the audio of jobs finished `audio_after` ago and whole jobs
/// finished `results_after` ago; returns the files to delete.
pub async fn expire(
    tx: &Transaction<'_>,
    audio_after: Duration,
    results_after: Duration,
) -> Result<Expired, StoreError> {
    let mut expired = Expired::default();
    let audio = tx
        .query(
            "UPDATE jobs j SET audio_path = NULL FROM (SELECT id, audio_path FROM jobs \
             WHERE audio_path IS NOT NULL AND finished_at IS NOT NULL \
             AND finished_at <= glagol_now_ms() - $1 FOR UPDATE SKIP LOCKED) old \
             WHERE j.id = old.id RETURNING old.audio_path",
            &[&(audio_after.as_millis() as i64)],
        )
        .await?;
    expired
        .files
        .extend(audio.iter().map(|r| r.get::<_, String>(0)));
    let old = tx
        .query(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE finished_at IS NOT NULL \
             AND finished_at <= glagol_now_ms() - $1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, audio_path, result_path",
            &[&(results_after.as_millis() as i64)],
        )
        .await?;
    for row in &old {
        let id: String = row.get(0);
        for table in ["job_events", "job_attempts"] {
            tx.execute(&format!("DELETE FROM {table} WHERE job_id = $1"), &[&id])
                .await?;
        }
        tx.execute(
            "DELETE FROM webhook_deliveries WHERE job_id = $1 AND state != 'pending'",
            &[&id],
        )
        .await?;
        expired.files.extend(row.get::<_, Option<String>>(1));
        expired.files.extend(row.get::<_, Option<String>>(2));
        expired.jobs_deleted += 1;
    }
    Ok(expired)
}
