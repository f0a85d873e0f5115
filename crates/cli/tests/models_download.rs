//! The real download, import and runtime-install code against a local
//! HTTP server started by each test.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::http::Server;
use common::{stderr, Glagol};
use glagol_core::models::catalog::{CatalogEntry, CatalogFile, Checksum, EngineKind};
use glagol_core::models::download::{self, Progress};
use glagol_core::models::ModelStore;
use sha2::Digest;

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(seed as u32) as u8)
        .collect()
}

fn sha256_static(bytes: &[u8]) -> &'static str {
    Box::leak(hex::encode(sha2::Sha256::digest(bytes)).into_boxed_str())
}

fn entry(name: &'static str, files: Vec<CatalogFile>) -> &'static CatalogEntry {
    Box::leak(Box::new(CatalogEntry {
        name,
        engine: EngineKind::Whisper,
        description: "test",
        languages: &["*"],
        files: Box::leak(files.into_boxed_slice()),
    }))
}

fn file(name: &'static str, bytes: &[u8]) -> CatalogFile {
    CatalogFile {
        name,
        url: "unused",
        size: Some(bytes.len() as u64),
        checksum: Some(Checksum::Sha256(sha256_static(bytes))),
    }
}

#[test]
fn clean_download_is_verified_and_recorded() {
    let data = payload(3 << 20, 1);
    let server = Server::start(HashMap::from([("m.bin".to_string(), data.clone())]));
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let e = entry("test-clean", vec![file("m.bin", &data)]);
    let mut last = 0;
    let m = store
        .pull_from(e, Some(&server.base), &mut |_, p| {
            if let Progress::Advanced { done } = p {
                assert!(done >= last);
                last = done;
            }
        })
        .unwrap();
    assert_eq!(last, data.len() as u64);
    assert_eq!(
        std::fs::read(dir.path().join("test-clean/m.bin")).unwrap(),
        data
    );
    assert_eq!(m.size, data.len() as u64);
    assert!(!dir.path().join("test-clean/m.bin.part").exists());
    let reports = store.verify(&[]).unwrap();
    assert!(reports.iter().all(|r| r.ok), "{reports:?}");
}

#[test]
fn interrupted_download_resumes_with_a_range_request() {
    let data = payload(2 << 20, 2);
    let server = Server::start(HashMap::from([("m.bin".to_string(), data.clone())]));
    {
        let mut st = server.state.lock().unwrap();
        st.cut_after = Some(700_000);
        st.cuts_left = 2;
    }
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.bin");
    let url = format!("{}/m.bin", server.base);
    let req = download::Request::new(&url, &dest, Some(Checksum::Sha256(sha256_static(&data))));
    download::download(&req, &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let ranges = server.ranges();
    assert_eq!(ranges.len(), 3, "{ranges:?}");
    assert_eq!(ranges[0], None);
    assert_eq!(ranges[1].as_deref(), Some("bytes=700000-"));
    assert_eq!(ranges[2].as_deref(), Some("bytes=1400000-"));
}

#[test]
fn a_part_file_left_by_a_killed_process_is_continued() {
    let data = payload(1 << 20, 3);
    let server = Server::start(HashMap::from([("m.bin".to_string(), data.clone())]));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.bin");
    std::fs::write(dir.path().join("m.bin.part"), &data[..123_456]).unwrap();
    let url = format!("{}/m.bin", server.base);
    let req = download::Request::new(&url, &dest, Some(Checksum::Sha256(sha256_static(&data))));
    download::download(&req, &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(server.ranges(), vec![Some("bytes=123456-".to_string())]);
}

#[test]
fn corrupted_download_is_rejected_and_removed() {
    let good = payload(500_000, 4);
    let mut bad = good.clone();
    bad[250_000] ^= 0xff;
    let server = Server::start(HashMap::from([("m.bin".to_string(), bad)]));
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let e = entry("test-corrupt", vec![file("m.bin", &good)]);
    let err = store
        .pull_from(e, Some(&server.base), &mut |_, _| {})
        .unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    assert!(!dir.path().join("test-corrupt/m.bin").exists());
    assert!(!dir.path().join("test-corrupt/m.bin.part").exists());
    assert!(store.get("test-corrupt").is_none());
}

#[test]
fn concurrent_pulls_of_one_file_download_it_once() {
    let data = payload(2 << 20, 5);
    let server = Server::start(HashMap::from([("m.bin".to_string(), data.clone())]));
    server.state.lock().unwrap().chunk_delay = Duration::from_millis(5);
    let dir = tempfile::tempdir().unwrap();
    let e = entry("test-concurrent", vec![file("m.bin", &data)]);
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let root = dir.path().to_path_buf();
            let base = server.base.clone();
            std::thread::spawn(move || {
                ModelStore::new(root)
                    .pull_from(e, Some(&base), &mut |_, _| {})
                    .map(|m| m.size)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), data.len() as u64);
    }
    assert_eq!(
        std::fs::read(dir.path().join("test-concurrent/m.bin")).unwrap(),
        data
    );
    assert_eq!(
        server.requests.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the file was fetched more than once"
    );
}

#[test]
fn cli_pull_rejects_a_file_that_fails_the_catalog_checksum() {
    // The shared Whisper base is a conversion: its SHA-1 differs from the
    // catalog's, exactly like a corrupted download would.
    let bytes = std::fs::read(common::whisper_base()).unwrap();
    let server = Server::start(HashMap::from([("ggml-base.bin".to_string(), bytes)]));
    let g = Glagol::new();
    let out = g.run(&["models", "pull", "whisper-base", "--from", &server.base]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );
    let list = g.run(&["models", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let base = v["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "whisper-base")
        .unwrap()
        .clone();
    assert_eq!(base["installed"], false);
}

#[test]
fn the_diarization_models_are_pulled_by_name_and_verified() {
    // The shared segmentation model is the catalog's exact file.
    let seg = common::assets().join("models/pyannote-segmentation-3.0/segmentation-3.0.onnx");
    let bytes = std::fs::read(&seg).unwrap();
    let server = Server::start(HashMap::from([(
        "segmentation-3.0.onnx".to_string(),
        bytes,
    )]));
    let g = Glagol::new();
    common::ok(g.run(&[
        "models",
        "pull",
        "pyannote-segmentation-3.0",
        "--from",
        &server.base,
    ]));
    let verify = common::ok(g.run(&["models", "verify", "pyannote-segmentation-3.0"]));
    assert!(
        verify.contains("ok      pyannote-segmentation-3.0"),
        "{verify}"
    );
    // Offline, an import of the same bytes is recognised as the catalog's.
    let g = Glagol::new();
    let out = common::ok(g.run(&["models", "import", seg.to_str().unwrap()]));
    assert!(out.contains("pyannote-segmentation-3.0"), "{out}");
    // Not a transcription model: refused as one, with a reason.
    let out = g.run(&[
        "transcribe",
        "-m",
        "pyannote-segmentation-3.0",
        seg.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot transcribe"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cli_import_list_verify_rm() {
    let g = Glagol::new();
    let model = common::whisper_base();
    let model = model.to_str().unwrap();
    // A catalog name demands the catalog's bytes…
    let out = g.run(&["models", "import", model, "--as", "whisper-base"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not match the catalog"));
    // …unless forced (a compatible conversion), or under a local name.
    common::ok(g.run(&["models", "import", model, "--as", "whisper-base", "--force"]));
    common::ok(g.run(&["models", "import", model, "--as", "my-base"]));
    let list = common::ok(g.run(&["models", "list"]));
    assert!(list.contains("my-base"), "{list}");
    let verify = common::ok(g.run(&["models", "verify"]));
    assert!(
        verify.contains("ok      my-base") && verify.contains("ok      whisper-base"),
        "{verify}"
    );
    // Corruption after install is caught by verify.
    let store = g.data.path().join("models/my-base/ggml-base.bin");
    let mut bytes = std::fs::read(&store).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&store, bytes).unwrap();
    let out = g.run(&["models", "verify", "my-base"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stdout_has(&out, "FAILED  my-base"));
    common::ok(g.run(&["models", "rm", "my-base"]));
    let out = g.run(&["models", "rm", "my-base"]);
    assert_eq!(out.status.code(), Some(4));
    // The imported model is usable by name.
    let out = g.run(&[
        "transcribe",
        "--model",
        "whisper-base",
        "-l",
        "en",
        common::misc("jfk.wav").to_str().unwrap(),
    ]);
    assert!(
        common::normalize(&common::ok(out)).contains("ask not what your country can do for you")
    );
}

fn stdout_has(o: &std::process::Output, s: &str) -> bool {
    common::stdout(o).contains(s)
}

#[test]
fn cli_unknown_and_missing_models_say_what_to_do() {
    let g = Glagol::new();
    let wav = common::misc("jfk.wav");
    let out = g.run(&[
        "transcribe",
        "--model",
        "whisper-small",
        wav.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("glagol models pull whisper-small"),
        "{}",
        stderr(&out)
    );
    let out = g.run(&[
        "transcribe",
        "--model",
        "no-such-model",
        wav.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("unknown model"));
}

fn fake_wheel(lib: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        z.start_file("onnxruntime/__init__.py", opts).unwrap();
        z.write_all(b"# test wheel\n").unwrap();
        z.start_file("onnxruntime/capi/libonnxruntime.so.1.31.1", opts)
            .unwrap();
        z.write_all(lib).unwrap();
        z.finish().unwrap();
    }
    buf.into_inner()
}

#[test]
fn runtime_install_from_a_local_server() {
    let lib = payload(300_000, 6);
    let wheel = fake_wheel(&lib);
    let sum = hex::encode(sha2::Sha256::digest(&wheel));
    let server = Server::start(HashMap::from([("ort.whl".to_string(), wheel)]));
    let g = Glagol::new();
    let dest = tempfile::tempdir().unwrap();
    let url = format!("{}/ort.whl", server.base);
    let out = g.run(&[
        "runtime",
        "install",
        "--url",
        &url,
        "--sha256",
        &sum,
        "--dir",
        dest.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(dest.path().join("libonnxruntime.so.1.31.1")).unwrap(),
        lib
    );
    // Idempotent: a second install succeeds and leaves the same file.
    let out = g.run(&[
        "runtime",
        "install",
        "--url",
        &url,
        "--sha256",
        &sum,
        "--dir",
        dest.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A wheel that does not match the pinned checksum is refused.
    let bad = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let out = g.run(&[
        "runtime",
        "install",
        "--url",
        &url,
        "--sha256",
        &wrong,
        "--dir",
        bad.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("checksum mismatch"));
    assert!(!bad.path().join("libonnxruntime.so.1.31.1").exists());
}

#[test]
fn missing_runtime_is_a_clear_error() {
    let g = Glagol::new();
    let out = g
        .cmd()
        .env("GLAGOL_ORT_LIB", "/nonexistent/libonnxruntime.so")
        .args(["runtime", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = stderr(&out);
    assert!(
        err.contains("ONNX Runtime library not found") && err.contains("glagol runtime install"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    // The VAD needs the runtime: same error through transcribe.
    let wav = common::misc("jfk.wav");
    let model = common::whisper_base();
    let out = g
        .cmd()
        .env("GLAGOL_ORT_LIB", "/nonexistent/libonnxruntime.so")
        .args([
            "transcribe",
            "--vad",
            "--model",
            model.to_str().unwrap(),
            wav.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("glagol runtime install"));
    // A file that is not a library is a load error, not a crash.
    let junk = g.data.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&junk, b"not a library").unwrap();
    let out = g
        .cmd()
        .env("GLAGOL_ORT_LIB", &junk)
        .args(["runtime", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("glagol runtime install"));
}
