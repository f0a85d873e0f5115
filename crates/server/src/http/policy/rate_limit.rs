//! Per-client rate limits (GCRA, from `governor`): a valid API key's
//! tenant is a client, at its own rate where its key sets one; without a
//! key, the client address is. Presenting made-up keys therefore gains
//! nothing.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::auth::{client_ip, Caller};
use super::Policy;
use crate::error::{ErrorKind, ServiceError};

/// Buckets per client for one configured rate.
pub struct Buckets {
    pub per_minute: u32,
    limiter: DefaultKeyedRateLimiter<String>,
}

impl Buckets {
    pub fn new(per_minute: u32) -> Option<Buckets> {
        let n = NonZeroU32::new(per_minute)?;
        Some(Buckets {
            per_minute,
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
        })
    }

    /// Takes one request from `key`'s bucket; when empty, how long until
    /// the next is allowed.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&key.to_string())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

pub fn limited(wait: Duration, message: &str) -> ServiceError {
    ServiceError::new(ErrorKind::RateLimited, "rate_limited", message)
        .retry_after(wait.max(Duration::from_secs(1)))
}

pub async fn rate_limit(
    State(policy): State<Arc<Policy>>,
    req: Request,
    next: Next,
) -> Result<Response, ServiceError> {
    let caller = req.extensions().get::<Caller>().cloned();
    let caller = caller.unwrap_or(Caller::Anonymous);
    let rate = caller
        .tenant()
        .rate_limit_per_minute
        .unwrap_or(policy.app.config().settings.rate_limit_per_minute);
    let Some(buckets) = policy.buckets(rate) else {
        return Ok(next.run(req).await);
    };
    let key = caller.limit_key(client_ip(&req));
    buckets
        .take(&key)
        .map_err(|wait| limited(wait, "too many requests; slow down"))?;
    Ok(next.run(req).await)
}
