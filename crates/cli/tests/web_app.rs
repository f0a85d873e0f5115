//! The web app at `/` in a real browser: Debian's Chromium, driven headless
//! by Playwright from `clients/typescript/test/` against one key-protected
//! server (upload, reload, seek, downloads, live microphone from a file,
//! models, keys, accessibility, screenshots); the typed client checked
//! against the served document; and a flood of page loads beside an API
//! user.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::Server;
use common::{assets, Glagol};

const KEY: &str = "web-test-key";

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/typescript")
}

/// Runs a command in the client's directory; fails the test with its output.
fn run_in_client(program: &str, args: &[&str], env: &[(&str, String)]) {
    let dir = client_dir();
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "the client's npm packages are missing: run `npm ci --prefix clients/typescript` (scripts/test does)"
    );
    let out = Command::new(program)
        .args(args)
        .current_dir(&dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("{program} did not start: {e}"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
}

/// The committed client is generated from the served document, and the
/// page's scripts type-check against it.
#[test]
fn the_typed_client_matches_the_server_and_the_page_type_checks() {
    run_in_client("node", &["gen.mjs", "--check"], &[]);
    run_in_client("node_modules/.bin/tsc", &["-p", "tsconfig.json"], &[]);
}

/// A Golos clip with silence around it, as the fake microphone plays it:
/// time to connect before, and the silence that ends the utterance after
/// (Chromium repeats its last buffer at the end of a file).
fn padded_clip(dir: &Path, name: &str) -> PathBuf {
    let clip = glagol_core::audio::decode_file(
        &assets().join("fixtures/ru-golos").join(name),
        &Default::default(),
    )
    .unwrap()
    .samples;
    let mut samples = vec![0.0; 16_000];
    samples.extend(clip);
    samples.extend(vec![0.0; 40_000]);
    let path = dir.join(format!("padded-{name}"));
    common::write_wav(&path, &samples, 16_000);
    path
}

#[test]
fn the_web_app_works_in_chromium() {
    let server = Server::start(&["--api-key", KEY, "--preload", "whisper-base"]);
    server.wait_ready_with_key("whisper-base", KEY);
    let work = tempfile::tempdir().unwrap();
    let live = padded_clip(work.path(), "golos_00.wav");
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    run_in_client(
        "node",
        &["--test", "--test-concurrency=1", "test/"],
        &[
            ("GLAGOL_URL", format!("{}/", server.base)),
            ("GLAGOL_KEY", KEY.into()),
            ("GLAGOL_JFK", common::misc("jfk.wav").display().to_string()),
            ("GLAGOL_LIVE_WAV", live.display().to_string()),
            (
                "GLAGOL_LIVE_TEXT",
                "шестьдесят тысяч тенге сколько будет стоить".into(),
            ),
            ("ARTIFACTS_DIR", artifacts.display().to_string()),
            ("CHROMIUM", chromium),
        ],
    );
    println!("screenshots in {}", artifacts.display());
}

/// Page loads flooding the server do not slow an API user beside them.
#[test]
fn a_flood_of_page_loads_leaves_the_api_responsive() {
    let server = Server::start_with(Glagol::new(), &[]);
    let base = server.base.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..6)
        .map(|_| {
            let (base, stop) = (base.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent = Server::agent();
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for path in [
                        "/",
                        "/ui/app.js",
                        "/ui/glagol.js",
                        "/docs/swagger-ui-bundle.js",
                    ] {
                        let response = agent
                            .get(&format!("{base}{path}"))
                            .header("accept-encoding", "gzip")
                            .call()
                            .unwrap();
                        assert_eq!(response.status(), 200);
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let (status, _) = server.get("/v1/models");
        assert_eq!(status, 200);
        slowest = slowest.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let loads: u32 = flooders.into_iter().map(|t| t.join().unwrap()).sum();
    println!("{loads} page files served beside the API; slowest API answer {slowest:?}");
    // A loose guard against the flood starving the API, not a speed target.
    assert!(slowest < Duration::from_secs(2), "slowest {slowest:?}");
}
