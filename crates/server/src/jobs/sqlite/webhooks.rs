//! The webhook outbox in SQLite: rows written with the state change that
//! causes them, leased to a sender, and their attempts recorded.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::jobs::model::now_ms;
use crate::jobs::store::{Delivery, DeliveryResult, StoreError};

/// Queues a delivery (state `disabled` at once when the URL answered 410 before).
pub fn enqueue(
    tx: &Transaction<'_>,
    job_id: Option<&str>,
    event: &str,
    url: &str,
    body: &str,
    now: i64,
) -> Result<(), StoreError> {
    let state = if is_disabled(tx, url)? {
        "disabled"
    } else {
        "pending"
    };
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    tx.execute(
        "INSERT INTO webhook_deliveries (id, job_id, event, url, body, state, first_at, next_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![id, job_id, event, url, body, state, now],
    )?;
    Ok(())
}

pub fn is_disabled(conn: &Connection, url: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM webhook_disabled_urls WHERE url = ?1",
            [url],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub fn claim(
    conn: &mut Connection,
    node: &str,
    lease: Duration,
    limit: usize,
) -> Result<Vec<Delivery>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let now = now_ms();
    let due: Vec<Delivery> = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, url, body, attempts, first_at, \
             (SELECT owner FROM jobs WHERE jobs.id = webhook_deliveries.job_id) FROM webhook_deliveries \
             WHERE state = 'pending' AND next_at <= ?1 AND (lease_until IS NULL OR lease_until < ?1) \
             ORDER BY next_at LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now, limit as i64], |r| {
            Ok(Delivery {
                id: r.get(0)?,
                url: r.get(1)?,
                body: r.get(2)?,
                attempts: r.get(3)?,
                first_at: r.get(4)?,
                owner: r.get(5)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for d in &due {
        tx.execute(
            "UPDATE webhook_deliveries SET lease_owner = ?2, lease_until = ?3 WHERE id = ?1",
            params![d.id, node, now + lease.as_millis() as i64],
        )?;
    }
    tx.commit()?;
    Ok(due)
}

/// Records an attempt; fenced by the number of attempts made before it,
/// so an attempt whose lease ran out cannot overwrite a later one.
pub fn record(
    conn: &mut Connection,
    id: &str,
    attempts: u32,
    result: DeliveryResult,
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let now = now_ms();
    let row = result.row();
    let delivered = row.delivered.then_some(now);
    let url: Option<String> = tx
        .query_row(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, state = ?3, last_status = ?4, \
             last_error = ?5, next_at = COALESCE(?6, next_at), delivered_at = ?7, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = ?1 AND attempts = ?2 AND state = 'pending' RETURNING url",
            params![
                id,
                attempts,
                row.state,
                row.status,
                row.error,
                row.next_at,
                delivered
            ],
            |r| r.get(0),
        )
        .optional()?;
    let Some(url) = url else {
        return Err(StoreError::Fenced);
    };
    if matches!(result, DeliveryResult::Disabled { .. }) {
        tx.execute(
            "INSERT OR IGNORE INTO webhook_disabled_urls (url, at) VALUES (?1, ?2)",
            params![url, now],
        )?;
        tx.execute(
            "UPDATE webhook_deliveries SET state = 'disabled', lease_owner = NULL, lease_until = NULL \
             WHERE url = ?1 AND state = 'pending'",
            [&url],
        )?;
    }
    tx.commit()?;
    Ok(())
}
