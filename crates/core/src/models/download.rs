//! Verified, resumable, process-safe HTTP downloads.
//!
//! A file is fetched into `<dest>.part`, resumed with an HTTP `Range`
//! request after any interruption (within one call, and across calls: a
//! `.part` left by a killed process is continued), checked against its
//! digest, then moved into place with an atomic rename. An exclusive lock
//! on `<dest>.lock` serialises processes pulling the same file: the second
//! one waits, then finds the verified file and returns at once.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::catalog::Checksum;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url} answered HTTP {status}")]
    Http { url: String, status: u16 },
    #[error("could not fetch {url} after {attempts} attempts: {message}; run the command again to resume")]
    Network {
        url: String,
        attempts: u32,
        message: String,
    },
    #[error("checksum mismatch for {file}: expected {expected}, got {actual}; the damaged download was deleted, run the command again")]
    ChecksumMismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What a download reports while it runs.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// A transfer (re)started: `done` bytes already on disk, of `total`.
    Started { done: u64, total: Option<u64> },
    /// More bytes arrived.
    Advanced { done: u64 },
}

/// One file to fetch.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub url: &'a str,
    pub dest: &'a Path,
    pub checksum: Option<Checksum>,
    /// How many times to resume after a network failure before giving up.
    pub max_attempts: u32,
}

impl<'a> Request<'a> {
    pub fn new(url: &'a str, dest: &'a Path, checksum: Option<Checksum>) -> Self {
        Request {
            url,
            dest,
            checksum,
            max_attempts: 6,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A hidden temporary path beside `dest`, unique to this writer (process
/// and call): writers of the same file each fill their own and rename it
/// into place, so none renames or overwrites another's half-written file.
pub fn private_temp(dest: &Path) -> PathBuf {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    dest.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

/// Fetches `req.url` into `req.dest` and returns the file's SHA-256.
pub fn download(
    req: &Request,
    progress: &mut dyn FnMut(Progress),
) -> Result<String, DownloadError> {
    if let Some(parent) = req.dest.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let lock_path = with_suffix(req.dest, ".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    lock.lock().map_err(io_err(&lock_path))?;

    // Another process may have finished the file while this one waited.
    if req.dest.exists() {
        let digests = Digests::of_file(req.dest).map_err(io_err(req.dest))?;
        if digests.matches(req.checksum) {
            return Ok(digests.sha256_hex());
        }
    }

    let part = with_suffix(req.dest, ".part");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .user_agent(concat!("glagol/", env!("CARGO_PKG_VERSION")))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(trust_roots()))
                .build(),
        )
        .build()
        .into();

    let mut last_error = String::new();
    let mut attempt = 0;
    loop {
        if attempt >= req.max_attempts {
            return Err(DownloadError::Network {
                url: req.url.to_string(),
                attempts: attempt,
                message: last_error,
            });
        }
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(250 * (1 << attempt.min(5))));
        }
        attempt += 1;
        match transfer(&agent, req.url, &part, progress) {
            Ok(()) => break,
            Err(TransferError::Fatal(e)) => return Err(e),
            Err(TransferError::Retry(msg)) => {
                tracing::warn!(
                    url = req.url,
                    attempt,
                    "download interrupted: {msg}; resuming"
                );
                last_error = msg;
            }
        }
    }

    let digests = Digests::of_file(&part).map_err(io_err(&part))?;
    if !digests.matches(req.checksum) {
        let _ = fs::remove_file(&part);
        let (expected, actual) = match req.checksum {
            Some(Checksum::Sha1(h)) => (h.to_string(), hex::encode(digests.sha1)),
            Some(Checksum::Sha256(h)) => (h.to_string(), digests.sha256_hex()),
            None => unreachable!("a file without a checksum always matches"),
        };
        return Err(DownloadError::ChecksumMismatch {
            file: req.dest.display().to_string(),
            expected,
            actual,
        });
    }
    fs::rename(&part, req.dest).map_err(io_err(req.dest))?;
    if let Some(dir) = req.dest.parent() {
        // Make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(digests.sha256_hex())
}

enum TransferError {
    Retry(String),
    Fatal(DownloadError),
}

/// One HTTP exchange that appends to `part`, resuming from its length.
fn transfer(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), TransferError> {
    let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let mut response = request
        .call()
        .map_err(|e| TransferError::Retry(e.to_string()))?;
    let status = response.status().as_u16();
    let (append, total) = match status {
        200 => (false, response.body().content_length()),
        206 => {
            let range = response
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let (start, total) = parse_content_range(range);
            if start != Some(have) {
                // The server resumed from somewhere else: start over.
                fs::remove_file(part).map_err(|e| TransferError::Fatal(io_err(part)(e)))?;
                return Err(TransferError::Retry(format!(
                    "server resumed at {range:?}, not byte {have}"
                )));
            }
            (true, total)
        }
        416 if have > 0 => {
            // Nothing left to fetch: the part is complete (verified next) or
            // longer than the file, in which case the digest check rejects it.
            return Ok(());
        }
        500..=599 | 429 | 408 => {
            return Err(TransferError::Retry(format!("HTTP {status}")));
        }
        _ => {
            return Err(TransferError::Fatal(DownloadError::Http {
                url: url.to_string(),
                status,
            }))
        }
    };
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(part)
        .map_err(|e| TransferError::Fatal(io_err(part)(e)))?;
    let mut done = if append { have } else { 0 };
    progress(Progress::Started { done, total });
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = file.sync_all();
                return Err(TransferError::Retry(e.to_string()));
            }
        };
        file.write_all(&buf[..n])
            .map_err(|e| TransferError::Fatal(io_err(part)(e)))?;
        done += n as u64;
        progress(Progress::Advanced { done });
    }
    file.sync_all()
        .map_err(|e| TransferError::Fatal(io_err(part)(e)))?;
    if let Some(total) = total {
        if done < total {
            return Err(TransferError::Retry(format!(
                "connection closed at byte {done} of {total}"
            )));
        }
    }
    Ok(())
}

/// `bytes START-END/TOTAL` → (START, TOTAL).
fn parse_content_range(v: &str) -> (Option<u64>, Option<u64>) {
    let rest = v.trim().strip_prefix("bytes ").unwrap_or("");
    let (range, total) = rest.split_once('/').unwrap_or((rest, "*"));
    let start = range.split_once('-').and_then(|(s, _)| s.parse().ok());
    (start, total.parse().ok())
}

/// SHA-256 and SHA-1 of one file, computed in one pass.
pub struct Digests {
    pub sha256: [u8; 32],
    pub sha1: [u8; 20],
}

impl Digests {
    pub fn of_file(path: &Path) -> io::Result<Digests> {
        let mut f = File::open(path)?;
        let mut s256 = Sha256::new();
        let mut s1 = Sha1::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            s256.update(&buf[..n]);
            s1.update(&buf[..n]);
        }
        Ok(Digests {
            sha256: s256.finalize().into(),
            sha1: s1.finalize().into(),
        })
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// Whether the file satisfies `checksum` (always, where none is known).
    pub fn matches(&self, checksum: Option<Checksum>) -> bool {
        match checksum {
            None => true,
            Some(Checksum::Sha256(h)) => h.eq_ignore_ascii_case(&hex::encode(self.sha256)),
            Some(Checksum::Sha1(h)) => h.eq_ignore_ascii_case(&hex::encode(self.sha1)),
        }
    }
}

/// The bundled and system roots ([`crate::tls::roots`]), loaded once.
fn trust_roots() -> std::sync::Arc<Vec<ureq::tls::Certificate<'static>>> {
    static ROOTS: std::sync::OnceLock<std::sync::Arc<Vec<ureq::tls::Certificate<'static>>>> =
        std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let roots = crate::tls::roots(None).unwrap_or_default();
            std::sync::Arc::new(
                roots
                    .iter()
                    .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                    .collect(),
            )
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parses() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            (Some(100), Some(200))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), (Some(5), None));
        assert_eq!(parse_content_range("garbage"), (None, None));
    }
}
