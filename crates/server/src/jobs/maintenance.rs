//! Housekeeping: requeueing jobs whose lease ran out, retention (audio
//! when a job ends, results after a week by default), the queue gauges,
//! and model lifecycle webhooks.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::model::{now_ms, JobStatus};
use super::store::ListQuery;
use super::Jobs;
use crate::state::AppState;

pub(super) async fn run(state: Arc<AppState>, jobs: Arc<Jobs>) {
    loop {
        match jobs.store.recover(false).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(requeued = n, "jobs whose lease ran out were requeued");
                jobs.queued();
                jobs.wake_sender.notify_one();
            }
            Err(e) => tracing::warn!("lease check failed: {e}"),
        }
        let s = state.config().settings.clone();
        match jobs
            .store
            .expire(
                Duration::from_secs(s.job_audio_retention),
                Duration::from_secs(s.job_result_retention),
            )
            .await
        {
            Ok(expired) => jobs.files.remove(&expired.files).await,
            Err(e) => tracing::warn!("retention failed: {e}"),
        }
        if let Ok(stats) = jobs.store.stats().await {
            metrics::gauge!("glagol_jobs_queued").set(stats.queued as f64);
            metrics::gauge!("glagol_jobs_running").set(stats.running as f64);
            let oldest = stats
                .oldest_queued_at
                .map_or(0.0, |t| (now_ms() - t).max(0) as f64 / 1000.0);
            metrics::gauge!("glagol_jobs_oldest_queued_seconds").set(oldest);
        }
        let _ =
            tokio::time::timeout(Duration::from_secs(2), jobs.wake_maintenance.notified()).await;
    }
}

/// Deletes stored audio no job refers to: an upload flushed before a
/// crash took the process before its row was committed, never acknowledged.
pub(super) async fn remove_orphans(jobs: &Jobs) {
    let Ok(entries) = std::fs::read_dir(jobs.files.path("audio")) else {
        return;
    };
    // In a shared directory another node may have flushed an upload whose
    // row it is about to commit: only old files can be debris.
    let keep = if jobs.files.exclusive() {
        Duration::ZERO
    } else {
        super::files::SHARED_GRACE
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !super::files::older_than(&entry.path(), keep) {
            continue;
        }
        if let Ok(None) = jobs.store.get(&name).await {
            tracing::info!(file = %name, "deleting an upload no job refers to");
            jobs.files.remove(&[format!("audio/{name}")]).await;
        }
    }
}

/// Sends model lifecycle events to the configured URLs (and, if asked, to
/// the webhook URLs of jobs not yet finished) through the outbox.
pub(super) async fn forward_model_events(state: Arc<AppState>, jobs: Arc<Jobs>) {
    let mut events = state.registry.subscribe();
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        let kind = match event.event {
            "model_ready" => "model.ready",
            "model_unloaded" => "model.unloaded",
            "model_waiting_for_memory" => "model.waiting_for_memory",
            _ => continue,
        };
        let s = state.config().settings.clone();
        let mut urls: BTreeSet<String> = s.model_event_webhooks.iter().cloned().collect();
        if s.model_events_to_job_webhooks {
            for status in [JobStatus::Queued, JobStatus::Running] {
                let query = ListQuery {
                    status: Some(status),
                    limit: 1000,
                    ..Default::default()
                };
                if let Ok(list) = jobs.store.list(&query).await {
                    urls.extend(list.into_iter().filter_map(|j| j.webhook_url));
                }
            }
        }
        if urls.is_empty() {
            continue;
        }
        let body = super::webhook::body(kind, now_ms(), &event);
        for url in urls {
            if let Err(e) = jobs.store.enqueue_webhook(kind, &url, body.clone()).await {
                tracing::warn!("model event webhook not queued: {e}");
            }
        }
        jobs.wake_sender.notify_one();
    }
}
