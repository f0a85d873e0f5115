//! Delivers the outbox: claims due deliveries with a lease, sends each,
//! records the attempt. Retries follow the configured schedule with ±20 %
//! jitter and honour `Retry-After`; a 410 disables the URL; after the last
//! scheduled retry the delivery is given up. Redirects are not followed
//! and no proxy is used, so the guard's view of the address is the truth.

use std::sync::Arc;
use std::time::Duration;

use super::guard::{Guard, GuardedResolver};
use super::{signature, Secret};
use crate::config::Current;
use crate::jobs::model::now_ms;
use crate::jobs::store::{Delivery, DeliveryResult, JobStore};

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct SendPolicy {
    pub secrets: Vec<Secret>,
    pub guard: Arc<Guard>,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Delay before each retry; its length is the number of retries.
    pub retries: Vec<Duration>,
    /// Extra roots for receivers behind a private CA.
    pub ca_file: Option<std::path::PathBuf>,
}

pub struct Sender {
    store: Arc<dyn JobStore>,
    node: String,
    policy: SendPolicy,
    /// The keys in force: a key's own webhook secret signs its jobs' deliveries.
    config: Arc<Current>,
    client: reqwest::Client,
}

impl Sender {
    pub fn new(
        store: Arc<dyn JobStore>,
        node: String,
        policy: SendPolicy,
        config: Arc<Current>,
    ) -> anyhow::Result<Sender> {
        // One process-wide TLS provider; an earlier install is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Roots of glagol's own choosing: reqwest's default would need the
        // system's store and fail to start in an image without one.
        let roots = glagol_core::tls::roots(policy.ca_file.as_deref())?
            .iter()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()?;
        let client = reqwest::Client::builder()
            .tls_certs_only(roots)
            .dns_resolver(Arc::new(GuardedResolver(policy.guard.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(policy.timeout)
            .user_agent(concat!("glagol/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender {
            store,
            node,
            policy,
            config,
            client,
        })
    }

    /// Sends due deliveries until the process ends; `wake` shortens the wait.
    pub async fn run(self: Arc<Self>, wake: Arc<tokio::sync::Notify>) {
        loop {
            // Longer than an attempt may take; short, so a dead node's
            // deliveries are soon taken over.
            let lease = self.policy.timeout * 2 + Duration::from_secs(1);
            match self.store.claim_deliveries(&self.node, lease, 16).await {
                Ok(due) if !due.is_empty() => {
                    let sends = due.into_iter().map(|d| {
                        let me = self.clone();
                        tokio::spawn(async move { me.deliver(d).await })
                    });
                    futures_util::future::join_all(sends).await;
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("webhook outbox: {e}"),
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), wake.notified()).await;
        }
    }

    async fn deliver(&self, d: Delivery) {
        let result = self.attempt(&d).await;
        match &result {
            DeliveryResult::Delivered { status } => {
                tracing::info!(id = %d.id, status, "webhook delivered")
            }
            other => tracing::warn!(id = %d.id, url = %d.url, ?other, "webhook not delivered"),
        }
        if let Err(e) = self.store.delivery_result(&d.id, d.attempts, result).await {
            tracing::warn!(id = %d.id, "webhook attempt not recorded: {e}");
        }
    }

    /// What signs `d`: its job's key's own secret where that key has one
    /// (so each tenant verifies only its own deliveries), else the server's.
    fn secrets_for(&self, d: &Delivery) -> Vec<Secret> {
        let config = self.config.get();
        let own = d.owner.as_deref().and_then(|owner| {
            let tenant = config.keys.values().find(|t| t.owner == owner)?;
            Secret::parse(tenant.webhook_secret.as_deref()?).ok()
        });
        own.map_or_else(|| self.policy.secrets.clone(), |s| vec![s])
    }

    async fn attempt(&self, d: &Delivery) -> DeliveryResult {
        let url = match reqwest::Url::parse(&d.url) {
            Ok(u) => u,
            Err(e) => {
                return DeliveryResult::GaveUp {
                    status: None,
                    error: format!("not a URL: {e}"),
                }
            }
        };
        // The resolver only sees names; a literal address is checked here.
        let literal = url
            .host_str()
            .map(|h| h.trim_matches(|c| c == '[' || c == ']'))
            .and_then(|h| h.parse::<std::net::IpAddr>().ok());
        if let Some(ip) = literal.filter(|ip| !self.policy.guard.allows(*ip)) {
            return DeliveryResult::GaveUp {
                status: None,
                error: format!("{ip} is not an address webhooks may reach"),
            };
        }
        let timestamp = now_ms() / 1000;
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature(&self.secrets_for(d), &d.id, timestamp, &d.body),
            )
            .body(d.body.clone())
            .send()
            .await;
        let (status, error, retry_after) = match sent {
            Ok(r) if r.status().is_success() => {
                return DeliveryResult::Delivered {
                    status: r.status().as_u16(),
                }
            }
            Ok(r) if r.status().as_u16() == 410 => return DeliveryResult::Disabled { status: 410 },
            Ok(r) => {
                let retry_after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let status = r.status().as_u16();
                (
                    Some(status),
                    format!("the receiver answered {status}"),
                    retry_after,
                )
            }
            Err(e) => (None, error_chain(&e), None),
        };
        let made = d.attempts as usize + 1;
        match self.policy.retries.get(made - 1) {
            None => DeliveryResult::GaveUp { status, error },
            Some(delay) => {
                let mut wait = jitter(*delay);
                if let Some(after) = retry_after {
                    wait = wait.max(after.min(Duration::from_secs(86_400)));
                }
                DeliveryResult::Retry {
                    status,
                    error,
                    next_at: now_ms() + wait.as_millis() as i64,
                }
            }
        }
    }
}

/// `delay` ± 20 %.
fn jitter(delay: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let r = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX); // 0..1
    delay.mul_f64(0.8 + 0.4 * r)
}

/// An error with its causes, e.g. "error sending request: … timed out".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    text
}
