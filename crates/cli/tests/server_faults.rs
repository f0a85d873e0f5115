//! Faults outside the client, as a client of the real server sees them:
//! the job store (PostgreSQL) going away and coming back, and the job
//! disk filling up. Each is a typed answer (503 `job_store_unavailable`
//! with `Retry-After`, 507 `insufficient_storage`), `/health` says
//! `degraded` with the reason, interactive transcription goes on, and jobs
//! go on once the fault is gone.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::jobs::{accepted, long_audio, submit, text, wait_status, Store};
use common::server::{jfk, multipart, post_form, Server};
use serde_json::Value;

fn transcribes(s: &Server) {
    let (code, _, text) = post_form(
        &s.url("/v1/audio/transcriptions"),
        &[],
        &[("model", "whisper-base"), ("language", "en")],
        Some(("jfk.wav", &jfk())),
    );
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("ask not what your country"), "{text}");
}

fn health_until(s: &Server, status: &str, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let (code, health) = s.get("/health");
        assert_eq!(code, 200, "{health}");
        if health["status"] == status {
            return health;
        }
        assert!(start.elapsed() < limit, "health stays {health}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_job_store_outage_is_503_and_degraded_health_and_jobs_go_on_after_it() {
    let store = Store::postgres();
    let Store::Postgres(pg) = &store else {
        unreachable!()
    };
    let s = store.start(&["--preload", "whisper-base"]);
    s.wait_ready("whisper-base");
    assert_eq!(
        health_until(&s, "ok", Duration::ZERO)["jobs"]["store"],
        "ok"
    );
    // A job running through the outage.
    let through = accepted(&s, &[("model", "whisper-base")], &long_audio(20.0));
    wait_status(&s, &through, &["running"], Duration::from_secs(60));

    pg.halt();
    let health = health_until(&s, "degraded", Duration::from_secs(10));
    assert_eq!(health["jobs"]["store"], "unavailable", "{health}");
    assert!(
        health["reason"].as_str().unwrap().contains("unavailable"),
        "{health}"
    );
    let (status, headers, body) = submit(
        &s,
        &[],
        &[("model", "whisper-base")],
        Some(("jfk.wav", &jfk())),
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "job_store_unavailable", "{body}");
    assert_eq!(headers.get("retry-after").map(String::as_str), Some("5"));
    let (code, body) = s.get("/v1/jobs");
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (503, Some("job_store_unavailable")),
        "{body}"
    );
    // Interactive transcription does not need the store.
    transcribes(&s);

    pg.resume();
    health_until(&s, "ok", Duration::from_secs(30));
    let id = accepted(&s, &[("model", "whisper-base")], &jfk());
    let job = wait_status(&s, &id, &["done"], Duration::from_secs(120));
    assert_eq!(job["status"], "done", "{job}");
    let job = wait_status(&s, &through, &["done"], Duration::from_secs(120));
    assert_eq!(job["status"], "done", "{job}");
    let (_, txt) = text(&s, &format!("/v1/jobs/{through}/result?format=txt"));
    assert!(txt.trim().chars().count() > 50, "{txt}");
}

/// A small tmpfs of its own, so the test can fill a disk; unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs (the suite runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk until `left` bytes are free.
    fn fill(&self, left: u64) -> PathBuf {
        let free = fs_free(self.path());
        let filler = self.path().join("filler");
        std::fs::write(&filler, vec![0u8; (free - left) as usize]).unwrap();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn fs_free(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_full_job_disk_is_507_before_and_during_an_upload_and_jobs_go_on_after_it() {
    let disk = SmallDisk::mount(40 << 20);
    let jobs_dir = disk.path().join("jobs");
    let s = Server::start(&[
        "--jobs-dir",
        jobs_dir.to_str().unwrap(),
        "--preload",
        "whisper-base",
    ]);
    s.wait_ready("whisper-base");
    let health = s.get("/health").1;
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["reason"].as_str().unwrap().contains("disk"),
        "{health}"
    );
    let free = health["jobs"]["disk_free_bytes"].as_u64().unwrap();
    assert!((20 << 20..=40 << 20).contains(&free), "{health}");
    let id = accepted(&s, &[("model", "whisper-base")], &jfk());
    wait_status(&s, &id, &["done"], Duration::from_secs(120));

    // A declared size that does not fit: refused before it is read.
    let big = vec![7u8; 30 << 20];
    let (status, _, body) = submit(&s, &[], &[], Some(("big.wav", &big)));
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_storage", "{body}");

    // A body of unknown size that runs out of room while stored.
    let filler = disk.fill(1 << 20);
    let (ct, body) = multipart(&[], Some(("big.wav", &big[..4 << 20])));
    let mut r = Server::agent()
        .post(&s.url("/v1/jobs"))
        .header("content-type", &ct)
        .send(ureq::SendBody::from_reader(&mut std::io::Cursor::new(body)))
        .unwrap();
    let answer: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(r.status().as_u16(), 507, "{answer}");
    assert_eq!(answer["error"]["code"], "insufficient_storage", "{answer}");
    // Nothing of it is left behind.
    assert!(fs_free(disk.path()) > 900 << 10);
    transcribes(&s);

    std::fs::remove_file(filler).unwrap();
    let id = accepted(&s, &[("model", "whisper-base")], &jfk());
    let job = wait_status(&s, &id, &["done"], Duration::from_secs(120));
    assert_eq!(job["status"], "done", "{job}");
}
