//! API keys and the tenants they stand for.
//!
//! A server serves one tenant per named key (`[[keys]]` in the config
//! file): the name is what logs, metrics and job owners show, never the key;
//! the scopes say which route groups the key may call; optional limits
//! narrow the server-wide ones for that key. The plain `api_keys` /
//! `api_key_hashes` settings stay what they were before names existed:
//! keys with every scope, each its own tenant, whose jobs keep the owner
//! they were stored with (the key's hash).

use std::collections::HashMap;
use std::sync::Arc;

use super::hash_key;

/// What a key may do. `Admin` implies every other scope and sees every
/// tenant's jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// One-shot transcription: OpenAI's audio routes and the native ones.
    Transcribe,
    /// Live sessions (`/v1/ws`, `/v1/realtime`) and the client secrets that open them.
    Live,
    /// Durable jobs: submit, list, read, cancel, purge — one's own.
    Jobs,
    /// Model operations: load, unload, the model-events stream.
    Models,
    /// Everything, and every tenant's jobs.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Transcribe,
        Scope::Live,
        Scope::Jobs,
        Scope::Models,
        Scope::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Transcribe => "transcribe",
            Scope::Live => "live",
            Scope::Jobs => "jobs",
            Scope::Models => "models",
            Scope::Admin => "admin",
        }
    }
}

/// One `[[keys]]` entry as written in the file.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Shown in logs, metrics and job owners.
    pub name: String,
    /// The key itself, or …
    pub key: Option<String>,
    /// … its SHA-256 hex digest, so the file need not hold the key.
    pub key_sha256: Option<String>,
    pub scopes: Vec<Scope>,
    /// Requests per minute for this key (instead of `rate_limit_per_minute`).
    pub rate_limit_per_minute: Option<u32>,
    /// Live sessions at a time for this key (instead of `max_sessions_per_key`).
    pub max_sessions: Option<usize>,
    /// Largest job upload for this key, at most the server's `max_job_bytes`.
    pub max_job_bytes: Option<u64>,
    /// Seconds of audio a day (UTC) this key may have recognised, per node.
    pub audio_seconds_per_day: Option<f64>,
    /// Signs this key's job webhooks instead of the server's secrets
    /// (`whsec_` + base64), so the tenant verifies its own deliveries only.
    pub webhook_secret: Option<String>,
}

/// Who a key stands for, with what it may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub name: String,
    /// The owner its jobs are stored under: the name, or for an unnamed
    /// key its hash (as jobs were stored before keys had names).
    pub owner: String,
    /// The key's SHA-256 digest ("" for the open tenant): client secrets
    /// are signed under it. Never shown.
    pub key_hash: String,
    scopes: Vec<Scope>,
    pub rate_limit_per_minute: Option<u32>,
    pub max_sessions: Option<usize>,
    pub max_job_bytes: Option<u64>,
    pub audio_seconds_per_day: Option<f64>,
    pub webhook_secret: Option<String>,
}

impl Tenant {
    /// A tenant with every scope and no limits of its own.
    fn unlimited(name: String, owner: &str, key_hash: &str) -> Tenant {
        Tenant {
            name,
            owner: owner.to_string(),
            key_hash: key_hash.to_string(),
            scopes: vec![Scope::Admin],
            rate_limit_per_minute: None,
            max_sessions: None,
            max_job_bytes: None,
            audio_seconds_per_day: None,
            webhook_secret: None,
        }
    }

    /// A key of `api_keys` / `api_key_hashes`: every scope.
    fn unnamed(hash: &str) -> Tenant {
        Tenant::unlimited(owner_name(hash), hash, hash)
    }

    /// The caller of a server without keys: a single tenant that may do everything.
    pub fn open() -> Tenant {
        Tenant::unlimited("anonymous".into(), "", "")
    }

    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }

    pub fn is_admin(&self) -> bool {
        self.may(Scope::Admin)
    }
}

/// The name a job owner is shown by: a named key's name, or for an unnamed
/// key (stored by its hash) `key-` and the hash's first 12 digits.
pub fn owner_name(owner: &str) -> String {
    if owner.len() == 64 && owner.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("key-{}", &owner[..12])
    } else {
        owner.to_string()
    }
}

/// The accepted keys, by SHA-256 hex digest.
pub type Keys = HashMap<String, Arc<Tenant>>;

fn digest(h: &str, setting: &str) -> anyhow::Result<String> {
    let h = h.trim().to_ascii_lowercase();
    if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        anyhow::bail!("{setting}: {h:?} is not a SHA-256 hex digest (64 hex digits)");
    }
    Ok(h)
}

/// Every accepted key: the unnamed ones, then the named ones (a key given
/// both ways takes its name and scopes).
pub fn keys(plain: &[String], hashes: &[String], named: &[KeySpec]) -> anyhow::Result<Keys> {
    let mut keys = Keys::new();
    let unnamed = plain
        .iter()
        .filter(|k| !k.trim().is_empty())
        .map(|k| Ok(hash_key(k)))
        .chain(hashes.iter().map(|h| digest(h, "api_key_hashes")));
    for hash in unnamed {
        let hash = hash?;
        keys.insert(hash.clone(), Arc::new(Tenant::unnamed(&hash)));
    }
    let mut names = std::collections::HashSet::new();
    for spec in named {
        let name = spec.name.trim();
        let bad_name = name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
        if bad_name {
            anyhow::bail!(
                "keys: name {:?} must be 1 to 64 letters, digits, '-', '_', '.' or '@'",
                spec.name
            );
        }
        if !names.insert(name.to_string()) {
            anyhow::bail!("keys: the name {name:?} is given twice");
        }
        let hash = match (&spec.key, &spec.key_sha256) {
            (Some(k), None) if !k.trim().is_empty() => hash_key(k),
            (None, Some(h)) => digest(h, "keys.key_sha256")?,
            _ => anyhow::bail!("keys: {name:?} needs exactly one of key or key_sha256"),
        };
        if spec.scopes.is_empty() {
            anyhow::bail!(
                "keys: {name:?} has no scopes; give some of transcribe, live, jobs, models, admin"
            );
        }
        if spec.rate_limit_per_minute == Some(0) || spec.max_sessions == Some(0) {
            anyhow::bail!("keys: {name:?}: a limit of 0 would refuse everything; leave it out for the server's");
        }
        if spec
            .audio_seconds_per_day
            .is_some_and(|q| !q.is_finite() || q <= 0.0)
        {
            anyhow::bail!(
                "keys: {name:?}: audio_seconds_per_day must be a positive number of seconds"
            );
        }
        if let Some(secret) = &spec.webhook_secret {
            crate::jobs::webhook::Secret::parse(secret)
                .map_err(|e| anyhow::anyhow!("keys: {name:?}: webhook_secret: {e}"))?;
        }
        if keys.get(&hash).is_some_and(|t| names.contains(&t.name)) {
            anyhow::bail!("keys: {name:?} repeats another named key");
        }
        keys.insert(
            hash.clone(),
            Arc::new(Tenant {
                name: name.to_string(),
                owner: name.to_string(),
                key_hash: hash,
                scopes: spec.scopes.clone(),
                rate_limit_per_minute: spec.rate_limit_per_minute,
                max_sessions: spec.max_sessions,
                max_job_bytes: spec.max_job_bytes,
                audio_seconds_per_day: spec.audio_seconds_per_day,
                webhook_secret: spec.webhook_secret.clone(),
            }),
        );
    }
    Ok(keys)
}
