//! Pulling a lock into the cache: every missing blob is downloaded in
//! parallel (bounded), hashed while it streams to a temporary file, and
//! committed to the cache only when its digest matches. Blobs already in
//! the cache cost no network at all.

use crate::cache::Cache;
use crate::digest::{Digest, Hasher};
use crate::error::{Error, IoContext, Result};
use crate::lock::{Blob, Lock};
use crate::progress::Reporter;
use crate::registry::Registry;
use futures_util::{StreamExt, TryStreamExt};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// What a pull did.
#[derive(Debug, Default, Clone)]
pub struct PullReport {
    pub fetched: usize,
    pub cached: usize,
    pub bytes_fetched: u64,
}

/// One blob to fetch and the repository it comes from.
struct Job {
    reference: String,
    blob: Blob,
    is_manifest: bool,
}

/// Fetches every blob of `lock` that is not yet in `cache`.
pub async fn pull(
    lock: &Lock,
    registry: Arc<Registry>,
    cache: &Cache,
    reporter: Arc<dyn Reporter>,
    jobs: usize,
) -> Result<PullReport> {
    let mut report = PullReport::default();
    let mut todo = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for artifact in lock.artifacts() {
        for (i, blob) in artifact.blobs().into_iter().enumerate() {
            if !seen.insert(blob.digest.clone()) {
                continue;
            }
            if cache.has(&blob) {
                report.cached += 1;
                continue;
            }
            todo.push(Job {
                reference: artifact.reference.clone(),
                blob,
                is_manifest: i == 0,
            });
        }
    }
    reporter.pull_started(todo.len(), todo.iter().map(|j| j.blob.size).sum());
    let results: Result<Vec<u64>> = futures_util::stream::iter(todo.into_iter().map(|job| {
        let registry = registry.clone();
        let reporter = reporter.clone();
        let cache = cache.clone();
        async move { fetch_one(&job, &registry, &cache, reporter.as_ref()).await }
    }))
    .buffer_unordered(jobs.max(1))
    .try_collect()
    .await;
    reporter.pull_finished();
    let results = results?;
    report.fetched = results.len();
    report.bytes_fetched = results.iter().sum();
    Ok(report)
}

/// Downloads one blob into the cache, verified; returns its size.
async fn fetch_one(
    job: &Job,
    registry: &Registry,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<u64> {
    let blob = &job.blob;
    let reference = Registry::parse_reference(&job.reference)?;
    reporter.blob_started(&blob.digest, blob.size);
    let temp = cache.temp_path(&blob.digest);
    if job.is_manifest {
        // Manifests come from the manifest endpoint, by digest.
        let by_digest = reference.clone_with_digest(blob.digest.to_string());
        let manifest = registry.manifest(&by_digest).await?;
        tokio::fs::write(&temp, &manifest.bytes)
            .await
            .with_path(&temp, "write")?;
        reporter.blob_progress(&blob.digest, manifest.bytes.len() as u64);
    } else {
        let mut stream = registry.blob_stream(&reference, &blob.digest).await?;
        let mut file = tokio::fs::File::create(&temp)
            .await
            .with_path(&temp, "create")?;
        let mut hasher = Hasher::default();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                Error::registry(format!(
                    "download of {} from {} broke: {e}",
                    blob.digest, job.reference
                ))
            })?;
            hasher.update(&chunk);
            if hasher.len() > blob.size {
                break;
            }
            file.write_all(&chunk).await.with_path(&temp, "write")?;
            reporter.blob_progress(&blob.digest, chunk.len() as u64);
        }
        file.flush().await.with_path(&temp, "write")?;
        let size = hasher.len();
        let actual: Digest = hasher.finish();
        if actual != blob.digest || size != blob.size {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(Error::integrity(format!(
                "blob {} from {} does not match its digest (got {actual}, {size} bytes)",
                blob.digest, job.reference
            )));
        }
    }
    let cache = cache.clone();
    let digest = blob.digest.clone();
    tokio::task::spawn_blocking(move || cache.commit_verified(&temp, &digest))
        .await
        .map_err(|e| Error::internal(format!("commit task failed: {e}")))??;
    reporter.blob_done(&blob.digest);
    Ok(blob.size)
}
