//! The browser origin policy. A request from a browser page carries an
//! `Origin`; it is allowed when the page is served by this server itself
//! (same origin: the origin's host and port are the request's `Host`), when
//! it is a loopback page, or when the origin is configured. Others get 403
//! `origin_not_allowed`; allowed ones get the CORS headers, preflights
//! included.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ErrorKind, ServiceError};
use crate::state::AppState;

/// `host[:port]` of an origin such as `https://host:port`, lowercased.
fn authority(origin: &str) -> String {
    let rest = origin.split_once("://").map_or(origin, |(_, r)| r);
    rest.split('/').next().unwrap_or("").to_ascii_lowercase()
}

/// The host of an authority, without brackets or port.
pub fn host_of(authority: &str) -> &str {
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    }
}

/// Whether a host name or address is this machine's loopback.
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a browser origin may call the API.
pub fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let origin_authority = authority(origin);
    let default_port = |scheme_https: bool| if scheme_https { ":443" } else { ":80" };
    if let Some(host) = host.map(str::to_ascii_lowercase) {
        let https = origin.to_ascii_lowercase().starts_with("https://");
        let with_port = |a: &str| {
            if a.starts_with('[') && !a.contains("]:") || !a.starts_with('[') && !a.contains(':') {
                format!("{a}{}", default_port(https))
            } else {
                a.to_string()
            }
        };
        if with_port(&origin_authority) == with_port(&host) {
            return true;
        }
    }
    is_loopback_host(host_of(&origin_authority))
}

pub async fn cors(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
    else {
        return next.run(req).await;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let config = state.config();
    if !origin_allowed(&origin, host.as_deref(), &config.settings.allowed_origins) {
        return ServiceError::new(
            ErrorKind::Forbidden,
            "origin_not_allowed",
            format!(
                "origin {} is not allowed; add it to allowed_origins",
                glagol_core::engine::quoted(&origin)
            ),
        )
        .into_response();
    }
    let preflight = req.method() == Method::OPTIONS;
    // A preflight may ask for any header: access is decided by the origin
    // and the key, not by header names (the official `openai` client for
    // browsers adds its own `x-stainless-*` ones).
    let asked_headers = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|v| {
            v.as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_, ".contains(b))
        })
        .cloned();
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.append(header::VARY, HeaderValue::from_static("origin"));
    // What a page on another origin may read beyond the basics: the
    // back-off of a 503, where a job is, and the id to quote in a report.
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after, location, x-request-id, idempotent-replayed"),
    );
    if preflight {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            asked_headers.unwrap_or(HeaderValue::from_static(
                "authorization, x-api-key, content-type, x-request-id, idempotency-key, last-event-id",
            )),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_same_origin_pages_are_allowed() {
        for o in [
            "http://localhost:3000",
            "http://127.0.0.1",
            "https://127.0.0.5:8443",
            "http://[::1]:8080",
        ] {
            assert!(origin_allowed(o, None, &[]), "{o}");
        }
        assert!(!origin_allowed("https://evil.example", None, &[]));
        assert!(origin_allowed(
            "https://app.example",
            None,
            &["https://app.example".into()]
        ));
        assert!(!origin_allowed("http://localhost.evil.example", None, &[]));
        // A page the server itself serves on a LAN address.
        assert!(origin_allowed(
            "http://192.168.1.5:8765",
            Some("192.168.1.5:8765"),
            &[]
        ));
        assert!(origin_allowed("http://box.lan", Some("box.lan:80"), &[]));
        assert!(!origin_allowed(
            "http://192.168.1.5:9999",
            Some("192.168.1.5:8765"),
            &[]
        ));
        assert!(!origin_allowed(
            "https://evil.example",
            Some("192.168.1.5:8765"),
            &[]
        ));
    }
}
