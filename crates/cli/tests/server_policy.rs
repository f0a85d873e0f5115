//! `glagol serve` policy end to end: keys, listen addresses, origins, request ids, rate limits.

mod common;

use common::server::Server;
use common::Glagol;

#[test]
fn api_keys_are_required_when_configured() {
    let s = Server::start(&["--api-key", "s3cret", "--api-key", "other"]);
    let (status, v) = s.get("/v1/models");
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("missing_api_key"))
    );
    let mut r = Server::agent()
        .get(&s.url("/v1/models"))
        .header("authorization", "Bearer wrong")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r
        .body_mut()
        .read_to_string()
        .unwrap()
        .contains("invalid_api_key"));
    let r = Server::agent()
        .get(&s.url("/v1/models"))
        .header("authorization", "Bearer s3cret")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = Server::agent()
        .get(&s.url("/v1/models"))
        .header("x-api-key", "other")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Health stays open for probes.
    assert_eq!(s.get("/health").0, 200);
}

#[test]
fn non_loopback_without_keys_refuses_to_start() {
    let g = Glagol::new();
    let out = g.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("--insecure-no-auth"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn origins_request_ids_and_rate_limits() {
    let s = Server::start(&["--rate-limit", "3", "--allow-origin", "https://app.example"]);
    let agent = Server::agent();
    let r = agent
        .get(&s.url("/health"))
        .header("origin", "https://evil.example")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    for origin in [
        "http://localhost:3000",
        "http://127.0.0.1:8080",
        "https://app.example",
    ] {
        let r = agent
            .get(&s.url("/health"))
            .header("origin", origin)
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{origin}");
        assert_eq!(
            r.headers().get("access-control-allow-origin").unwrap(),
            origin
        );
    }
    let r = agent
        .options(&s.url("/v1/audio/transcriptions"))
        .header("origin", "https://app.example")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert!(r.headers().get("access-control-allow-methods").is_some());
    // The browser `openai` client's own headers pass the preflight, and a
    // page may read a 503's back-off.
    let r = agent
        .options(&s.url("/v1/audio/transcriptions"))
        .header("origin", "https://app.example")
        .header(
            "access-control-request-headers",
            "authorization, x-stainless-os",
        )
        .call()
        .unwrap();
    assert_eq!(
        r.headers().get("access-control-allow-headers").unwrap(),
        "authorization, x-stainless-os"
    );
    let exposed = r.headers().get("access-control-expose-headers").unwrap();
    assert!(
        exposed.to_str().unwrap().contains("retry-after"),
        "{exposed:?}"
    );

    let r = agent
        .get(&s.url("/health"))
        .header("x-request-id", "abc-123")
        .call()
        .unwrap();
    assert_eq!(r.headers().get("x-request-id").unwrap(), "abc-123");
    let r = agent.get(&s.url("/health")).call().unwrap();
    assert!(r.headers().get("x-request-id").is_some());

    for _ in 0..3 {
        assert_eq!(s.get("/v1/models").0, 200);
    }
    let r = agent.get(&s.url("/v1/models")).call().unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some());
    // Without keys configured, a made-up key is no way around the limit:
    // the client address is the bucket.
    let r = agent
        .get(&s.url("/v1/models"))
        .header("x-api-key", "someone-else")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
}

#[test]
fn an_upload_refused_by_policy_still_gets_its_answer() {
    // The key, origin and rate checks answer before the body is read; the
    // client is still sending its upload then. Closing with it unread would
    // make the kernel reset the connection: the client would see a broken
    // pipe, not the error.
    let s = Server::start(&[
        "--api-key",
        "s3cret",
        "--rate-limit",
        "4",
        "--allow-origin",
        "https://app.example",
    ]);
    let file = vec![0u8; 24 << 20];
    let upload = |headers: &[(&str, &str)]| {
        let (status, _, body) = common::server::post_form(
            &s.url("/v1/audio/transcriptions"),
            headers,
            &[("model", "whisper-base")],
            Some(("a.wav", &file)),
        );
        let code = serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]["code"]
            .as_str()
            .map(String::from);
        (status, code)
    };
    let wrong_key = [("authorization", "Bearer wrong")];
    for _ in 0..2 {
        assert_eq!(upload(&[]), (401, Some("missing_api_key".into())));
        assert_eq!(upload(&wrong_key), (401, Some("invalid_api_key".into())));
    }
    let key = [
        ("authorization", "Bearer s3cret"),
        ("origin", "https://evil.example"),
    ];
    assert_eq!(upload(&key), (403, Some("origin_not_allowed".into())));
    let key = [("authorization", "Bearer s3cret")];
    for _ in 0..4 {
        let _ = Server::agent()
            .get(&s.url("/v1/models"))
            .header("authorization", "Bearer s3cret")
            .call();
    }
    assert_eq!(upload(&key), (429, Some("rate_limited".into())));
}
