//! Short-lived client secrets, so that a browser can open a Realtime
//! session without holding an API key: a back end with a key mints one
//! (`POST /v1/realtime/client_secrets`, or the beta
//! `POST /v1/realtime/transcription_sessions`) and hands it to the page,
//! which connects with it as it would with a key.
//!
//! A secret is `ek_<claims>.<mac>`: the claims (expiry, the minting key's
//! id, the session it was minted for) in base64url JSON, and an HMAC-SHA256
//! over them keyed by the minting key's hash. Nothing is stored, so every
//! node that has the key accepts the secret; removing the key (a reload)
//! revokes every secret it minted. A secret opens `/v1/realtime` and
//! nothing else, and the session starts with the settings it was minted for.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::error::{ErrorKind, ServiceError};

pub const PREFIX: &str = "ek_";

/// Seconds a secret may live, as OpenAI bounds `expires_after.seconds`.
pub const MIN_TTL: u64 = 10;
pub const MAX_TTL: u64 = 7200;

/// The largest session a secret carries (it travels in every connect).
const MAX_SESSION_BYTES: usize = 4096;

/// Characters of the key hash that name the minting key in the claims.
const KEY_ID_LEN: usize = 16;

/// What a valid secret grants.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The minting key's hash ("" on a server without keys).
    pub key_hash: String,
    /// The session settings (a GA or beta session object).
    pub session: Value,
}

/// The MAC of `claims` under the key whose hash is `key_hash`.
fn signer(key_hash: &str, claims: &str) -> Hmac<Sha256> {
    let mut m =
        Hmac::<Sha256>::new_from_slice(format!("glagol client secret\n{key_hash}").as_bytes())
            .expect("HMAC takes any key length");
    m.update(claims.as_bytes());
    m
}

fn mac(key_hash: &str, claims: &str) -> Vec<u8> {
    signer(key_hash, claims).finalize().into_bytes().to_vec()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A secret for `session`, valid for `ttl` seconds: (value, expires_at).
pub fn mint(key_hash: &str, ttl: u64, session: &Value) -> Result<(String, u64), ServiceError> {
    if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
        return Err(ServiceError::invalid(
            "invalid_expires_after",
            format!("expires_after.seconds must be from {MIN_TTL} to {MAX_TTL}, got {ttl}"),
        ));
    }
    let expires_at = now() + ttl;
    let claims = json!({
        "exp": expires_at,
        "kid": &key_hash[..key_hash.len().min(KEY_ID_LEN)],
        "session": session,
    })
    .to_string();
    if claims.len() > MAX_SESSION_BYTES {
        return Err(ServiceError::invalid(
            "session_too_large",
            format!("the session is over {MAX_SESSION_BYTES} bytes"),
        ));
    }
    let claims = B64.encode(claims);
    let mac = B64.encode(mac(key_hash, &claims));
    Ok((format!("{PREFIX}{claims}.{mac}"), expires_at))
}

fn refused(code: &'static str, message: &str) -> ServiceError {
    ServiceError::new(ErrorKind::Unauthenticated, code, message)
}

/// Checks a presented secret against the keys in force.
pub fn verify<'a>(
    secret: &str,
    key_hashes: impl IntoIterator<Item = &'a String>,
) -> Result<Grant, ServiceError> {
    let invalid = || {
        refused(
            "invalid_client_secret",
            "the client secret is not valid here",
        )
    };
    let (claims, tag) = secret
        .strip_prefix(PREFIX)
        .and_then(|s| s.split_once('.'))
        .ok_or_else(invalid)?;
    let parsed: Value = B64
        .decode(claims)
        .ok()
        .and_then(|c| serde_json::from_slice(&c).ok())
        .ok_or_else(invalid)?;
    let kid = parsed["kid"].as_str().ok_or_else(invalid)?;
    let tag = B64.decode(tag).map_err(|_| invalid())?;
    // Constant-time comparison of the MAC, under the key it names.
    let key_hash = key_hashes
        .into_iter()
        .filter(|h| h.starts_with(kid) && kid.len() == h.len().min(KEY_ID_LEN))
        .find(|h| signer(h, claims).verify_slice(&tag).is_ok())
        .ok_or_else(invalid)?;
    if parsed["exp"].as_u64().is_none_or(|exp| exp <= now()) {
        return Err(refused(
            "client_secret_expired",
            "the client secret has expired: mint a new one",
        ));
    }
    Ok(Grant {
        key_hash: key_hash.clone(),
        session: parsed["session"].clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_bound_to_its_key_and_its_session() {
        let keys = vec!["a".repeat(64), "b".repeat(64)];
        let session = json!({"type": "transcription"});
        let (secret, _) = mint(&keys[1], 60, &session).unwrap();
        let grant = verify(&secret, &keys).unwrap();
        assert_eq!(
            (grant.key_hash.as_str(), grant.session),
            (keys[1].as_str(), session)
        );
        // The minting key removed: refused.
        assert_eq!(
            verify(&secret, &keys[..1]).unwrap_err().code,
            "invalid_client_secret"
        );
        // Tampered claims: refused.
        let (claims, tag) = secret.split_once('.').unwrap();
        let other = B64.encode(
            json!({"exp": now() + 60, "kid": &keys[1][..16], "session": {"type": "other"}})
                .to_string(),
        );
        let forged = format!("{PREFIX}{other}.{tag}");
        assert_eq!(
            verify(&forged, &keys).unwrap_err().code,
            "invalid_client_secret"
        );
        assert!(claims.starts_with(PREFIX));
        for junk in ["ek_", "ek_x.y", "sk-123", ""] {
            assert_eq!(
                verify(junk, &keys).unwrap_err().code,
                "invalid_client_secret"
            );
        }
    }

    #[test]
    fn lifetimes_are_bounded_and_expiry_is_its_own_error() {
        let key = "c".repeat(64);
        assert!(mint(&key, 9, &json!({})).is_err());
        assert!(mint(&key, 7201, &json!({})).is_err());
        let claims =
            B64.encode(json!({"exp": now() - 1, "kid": &key[..16], "session": {}}).to_string());
        let expired = format!("{PREFIX}{claims}.{}", B64.encode(mac(&key, &claims)));
        assert_eq!(
            verify(&expired, [&key]).unwrap_err().code,
            "client_secret_expired"
        );
        let big = json!({"prompt": "x".repeat(5000)});
        assert_eq!(mint(&key, 60, &big).unwrap_err().code, "session_too_large");
    }
}
