//! The webhook outbox in PostgreSQL: deliveries leased with `SKIP LOCKED`,
//! so each is sent by one node at a time, and attempts fenced by count.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Transaction};

use crate::jobs::store::{Delivery, DeliveryResult, StoreError};

pub async fn enqueue(
    tx: &Transaction<'_>,
    job_id: Option<&str>,
    event: &str,
    url: &str,
    body: &str,
) -> Result<(), StoreError> {
    let state = if is_disabled(tx, url).await? {
        "disabled"
    } else {
        "pending"
    };
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    tx.execute(
        "INSERT INTO webhook_deliveries (id, job_id, event, url, body, state, first_at, next_at) \
         VALUES ($1, $2, $3, $4, $5, $6, glagol_now_ms(), glagol_now_ms())",
        &[&id, &job_id, &event, &url, &body, &state],
    )
    .await?;
    Ok(())
}

pub async fn is_disabled<C: GenericClient>(c: &C, url: &str) -> Result<bool, StoreError> {
    Ok(c.query_opt(
        "SELECT 1 FROM webhook_disabled_urls WHERE url = $1",
        &[&url],
    )
    .await?
    .is_some())
}

pub async fn claim(
    client: &mut deadpool_postgres::Object,
    node: &str,
    lease: Duration,
    limit: usize,
) -> Result<Vec<Delivery>, StoreError> {
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "UPDATE webhook_deliveries d SET lease_owner = $1, lease_until = glagol_now_ms() + $2 \
             FROM (SELECT id FROM webhook_deliveries WHERE state = 'pending' \
             AND next_at <= glagol_now_ms() AND (lease_until IS NULL OR lease_until < glagol_now_ms()) \
             ORDER BY next_at LIMIT $3 FOR UPDATE SKIP LOCKED) due \
             WHERE d.id = due.id RETURNING d.id, d.url, d.body, d.attempts, d.first_at, \
             (SELECT owner FROM jobs j WHERE j.id = d.job_id)",
            &[&node, &(lease.as_millis() as i64), &(limit as i64)],
        )
        .await?;
    tx.commit().await?;
    Ok(rows
        .iter()
        .map(|r| Delivery {
            id: r.get(0),
            url: r.get(1),
            body: r.get(2),
            attempts: r.get::<_, i32>(3) as u32,
            first_at: r.get(4),
            owner: r.get(5),
        })
        .collect())
}

pub async fn record(
    client: &mut deadpool_postgres::Object,
    id: &str,
    attempts: u32,
    result: DeliveryResult,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let row = result.row();
    // A retry time comes from the sender's clock as a delay from now.
    let delay = row
        .next_at
        .map(|at| (at - crate::jobs::model::now_ms()).max(0));
    let updated = tx
        .query_opt(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, state = $3, last_status = $4, \
             last_error = $5, next_at = COALESCE(glagol_now_ms() + $6, next_at), \
             delivered_at = CASE WHEN $7 THEN glagol_now_ms() END, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND attempts = $2 AND state = 'pending' RETURNING url",
            &[
                &id,
                &(attempts as i32),
                &row.state,
                &row.status.map(i32::from),
                &row.error,
                &delay,
                &row.delivered,
            ],
        )
        .await?;
    let Some(updated) = updated else {
        return Err(StoreError::Fenced);
    };
    let url: String = updated.get(0);
    if matches!(result, DeliveryResult::Disabled { .. }) {
        tx.execute(
            "INSERT INTO webhook_disabled_urls (url, at) VALUES ($1, glagol_now_ms()) ON CONFLICT DO NOTHING",
            &[&url],
        )
        .await?;
        tx.execute(
            "UPDATE webhook_deliveries SET state = 'disabled', lease_owner = NULL, lease_until = NULL \
             WHERE url = $1 AND state = 'pending'",
            &[&url],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
