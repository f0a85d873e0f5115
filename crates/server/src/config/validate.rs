//! What each setting must be: ranges and formats checked before a
//! configuration is used, each error naming the setting.

use super::Settings;

/// Checks every setting's range and format.
pub(super) fn ranges(s: &Settings) -> anyhow::Result<()> {
    let check = |ok: bool, name: &str, what: &str| -> anyhow::Result<()> {
        if ok {
            Ok(())
        } else {
            anyhow::bail!("{name} must be {what}")
        }
    };
    check(
        !s.default_model.trim().is_empty(),
        "default_model",
        "a model name",
    )?;
    check(
        s.idle_ttl >= -1,
        "idle_ttl",
        "-1 (never), 0 (as soon as idle) or a number of seconds",
    )?;
    check(s.max_body_bytes >= 1, "max_body_bytes", "at least 1")?;
    check(
        s.max_audio_seconds.is_finite() && s.max_audio_seconds > 0.0,
        "max_audio_seconds",
        "a positive number of seconds",
    )?;
    check(
        s.max_diarization_seconds.is_finite() && s.max_diarization_seconds > 0.0,
        "max_diarization_seconds",
        "a positive number of seconds",
    )?;
    check(
        !s.diarization_model.trim().is_empty() && !s.segmentation_model.trim().is_empty(),
        "diarization_model",
        "a model name (and segmentation_model too)",
    )?;
    check(
        s.inference_timeout >= 1,
        "inference_timeout",
        "at least 1 second",
    )?;
    check((1..=64).contains(&s.workers), "workers", "between 1 and 64")?;
    check(s.queue_depth <= 100_000, "queue_depth", "at most 100000")?;
    check(
        (1..=64).contains(&s.max_batch),
        "max_batch",
        "between 1 (no batching) and 64",
    )?;
    check(s.batch_wait_ms <= 10_000, "batch_wait_ms", "at most 10000")?;
    check(
        (1..=256).contains(&s.threads),
        "threads",
        "between 1 and 256",
    )?;
    check(s.drain <= 86_400, "drain", "at most 86400 seconds")?;
    check(
        (1..=3600).contains(&s.header_read_timeout),
        "header_read_timeout",
        "between 1 and 3600 seconds",
    )?;
    check(s.memory_retry >= 1, "memory_retry", "at least 1 second")?;
    check(
        (1..=10_000).contains(&s.max_sessions),
        "max_sessions",
        "between 1 and 10000",
    )?;
    check(
        (1..=10_000).contains(&s.max_sessions_per_key),
        "max_sessions_per_key",
        "between 1 and 10000",
    )?;
    check(
        (1..=86_400).contains(&s.session_idle_timeout),
        "session_idle_timeout",
        "between 1 and 86400 seconds",
    )?;
    check(
        (1..=604_800).contains(&s.max_session_seconds),
        "max_session_seconds",
        "between 1 and 604800 seconds",
    )?;
    check(
        (1024..=(64 << 20)).contains(&s.max_frame_bytes),
        "max_frame_bytes",
        "between 1024 and 67108864",
    )?;
    check(
        (1..=3600).contains(&s.max_live_backlog),
        "max_live_backlog",
        "between 1 and 3600 seconds",
    )?;
    check(
        s.max_live_speed == 0.0 || (1.0..=1000.0).contains(&s.max_live_speed),
        "max_live_speed",
        "0 (unbounded) or between 1 and 1000 times real time",
    )?;
    check(
        s.wyoming.is_empty() || crate::wyoming::Address::parse(&s.wyoming).is_ok(),
        "wyoming",
        "tcp://HOST:PORT or unix://PATH",
    )?;
    check(
        s.wyoming_zeroconf.is_empty() || s.wyoming.starts_with("tcp://"),
        "wyoming_zeroconf",
        "used with a tcp:// Wyoming listener",
    )?;
    check(
        s.wyoming_models.iter().all(|m| {
            m.split_once('=')
                .is_some_and(|(l, m)| !l.is_empty() && !m.is_empty())
        }),
        "wyoming_models",
        "LANG=MODEL entries",
    )?;
    check(s.max_job_bytes >= 1, "max_job_bytes", "at least 1")?;
    let shared = s.job_store.starts_with("postgres://") || s.job_store.starts_with("postgresql://");
    check(
        s.job_store == "sqlite" || shared,
        "job_store",
        "sqlite or a postgres:// URL",
    )?;
    check(
        s.role == "all" || (shared && (s.role == "api" || s.role == "worker")),
        "role",
        "all, or api or worker with a PostgreSQL job store",
    )?;
    check(s.node_id.len() <= 128, "node_id", "at most 128 bytes")?;
    check(
        (1..=64).contains(&s.job_concurrency),
        "job_concurrency",
        "between 1 and 64",
    )?;
    check(
        (1..=100).contains(&s.job_attempts),
        "job_attempts",
        "between 1 and 100",
    )?;
    check(
        (1..=3600).contains(&s.job_lease),
        "job_lease",
        "between 1 and 3600 seconds",
    )?;
    check(s.job_timeout >= 1, "job_timeout", "at least 1 second")?;
    check(
        s.webhook_timeout.is_finite() && (0.1..=600.0).contains(&s.webhook_timeout),
        "webhook_timeout",
        "between 0.1 and 600 seconds",
    )?;
    check(
        s.webhook_retries.len() <= 50
            && s.webhook_retries
                .iter()
                .all(|r| r.is_finite() && (0.0..=86_400.0 * 7.0).contains(r)),
        "webhook_retries",
        "at most 50 delays of 0 to 604800 seconds",
    )?;
    for cidr in &s.webhook_allow_cidrs {
        cidr.parse::<crate::jobs::webhook::guard::Cidr>()
            .map_err(|e| anyhow::anyhow!("webhook_allow_cidrs: {e}"))?;
    }
    for secret in &s.webhook_secrets {
        crate::jobs::webhook::Secret::parse(secret)
            .map_err(|e| anyhow::anyhow!("webhook_secrets: {e}"))?;
    }
    for (from, to) in &s.aliases {
        check(
            !from.is_empty() && !to.trim().is_empty(),
            "aliases",
            "non-empty names",
        )?;
    }
    Ok(())
}
