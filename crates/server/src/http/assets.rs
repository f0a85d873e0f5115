//! The files the server serves itself: the web app at `/` (`assets/web`,
//! plus the typed client it shares with integrators, `clients/typescript`)
//! and Swagger UI at `/docs`. All are compiled into the binary, so the page
//! works offline and a release cannot drift from its own API.
//!
//! Every file gets a strong ETag (its sha256) and `Cache-Control: no-cache`:
//! the URLs carry no content hash, so a browser revalidates each load (a
//! 304) and sees an upgrade at once. Text files are kept gzipped too and sent
//! so to clients that accept it. The app's files carry a strict
//! Content-Security-Policy (no inline code, no other origin); Swagger's page
//! has an inline script and keeps the default policy.

use std::io::Write;
use std::sync::OnceLock;

use axum::extract::{Path, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::{ErrorKind, ServiceError};

/// Which policy a file is served under.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    /// The web app: the strict policy.
    App,
    /// Swagger UI.
    Docs,
}

/// `(URL path, bytes, content type, family)` of every served file.
macro_rules! files {
    ($(($url:literal, $file:literal, $mime:expr, $family:ident)),* $(,)?) => {
        &[$(($url, include_bytes!($file) as &[u8], $mime, Family::$family)),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static FILES: &[(&str, &[u8], &str, Family)] = files![
    (
        "index.html",
        "../../assets/web/index.html",
        "text/html; charset=utf-8",
        App
    ),
    (
        "ui/app.css",
        "../../assets/web/ui/app.css",
        "text/css; charset=utf-8",
        App
    ),
    ("ui/app.js", "../../assets/web/ui/app.js", JS, App),
    ("ui/files.js", "../../assets/web/ui/files.js", JS, App),
    ("ui/live.js", "../../assets/web/ui/live.js", JS, App),
    ("ui/models.js", "../../assets/web/ui/models.js", JS, App),
    ("ui/jobs.js", "../../assets/web/ui/jobs.js", JS, App),
    (
        "ui/transcript.js",
        "../../assets/web/ui/transcript.js",
        JS,
        App
    ),
    ("ui/dom.js", "../../assets/web/ui/dom.js", JS, App),
    (
        "ui/capture-worklet.js",
        "../../assets/web/ui/capture-worklet.js",
        JS,
        App
    ),
    (
        "ui/icon.svg",
        "../../assets/web/ui/icon.svg",
        "image/svg+xml",
        App
    ),
    (
        "ui/glagol.js",
        "../../../../clients/typescript/src/glagol.js",
        JS,
        App
    ),
    (
        "ui/vendor/openapi-fetch.js",
        "../../../../clients/typescript/src/vendor/openapi-fetch.js",
        JS,
        App
    ),
    (
        "docs/swagger-ui-bundle.js",
        "../../assets/swagger-ui/swagger-ui-bundle.js",
        JS,
        Docs
    ),
    (
        "docs/swagger-ui.css",
        "../../assets/swagger-ui/swagger-ui.css",
        "text/css; charset=utf-8",
        Docs
    ),
    (
        "docs",
        "../../assets/swagger-ui/index.html",
        "text/html; charset=utf-8",
        Docs
    ),
];

/// A served file with what is computed once: its ETag and gzipped body.
struct Asset {
    url: &'static str,
    body: &'static [u8],
    mime: &'static str,
    family: Family,
    etag: HeaderValue,
    gzip: Option<Vec<u8>>,
}

fn assets() -> &'static [Asset] {
    static ASSETS: OnceLock<Vec<Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        FILES
            .iter()
            .map(|&(url, body, mime, family)| {
                let digest = hex::encode(Sha256::digest(body));
                let etag = HeaderValue::from_str(&format!("\"{}\"", &digest[..32]))
                    .expect("hex is a valid header value");
                let text = !mime.starts_with("image/") || mime.starts_with("image/svg");
                Asset {
                    url,
                    body,
                    mime,
                    family,
                    etag,
                    gzip: text.then(|| gzip(body)),
                }
            })
            .collect()
    })
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(body).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// The app's policy. `connect-src` names this host's `ws:`/`wss:` beside
/// `'self'`: WebKit long failed to match WebSockets against `'self'`.
fn app_policy(host: Option<&str>) -> String {
    let sockets = host
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
        })
        .map(|h| format!(" ws://{h} wss://{h}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src 'self' blob:; connect-src 'self'{sockets}; worker-src 'self'; \
         manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

fn serve(url: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = assets().iter().find(|a| a.url == url) else {
        return ServiceError::new(ErrorKind::NotFound, "not_found", "no such file").into_response();
    };
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == asset.etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let accepts_gzip = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
        match (&asset.gzip, accepts_gzip) {
            // The copies live as long as the process: sent without copying.
            (Some(zipped), true) => (
                [(header::CONTENT_ENCODING, "gzip")],
                axum::body::Bytes::from_static(zipped.as_slice()),
            )
                .into_response(),
            _ => asset.body.into_response(),
        }
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    h.insert(header::ETAG, asset.etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if asset.family == Family::App {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        if let Ok(policy) = HeaderValue::from_str(&app_policy(host)) {
            h.insert(header::CONTENT_SECURITY_POLICY, policy);
        }
        h.insert(
            "permissions-policy",
            HeaderValue::from_static("microphone=(self), camera=(), geolocation=()"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// `GET /`: the web app.
pub async fn app(request: Request) -> Response {
    serve("index.html", request.headers())
}

/// `GET /ui/{*file}`: the app's scripts, styles and the client.
pub async fn app_file(Path(file): Path<String>, request: Request) -> Response {
    serve(&format!("ui/{file}"), request.headers())
}

/// `GET /docs`: Swagger UI over `/openapi.json`.
#[utoipa::path(get, path = "/docs", tag = "meta",
    responses((status = 200, description = "Swagger UI, an HTML page", content_type = "text/html")))]
pub async fn docs(request: Request) -> Response {
    serve("docs", request.headers())
}

/// `GET /docs/{file}`: Swagger UI's script and stylesheet (swagger-ui-dist, Apache-2.0).
pub async fn docs_file(Path(file): Path<String>, request: Request) -> Response {
    serve(&format!("docs/{file}"), request.headers())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/web")
    }

    #[test]
    fn every_file_of_the_app_is_served() {
        let mut missing = Vec::new();
        let mut stack = vec![web_dir()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let url = path
                    .strip_prefix(web_dir())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if !FILES.iter().any(|f| f.0 == url) {
                    missing.push(url);
                }
            }
        }
        assert!(
            missing.is_empty(),
            "files under assets/web that are not served: {missing:?}"
        );
    }

    #[test]
    fn the_app_names_no_other_origin() {
        for asset in assets().iter().filter(|a| a.family == Family::App) {
            let text = String::from_utf8_lossy(asset.body);
            for (n, line) in text.lines().enumerate() {
                let licence = line.contains("License") || line.contains("license");
                let svg_namespace = line.contains("http://www.w3.org/2000/svg");
                assert!(
                    licence
                        || svg_namespace
                        || !(line.contains("http://") || line.contains("https://")),
                    "{}:{} names another origin: {line}",
                    asset.url,
                    n + 1
                );
            }
        }
    }

    #[test]
    fn a_known_etag_is_not_sent_again_and_text_is_gzipped() {
        let asset = &assets()[0];
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, asset.etag.clone());
        assert_eq!(
            serve(asset.url, &headers).status(),
            StatusCode::NOT_MODIFIED
        );
        headers.clear();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, br"),
        );
        headers.insert(header::HOST, HeaderValue::from_static("box.lan:8765"));
        let response = serve(asset.url, &headers);
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        let policy = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(
            policy.contains("ws://box.lan:8765 wss://box.lan:8765"),
            "{policy}"
        );
        assert_eq!(
            serve("ui/nothing.js", &headers).status(),
            StatusCode::NOT_FOUND
        );
    }

    /// The whole app, the client included, as a browser downloads it.
    #[test]
    fn the_app_weighs_under_200_kb_gzipped() {
        let total: usize = assets()
            .iter()
            .filter(|a| a.family == Family::App)
            .map(|a| a.gzip.as_ref().map_or(a.body.len(), Vec::len))
            .sum();
        assert!(total < 200 * 1024, "the app is {total} bytes gzipped");
    }
}
