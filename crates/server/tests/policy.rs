//! Policy middleware in process: keys, rate limits, origins, host names.

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use common::rig;
use glagol_core::engine::testing::FakeEngine;
use glagol_server::config::hash_key;

fn from(ip: [u8; 4], path: &str) -> axum::http::request::Builder {
    Request::get(path)
        .header("host", "127.0.0.1:8765")
        .extension(ConnectInfo(SocketAddr::from((ip, 40000))))
}

#[tokio::test]
async fn keys_are_checked_case_insensitively_and_401_names_the_scheme() {
    let r = rig(FakeEngine::new("fake"), |s| {
        s.api_keys = vec!["s3cret".into()];
        s.api_key_hashes = vec![hash_key("other")];
    });
    let ok = |auth: &str| {
        from([10, 0, 0, 1], "/v1/models")
            .header("authorization", auth)
            .body(Body::empty())
            .unwrap()
    };
    for auth in [
        "Bearer s3cret",
        "bearer s3cret",
        "BEARER   s3cret",
        "Bearer other",
    ] {
        assert_eq!(r.call(ok(auth)).await.status, 200, "{auth}");
    }
    let key = from([10, 0, 0, 1], "/v1/models")
        .header("x-api-key", "s3cret")
        .body(Body::empty())
        .unwrap();
    assert_eq!(r.call(key).await.status, 200);
    let reply = r
        .call(
            from([10, 0, 0, 1], "/v1/models")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (401, "missing_api_key")
    );
    assert!(reply.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let reply = r.call(ok("Bearer wrong")).await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (401, "invalid_api_key")
    );
    // Health and docs stay public.
    assert_eq!(
        r.call(from([10, 0, 0, 1], "/health").body(Body::empty()).unwrap())
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn guessing_keys_is_throttled_per_address() {
    let r = rig(FakeEngine::new("fake"), |s| {
        s.api_keys = vec!["s3cret".into()]
    });
    let guess = |i: usize, ip: [u8; 4]| {
        from(ip, "/v1/models")
            .header("x-api-key", format!("guess-{i}"))
            .body(Body::empty())
            .unwrap()
    };
    let mut codes = Vec::new();
    for i in 0..30 {
        codes.push(r.call(guess(i, [10, 0, 0, 2])).await.status.as_u16());
    }
    assert_eq!(codes.iter().filter(|&&c| c == 401).count(), 20);
    assert_eq!(codes.iter().filter(|&&c| c == 429).count(), 10);
    // Another address is not affected, nor is the right key.
    assert_eq!(r.call(guess(0, [10, 0, 0, 3])).await.status, 401);
    let right = from([10, 0, 0, 2], "/v1/models")
        .header("x-api-key", "s3cret")
        .body(Body::empty())
        .unwrap();
    assert_eq!(r.call(right).await.status, 200);
}

#[tokio::test]
async fn made_up_keys_do_not_get_their_own_rate_limit_bucket() {
    let r = rig(FakeEngine::new("fake"), |s| s.rate_limit_per_minute = 3);
    let with_key = |k: &str, ip: [u8; 4]| {
        from(ip, "/v1/models")
            .header("x-api-key", k)
            .body(Body::empty())
            .unwrap()
    };
    for i in 0..3 {
        assert_eq!(
            r.call(with_key(&format!("k{i}"), [10, 0, 0, 4]))
                .await
                .status,
            200
        );
    }
    let reply = r.call(with_key("k9", [10, 0, 0, 4])).await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (429, "rate_limited")
    );
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(r.call(with_key("k9", [10, 0, 0, 5])).await.status, 200);

    // With keys configured, each valid key has its own bucket.
    let r = rig(FakeEngine::new("fake"), |s| {
        s.rate_limit_per_minute = 2;
        s.api_keys = vec!["a".into(), "b".into()];
    });
    for _ in 0..2 {
        assert_eq!(r.call(with_key("a", [10, 0, 0, 6])).await.status, 200);
    }
    assert_eq!(r.call(with_key("a", [10, 0, 0, 6])).await.status, 429);
    assert_eq!(r.call(with_key("b", [10, 0, 0, 6])).await.status, 200);
}

#[tokio::test]
async fn same_origin_pages_loopback_pages_and_listed_origins_are_allowed() {
    let r = rig(FakeEngine::new("fake"), |s| {
        s.allowed_origins = vec!["https://app.example".into()];
        s.listen = "0.0.0.0:8765".parse().unwrap();
        s.insecure_no_auth = true;
    });
    let page = |origin: &str, host: &str| {
        Request::get("/health")
            .header("origin", origin)
            .header("host", host)
            .body(Body::empty())
            .unwrap()
    };
    for (origin, host) in [
        ("http://192.168.1.20:8765", "192.168.1.20:8765"),
        ("http://localhost:3000", "192.168.1.20:8765"),
        ("https://app.example", "192.168.1.20:8765"),
    ] {
        let reply = r.call(page(origin, host)).await;
        assert_eq!(reply.status, 200, "{origin}");
        assert_eq!(reply.headers["access-control-allow-origin"], origin);
    }
    let reply = r
        .call(page("https://evil.example", "192.168.1.20:8765"))
        .await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (403, "origin_not_allowed")
    );
    let reply = r
        .call(page("http://192.168.1.20:9999", "192.168.1.20:8765"))
        .await;
    assert_eq!(reply.status, 403);
}

#[tokio::test]
async fn a_loopback_server_without_keys_refuses_foreign_host_names() {
    let r = rig(FakeEngine::new("fake"), |_| {});
    let with_host = |host: &str| {
        Request::get("/v1/models")
            .header("host", host)
            .body(Body::empty())
            .unwrap()
    };
    for host in [
        "127.0.0.1:8765",
        "localhost:8765",
        "[::1]:8765",
        "LOCALHOST",
    ] {
        assert_eq!(r.call(with_host(host)).await.status, 200, "{host}");
    }
    let reply = r.call(with_host("rebind.evil.example:8765")).await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (403, "host_not_allowed")
    );
    // With keys, names are the operator's business.
    let r = rig(FakeEngine::new("fake"), |s| s.api_keys = vec!["k".into()]);
    let req = Request::get("/v1/models")
        .header("host", "speech.example")
        .header("x-api-key", "k")
        .body(Body::empty())
        .unwrap();
    assert_eq!(r.call(req).await.status, 200);
}
