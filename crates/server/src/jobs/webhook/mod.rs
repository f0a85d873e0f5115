//! Webhooks in the Standard Webhooks style: every message carries
//! `webhook-id` (stable across retries, for deduplication: delivery is at
//! least once), `webhook-timestamp`, and `webhook-signature` — `v1,` and
//! the base64 HMAC-SHA256 of `id.timestamp.body` under each of the
//! server's `whsec_` secrets (several during a rotation).
//!
//! Messages come from the outbox the store writes with each state change
//! ([`sender`] delivers them); outbound connections only go to addresses
//! the [`guard`] allows.

pub mod guard;
pub mod sender;

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A signing secret.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> anyhow::Result<Secret> {
        let b64 = text.trim().strip_prefix("whsec_").ok_or_else(|| {
            anyhow::anyhow!("webhook secrets start with whsec_ followed by base64")
        })?;
        let key = BASE64
            .decode(b64)
            .map_err(|e| anyhow::anyhow!("webhook secret is not whsec_ + base64: {e}"))?;
        anyhow::ensure!(
            (16..=64).contains(&key.len()),
            "webhook secret must hold 16 to 64 bytes, has {}",
            key.len()
        );
        Ok(Secret(key))
    }

    /// A new random secret.
    pub fn generate() -> anyhow::Result<Secret> {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(Secret(key))
    }

    pub fn to_text(&self) -> String {
        format!("whsec_{}", BASE64.encode(&self.0))
    }

    fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body.as_bytes());
        BASE64.encode(mac.finalize().into_bytes())
    }
}

/// The configured secrets, or the one kept in `dir` (created on first use,
/// readable by the owner only).
pub fn secrets(configured: &[String], dir: &Path) -> anyhow::Result<Vec<Secret>> {
    if !configured.is_empty() {
        return configured.iter().map(|s| Secret::parse(s)).collect();
    }
    let path = dir.join("webhook_secret");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(vec![
            Secret::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        ]);
    }
    let secret = Secret::generate()?;
    let tmp = dir.join(format!(".webhook_secret.{}", std::process::id()));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(secret.to_text().as_bytes())?;
        f.sync_all()?;
    }
    // Nodes sharing the directory may start together: the first link wins
    // and every node signs with the secret on disk.
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    if linked.is_ok() {
        tracing::info!(path = %path.display(), "generated a webhook signing secret");
    }
    let text = std::fs::read_to_string(&path)?;
    Ok(vec![
        Secret::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
    ])
}

/// The `webhook-signature` header: one `v1,<sig>` per secret.
pub fn signature(secrets: &[Secret], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .map(|s| format!("v1,{}", s.sign(id, timestamp, body)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A message body: `{"type", "timestamp", "data"}` (Standard Webhooks' shape).
pub fn body(event: &str, now_ms: i64, data: &impl serde::Serialize) -> String {
    serde_json::json!({
        "type": event,
        "timestamp": rfc3339(now_ms),
        "data": data,
    })
    .to_string()
}

/// Unix milliseconds as an RFC 3339 UTC time.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_796_083_200_000), "2026-12-01T00:00:00.000Z");
    }

    #[test]
    fn secrets_round_trip_and_sign_with_each() {
        let a = Secret::generate().unwrap();
        let b = Secret::parse(&a.to_text()).unwrap();
        assert_eq!(a.0, b.0);
        assert!(Secret::parse("nope").is_err());
        let header = signature(&[a, Secret::generate().unwrap()], "msg_1", 1, "{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.split(' ').all(|s| s.starts_with("v1,")));
    }
}
