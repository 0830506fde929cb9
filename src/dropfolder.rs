//! The drop-folder source: files renamed into `inbox/` are processed like `POST /kith`.
//!
//! Layout under the configured folder: `inbox/` (senders rename complete files in here),
//! `outgoing/` (our AppRecs, one file each, written to a temporary name, fsynced, then renamed),
//! `processed/` and `failed/` (the originals, moved there only after the message and its receipts
//! were committed). A crash between commit and move means the file is read again at start: the
//! store recognises it as a duplicate and the same AppRec file is written again, so nothing is lost
//! and nothing is answered twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::pipeline::Pipeline;

pub struct DropFolder {
    pub root: PathBuf,
    pub poll: Duration,
}

impl DropFolder {
    pub fn inbox(&self) -> PathBuf {
        self.root.join("inbox")
    }
    pub fn outgoing(&self) -> PathBuf {
        self.root.join("outgoing")
    }
    pub fn processed(&self) -> PathBuf {
        self.root.join("processed")
    }
    pub fn failed(&self) -> PathBuf {
        self.root.join("failed")
    }

    pub fn create_dirs(&self) -> std::io::Result<()> {
        for d in [
            self.inbox(),
            self.outgoing(),
            self.processed(),
            self.failed(),
        ] {
            std::fs::create_dir_all(d)?;
        }
        Ok(())
    }

    /// Poll the inbox until `shutdown` turns true; a file being processed is finished first.
    pub async fn run(self, pipeline: Arc<Pipeline>, mut shutdown: watch::Receiver<bool>) {
        if let Err(e) = self.create_dirs() {
            tracing::error!(error = %e, "drop folder unusable");
            return;
        }
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.scan_once(&pipeline).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(files = n, "drop folder batch done"),
                Err(e) => tracing::warn!(error = %e, "drop folder scan failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Process every file now in the inbox; returns how many.
    pub async fn scan_once(&self, pipeline: &Pipeline) -> std::io::Result<usize> {
        let mut names = Vec::new();
        let mut rd = tokio::fs::read_dir(self.inbox()).await?;
        while let Some(e) = rd.next_entry().await? {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !e.file_type().await?.is_file() {
                continue;
            }
            names.push(name);
        }
        names.sort();
        let mut n = 0;
        for name in names {
            self.process(pipeline, &name).await?;
            n += 1;
        }
        Ok(n)
    }

    async fn process(&self, pipeline: &Pipeline, name: &str) -> std::io::Result<()> {
        let path = self.inbox().join(name);
        let bytes = tokio::fs::read(&path).await?;
        let (ok, reply) = if bytes.iter().all(u8::is_ascii_whitespace) {
            (false, None)
        } else {
            match pipeline.ingest_kith(bytes, "folder").await {
                Ok(r) => (
                    matches!(r.status.as_str(), "accepted" | "not-addressed" | "receipt"),
                    Some(r),
                ),
                Err(e) => {
                    // Not stored: leave the file in the inbox and try again on the next scan.
                    tracing::error!(error = %e, "drop folder message not stored; will retry");
                    return Ok(());
                }
            }
        };
        if let Some(r) = &reply {
            for rec in &r.receipts {
                write_durably(
                    &self.outgoing(),
                    &format!("{}.xml", rec.receipt_id),
                    &rec.body,
                )
                .await?;
            }
            if r.receipts.is_empty() {
                if let Some(j) = &r.json {
                    write_durably(
                        &self.outgoing(),
                        &format!("{name}.result.json"),
                        j.as_bytes(),
                    )
                    .await?;
                }
            }
        }
        let dest = if ok { self.processed() } else { self.failed() };
        tokio::fs::rename(&path, dest.join(name)).await?;
        sync_dir(&dest).await;
        sync_dir(&self.inbox()).await;
        Ok(())
    }
}

/// Write `name` in `dir` via a temporary file, fsync, rename, fsync the folder.
pub async fn write_durably(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let final_path = dir.join(name);
    let data = data.to_vec();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &final_path)?;
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}

async fn sync_dir(dir: &Path) {
    let dir = dir.to_path_buf();
    let _ =
        tokio::task::spawn_blocking(move || std::fs::File::open(&dir).and_then(|f| f.sync_all()))
            .await;
}
