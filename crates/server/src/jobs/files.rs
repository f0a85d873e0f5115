//! The job directory: uploads (`audio/`), transcripts (`results/`), files
//! being written (`tmp/`), the database and the lock. A file is written
//! under `tmp/`, flushed to disk, then renamed into place and the directory
//! flushed, so a crash leaves either the whole file or nothing in place.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use glagol_core::engine::Transcript;

pub struct JobFiles {
    root: PathBuf,
    exclusive: bool,
    /// Held for the process's life: one server per job directory (embedded store).
    _lock: Option<File>,
}

/// How old a file in a shared directory must be before a node may take it
/// for debris of a crash.
pub const SHARED_GRACE: Duration = Duration::from_secs(86_400);

/// Whether `path` was last modified more than `age` ago.
pub fn older_than(path: &Path, age: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|e| e >= age)
}

impl JobFiles {
    /// Creates the layout and clears `tmp/` of uploads a crash interrupted
    /// (never acknowledged). With `exclusive`, takes the directory's lock
    /// (one server per directory) and clears all of `tmp/`; a directory
    /// shared by nodes keeps what is younger than a day (another node may
    /// be writing it).
    pub fn open(root: &Path, exclusive: bool) -> anyhow::Result<JobFiles> {
        for sub in ["audio", "results", "tmp"] {
            std::fs::create_dir_all(root.join(sub))
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", root.join(sub).display()))?;
        }
        let lock = if exclusive {
            let lock = File::create(root.join("lock"))?;
            lock.try_lock().map_err(|_| {
                anyhow::anyhow!(
                    "the job directory {} is in use by another glagol server",
                    root.display()
                )
            })?;
            Some(lock)
        } else {
            None
        };
        let keep = if exclusive {
            Duration::ZERO
        } else {
            SHARED_GRACE
        };
        for entry in std::fs::read_dir(root.join("tmp"))?.flatten() {
            if older_than(&entry.path(), keep) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(JobFiles {
            root: root.to_path_buf(),
            exclusive,
            _lock: lock,
        })
    }

    /// Bytes still free where uploads and results are written.
    pub fn free_bytes(&self) -> Option<u64> {
        crate::sys::disk_free_bytes(&self.root)
    }

    /// Whether only this server uses the directory.
    pub fn exclusive(&self) -> bool {
        self.exclusive
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Starts writing an upload for job `id`.
    pub async fn upload(&self, id: &str, limit: u64) -> std::io::Result<Upload> {
        let tmp = self.root.join("tmp").join(format!("{id}.upload"));
        Ok(Upload {
            file: tokio::fs::File::create(&tmp).await?,
            tmp,
            relative: format!("audio/{id}"),
            root: self.root.clone(),
            hash: Sha256::new(),
            bytes: 0,
            limit,
        })
    }

    /// Stores a job's transcript; returns its relative path.
    pub async fn write_result(&self, id: &str, transcript: &Transcript) -> std::io::Result<String> {
        let relative = format!("results/{id}.json");
        let tmp = self.root.join("tmp").join(format!("{id}.result"));
        let json = serde_json::to_vec(transcript)?;
        let mut f = tokio::fs::File::create(&tmp).await?;
        f.write_all(&json).await?;
        f.sync_all().await?;
        drop(f);
        publish(&tmp, &self.root.join(&relative)).await?;
        Ok(relative)
    }

    pub async fn read_result(&self, relative: &str) -> std::io::Result<Transcript> {
        let bytes = tokio::fs::read(self.root.join(relative)).await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Deletes files (relative paths); missing ones are fine.
    pub async fn remove(&self, relative: &[String]) {
        for r in relative {
            if let Err(e) = tokio::fs::remove_file(self.root.join(r)).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(file = %r, "cannot delete a job file: {e}");
                }
            }
        }
    }
}

/// Renames a flushed file into place and flushes the directory entry.
async fn publish(tmp: &Path, to: &Path) -> std::io::Result<()> {
    tokio::fs::rename(tmp, to).await?;
    let dir = to.parent().unwrap_or(Path::new(".")).to_path_buf();
    tokio::task::spawn_blocking(move || File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}

/// An upload being streamed to disk with a byte limit and a running SHA-256.
pub struct Upload {
    file: tokio::fs::File,
    tmp: PathBuf,
    relative: String,
    root: PathBuf,
    hash: Sha256,
    bytes: u64,
    limit: u64,
}

/// A complete upload, durable on disk.
#[derive(Debug, Clone)]
pub struct Stored {
    pub relative: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the file is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Upload {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.limit {
            return Err(UploadError::TooLarge(self.limit));
        }
        self.hash.update(chunk);
        self.file.write_all(chunk).await?;
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Flushes the file to disk and moves it into place.
    pub async fn finish(mut self) -> Result<Stored, UploadError> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        let to = self.root.join(&self.relative);
        publish(&self.tmp, &to).await?;
        let stored = Stored {
            relative: std::mem::take(&mut self.relative),
            bytes: self.bytes,
            sha256: hex::encode(self.hash.clone().finalize()),
        };
        self.tmp = PathBuf::new();
        Ok(stored)
    }
}

impl Drop for Upload {
    /// An upload abandoned before `finish` leaves nothing behind.
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
