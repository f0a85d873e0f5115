//! The container image, built from the repository's `Containerfile` and run
//! with Podman as a user would: a base made here with debootstrap (no
//! registry is reachable; nothing in it but Debian's minimal base, so no
//! CA certificates), the binary the suite built (`PREBUILT`),
//! models pre-seeded into the volume with `glagol models import`, health
//! from the image's own `HEALTHCHECK`, HTTP from the host through a
//! published port, a job, SIGTERM, and the jobs kept across a restart;
//! then `deploy/compose.yaml`'s single node through podman-compose.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::jobs::long_audio;
use common::server::{jfk, post_form, Server};
use serde_json::Value;

const KEY: &str = "container-test-key";
/// Kept between runs: made once per machine (about 30 s).
const BASE: &str = "localhost/glagol-test-base:latest";

/// `podman` with this machine's settings: runc, and no rlimits (crun can
/// neither set them nor use the hybrid cgroups here).
fn podman(args: &[&str]) -> Output {
    let conf = std::env::temp_dir().join("glagol-test-containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\n",
    )
    .unwrap();
    Command::new("podman")
        .env("CONTAINERS_CONF", &conf)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("podman: {e} (scripts/test installs it)"))
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The first Debian mirror apt uses here (CI reaches Debian's registry).
fn mirror() -> String {
    if let Ok(m) = std::env::var("GLAGOL_TEST_DEBIAN_MIRROR") {
        return m;
    }
    std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("URIs:"))
        .and_then(|uris| uris.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

/// A minimal Debian of this machine's release, imported as an image.
fn base_image() {
    if podman(&["image", "exists", BASE]).status.success() {
        return;
    }
    let os = std::fs::read_to_string("/etc/os-release").unwrap();
    let release = os
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .expect("VERSION_CODENAME in /etc/os-release");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    ok(
        Command::new("debootstrap")
            .args(["--variant=minbase", release])
            .arg(&root)
            .arg(mirror())
            .output()
            .unwrap(),
        "debootstrap",
    );
    // What a slim image leaves out: package caches, documentation, locales.
    for gone in [
        "var/cache/apt",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
        "usr/share/info",
    ] {
        let _ = std::fs::remove_dir_all(root.join(gone));
    }
    assert!(
        !root.join("etc/ssl/certs").exists(),
        "the base has CA certificates"
    );
    let tar = dir.path().join("root.tar");
    ok(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .unwrap(),
        "tar",
    );
    ok(
        podman(&["import", tar.to_str().unwrap(), BASE]),
        "podman import",
    );
}

/// The suite's binary, stripped as a release is, and the ONNX Runtime it uses.
fn dist(dir: &Path) {
    ok(
        Command::new("objcopy")
            .args(["--strip-debug", env!("CARGO_BIN_EXE_glagol")])
            .arg(dir.join("glagol"))
            .output()
            .unwrap(),
        "objcopy",
    );
    std::fs::copy(
        common::ort_lib(),
        dir.join(glagol_core::runtime::ORT_LIB_NAME),
    )
    .unwrap();
}

/// Names this run's image and containers, removed when it ends.
struct Run {
    tag: String,
    data: tempfile::TempDir,
    containers: std::cell::RefCell<Vec<String>>,
    dangling_before: Vec<String>,
}

fn dangling() -> Vec<String> {
    let out = podman(&["images", "-q", "--filter", "dangling=true"]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

impl Drop for Run {
    fn drop(&mut self) {
        for c in self.containers.borrow().iter() {
            let _ = podman(&["rm", "-f", "-t", "0", c]);
        }
        let _ = podman(&["rmi", "-f", &self.tag]);
        // The build's intermediate stage, left untagged.
        for id in dangling() {
            if !self.dangling_before.contains(&id) {
                let _ = podman(&["rmi", &id]);
            }
        }
        // The files the container's user wrote.
        let _ = Command::new("chmod")
            .args(["-R", "u+rwX"])
            .arg(self.data.path())
            .output();
    }
}

impl Run {
    fn volume(&self) -> String {
        format!("{}:/data", self.data.path().display())
    }

    /// `podman run -d` of the image with `args`; (name, base URL).
    fn start(&self, args: &[&str]) -> (String, String) {
        let port = free_port();
        let name = format!("glagol-test-{}-{}", std::process::id(), port);
        self.containers.borrow_mut().push(name.clone());
        let publish = format!("127.0.0.1:{port}:8765");
        let key = format!("GLAGOL_API_KEYS={KEY}");
        let volume = self.volume();
        let mut run = vec![
            "run", "-d", "--name", &name, "-p", &publish, "-v", &volume, "-e", &key, &self.tag,
        ];
        run.extend(args);
        ok(podman(&run), "podman run");
        (name, format!("http://127.0.0.1:{port}"))
    }
}

/// Runs the image's HEALTHCHECK until it passes.
fn wait_healthy(name: &str) {
    let start = Instant::now();
    while !podman(&["healthcheck", "run", name]).status.success() {
        let logs = podman(&["logs", name]);
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "never healthy: {}",
            String::from_utf8_lossy(&logs.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = ok(
        podman(&["inspect", "--format", "{{.State.Health.Status}}", name]),
        "inspect",
    );
    assert_eq!(status.trim(), "healthy");
}

/// jfk.wav through the OpenAI route, from the host.
fn transcribes_jfk(base: &str) {
    let (status, _, text) = post_form(
        &format!("{base}/v1/audio/transcriptions"),
        &[("authorization", &format!("Bearer {KEY}"))],
        &[("model", "whisper-base"), ("language", "en")],
        Some(("jfk.wav", &jfk())),
    );
    assert_eq!(status, 200, "{text}");
    assert!(text.to_lowercase().contains("ask not"), "{text}");
}

/// Waits until the preloaded model is ready (ready to serve does not wait for it).
fn wait_model(base: &str) {
    let start = Instant::now();
    loop {
        let (_, model) = get(base, "/v1/models/whisper-base");
        if model["state"] == "ready" {
            return;
        }
        assert!(model["state"] != "failed", "{model}");
        assert!(start.elapsed() < Duration::from_secs(120), "{model}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn get(base: &str, path: &str) -> (u16, Value) {
    let mut r = Server::agent()
        .get(&format!("{base}{path}"))
        .header("authorization", format!("Bearer {KEY}"))
        .call()
        .unwrap();
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn submit_job(base: &str, audio: &[u8], language: &str) -> String {
    let (status, _, body) = post_form(
        &format!("{base}/v1/jobs"),
        &[("authorization", &format!("Bearer {KEY}"))],
        &[("model", "whisper-base"), ("language", language)],
        Some(("a.wav", audio)),
    );
    assert_eq!(status, 202, "{body}");
    let job: Value = serde_json::from_str(&body).unwrap();
    job["id"].as_str().unwrap().to_string()
}

fn wait_job(base: &str, id: &str, wanted: &str) -> Value {
    let start = Instant::now();
    loop {
        let (code, job) = get(base, &format!("/v1/jobs/{id}"));
        assert_eq!(code, 200, "{job}");
        if job["status"] == wanted {
            return job;
        }
        assert!(
            !["failed", "cancelled"].contains(&job["status"].as_str().unwrap_or("")),
            "{job}"
        );
        assert!(start.elapsed() < Duration::from_secs(240), "{job}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_image_serves_keeps_jobs_and_stops_cleanly() {
    base_image();
    let context = tempfile::tempdir().unwrap();
    std::fs::create_dir(context.path().join("dist")).unwrap();
    dist(&context.path().join("dist"));
    let run = Run {
        tag: format!("localhost/glagol-test:{}", std::process::id()),
        data: tempfile::tempdir().unwrap(),
        containers: Default::default(),
        dangling_before: dangling(),
    };
    // The volume belongs to the image's unprivileged user, as a named volume would.
    std::os::unix::fs::chown(run.data.path(), Some(10001), Some(10001)).unwrap();
    let containerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Containerfile");
    ok(
        podman(&[
            "build",
            "--format",
            "docker",
            "-f",
            containerfile.to_str().unwrap(),
            "--build-arg",
            &format!("BASE_IMAGE={BASE}"),
            "--build-arg",
            &format!("RUST_IMAGE={BASE}"),
            "--build-arg",
            "PREBUILT=dist",
            "-t",
            &run.tag,
            context.path().to_str().unwrap(),
        ]),
        "podman build",
    );
    let inspect = |format: &str| {
        ok(
            podman(&["image", "inspect", "--format", format, &run.tag]),
            "inspect",
        )
        .trim()
        .to_string()
    };
    eprintln!(
        "image size: {} MB",
        inspect("{{.Size}}").parse::<u64>().unwrap() >> 20
    );
    assert_eq!(inspect("{{.Config.User}}"), "10001:10001");
    assert_eq!(inspect("{{.Config.StopSignal}}"), "SIGTERM");
    assert_eq!(
        inspect("{{index .Labels \"org.opencontainers.image.licenses\"}}"),
        "MIT"
    );

    // Models are pre-seeded into the volume, as docs/deploy.md says.
    let models: PathBuf = common::assets().join("models");
    let import = format!("{}:/import:ro", models.display());
    ok(
        podman(&[
            "run",
            "--rm",
            "-v",
            &run.volume(),
            "-v",
            &import,
            &run.tag,
            "models",
            "import",
            "/import/ggml-base.bin",
            "--as",
            "whisper-base",
            "--force",
        ]),
        "models import",
    );

    let (first, base) = run.start(&["serve", "--preload", "whisper-base"]);
    wait_healthy(&first);
    wait_model(&base);
    transcribes_jfk(&base);
    let (status, _) = get(&base, "/v1/models");
    assert_eq!(status, 200);
    let unauthorised = Server::agent()
        .get(&format!("{base}/v1/models"))
        .call()
        .unwrap();
    assert_eq!(unauthorised.status().as_u16(), 401);

    let done = submit_job(&base, &jfk(), "en");
    wait_job(&base, &done, "done");
    // A long job is running when the stop comes: it is handed back.
    let running = submit_job(&base, &long_audio(40.0), "ru");
    wait_job(&base, &running, "running");
    let stop = Instant::now();
    ok(podman(&["stop", "-t", "60", &first]), "podman stop");
    let stopped = stop.elapsed();
    let exit = ok(
        podman(&["inspect", "--format", "{{.State.ExitCode}}", &first]),
        "inspect",
    );
    assert_eq!(exit.trim(), "0", "SIGTERM ends the server cleanly");
    assert!(stopped < Duration::from_secs(30), "stopped in {stopped:?}");
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(run.data.path().join("jobs")).unwrap(),
    );
    assert_eq!(owner, 10001, "the server runs as the image's user");

    // A new container on the same volume has both jobs.
    let (second, base) = run.start(&[]);
    wait_healthy(&second);
    let (status, result) = get(&base, &format!("/v1/jobs/{done}/result?format=json"));
    assert_eq!(status, 200, "{result}");
    assert!(result["text"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains("ask not"));
    let job = wait_job(&base, &running, "done");
    assert_eq!(job["attempt"], 1, "handed back, not failed: {job}");
    ok(podman(&["stop", "-t", "60", &second]), "podman stop");

    compose_single_node(&run);
}

/// `deploy/compose.yaml`'s one node, through podman-compose: a named
/// volume the image's user can write, models pre-seeded with `run`, HTTP.
fn compose_single_node(run: &Run) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/compose.yaml");
    let project = format!("glagol-test-{}", std::process::id());
    let port = free_port().to_string();
    let wyoming = free_port().to_string();
    let compose = |args: &[&str]| {
        let conf = std::env::temp_dir().join("glagol-test-containers.conf");
        Command::new("podman-compose")
            .env("CONTAINERS_CONF", conf)
            .env("GLAGOL_IMAGE", &run.tag)
            .env("GLAGOL_API_KEY", KEY)
            .env("GLAGOL_PORT", &port)
            .env("GLAGOL_WYOMING_PORT", &wyoming)
            .arg("-p")
            .arg(&project)
            .arg("-f")
            .arg(&file)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("podman-compose: {e} (scripts/test installs it)"))
    };
    struct Down<'a>(&'a dyn Fn(&[&str]) -> Output);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "-v", "-t", "0"]);
        }
    }
    let _down = Down(&compose);
    let model = common::assets().join("models/ggml-base.bin");
    let import = format!("{}:/import/m.bin:ro", model.display());
    ok(
        compose(&[
            "run",
            "--rm",
            "-v",
            &import,
            "glagol",
            "models",
            "import",
            "/import/m.bin",
            "--as",
            "whisper-base",
            "--force",
        ]),
        "compose run: models import",
    );
    ok(compose(&["up", "-d", "glagol"]), "compose up");
    let name = format!("{project}_glagol_1");
    wait_healthy(&name);
    let base = format!("http://127.0.0.1:{port}");
    wait_model(&base);
    transcribes_jfk(&base);
    let wyoming = std::net::TcpStream::connect(format!("127.0.0.1:{wyoming}"));
    assert!(wyoming.is_ok(), "Wyoming is published: {wyoming:?}");
    ok(compose(&["stop", "glagol"]), "compose stop");
    let exit = ok(
        podman(&["inspect", "--format", "{{.State.ExitCode}}", &name]),
        "inspect",
    );
    assert_eq!(exit.trim(), "0");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The deployment files and their guide name only variables glagol reads,
/// so a renamed setting cannot leave them silently ignored.
#[test]
fn deployment_files_name_only_real_settings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let help: String = [&["serve", "--help"][..], &["--help"], &["health", "--help"]]
        .iter()
        .map(|args| {
            let out = Command::new(env!("CARGO_BIN_EXE_glagol"))
                .args(*args)
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    // Read outside clap (the data directory, the log filter), and compose's own inputs.
    let elsewhere = [
        "GLAGOL_DATA_DIR",
        "GLAGOL_LOG",
        "GLAGOL_IMAGE",
        "GLAGOL_API_KEY",
        "GLAGOL_PORT",
        "GLAGOL_WYOMING_PORT",
        "GLAGOL_DB_PASSWORD",
    ];
    for file in [
        "Containerfile",
        "deploy/compose.yaml",
        "deploy/glagol.service",
        "docs/deploy.md",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("GLAGOL_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            if name.ends_with('_') {
                continue; // `GLAGOL_*`, the family
            }
            let known =
                elsewhere.contains(&name.as_str()) || help.contains(&format!("[env: {name}="));
            assert!(known, "{file} names {name}, which glagol does not read");
        }
    }
}
