//! Pulling a lock into the cache: every missing blob is downloaded in
//! parallel (bounded by `--jobs`), hashed while it streams into a partial
//! file, and committed to the cache only when its digest matches. A cut
//! download is resumed with a Range request; transient failures (network,
//! 5xx, 429) are retried with backoff, a bounded number of times. Partial
//! files are locked, so two pgoci processes sharing a cache never write the
//! same blob at once. Blobs already in the cache cost no network at all.

use crate::cache::Cache;
use crate::digest::Digest;
use crate::digest::Hasher;
use crate::error::{Classify, Error, IoContext, Kind, Result};
use crate::lock::{Blob, Lock};
use crate::progress::Reporter;
use crate::registry::Registry;
use futures_util::StreamExt;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::Duration;

/// Attempts per blob before a transient failure becomes final (exit 4).
pub const MAX_ATTEMPTS: u32 = 5;
/// The first retry waits this long; each next one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Downloads at once when `--jobs` is not given: twice the CPUs (they
/// mostly wait on the network), at least 4, at most 8 (registries throttle).
pub fn default_jobs() -> usize {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    (2 * cpus).clamp(4, 8)
}

/// A download that failed: cut, short, wrong, or given up on.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The stream broke mid-blob (worth another try: resumed from there).
    #[error("download of {what} broke: {source}")]
    Broke {
        what: String,
        source: std::io::Error,
    },
    /// The stream ended before the blob's size.
    #[error("download of {what} ended early ({got} of {size} bytes)")]
    EndedEarly { what: String, got: u64, size: u64 },
    /// The whole blob is in, and it is not the one the lock names.
    #[error(
        "blob {digest} from {reference} does not match its digest (got {actual}, {got} bytes)"
    )]
    DigestMismatch {
        digest: Digest,
        reference: String,
        actual: Digest,
        got: u64,
    },
    /// Every attempt failed with something worth retrying: the last one's
    /// error is the source.
    #[error("{what}: gave up after {attempts} attempts: {}", source.message)]
    GaveUp {
        what: String,
        attempts: u32,
        source: Error,
    },
    /// A blocking task (the cache commit, the partial file's lock) died.
    #[error("{task} task failed: {source}")]
    Task {
        task: &'static str,
        source: tokio::task::JoinError,
    },
}

impl Classify for FetchError {
    fn kind(&self) -> Kind {
        match self {
            FetchError::DigestMismatch { .. } => Kind::Integrity,
            FetchError::Task { .. } => Kind::Internal,
            _ => Kind::Registry,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            FetchError::GaveUp { .. } => Some(
                "check the registry, then run the same command again: finished blobs are kept"
                    .into(),
            ),
            _ => None,
        }
    }

    fn transient(&self) -> bool {
        matches!(
            self,
            FetchError::Broke { .. } | FetchError::EndedEarly { .. }
        )
    }
}

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

/// Fetches every blob of `locks` that is not yet in `cache`: all images'
/// manifests, configs and layers at once (bounded by `jobs`), each blob
/// once however many locks share it, over the registry's one client.
pub async fn pull(
    locks: &[Lock],
    registry: Arc<Registry>,
    cache: &Cache,
    reporter: Arc<dyn Reporter>,
    jobs: usize,
) -> Result<PullReport> {
    let mut report = PullReport::default();
    let mut todo = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for artifact in locks.iter().flat_map(Lock::artifacts) {
        for (i, blob) in artifact.blobs().into_iter().enumerate() {
            if !seen.insert(blob.digest.clone()) {
                continue;
            }
            if cache.has(&blob) {
                report.cached += 1;
                continue;
            }
            // The platform manifest, and a signature's manifest and
            // signed index, come from the manifest endpoint.
            let is_manifest =
                i == 0 || crate::registry::MANIFEST_TYPES.contains(&blob.media_type.as_str());
            todo.push(Job {
                reference: artifact.reference.clone(),
                blob,
                is_manifest,
            });
        }
    }
    let (fetched, bytes) = run_jobs(todo, registry, cache, reporter, jobs).await?;
    report.fetched = fetched;
    report.bytes_fetched = bytes;
    Ok(report)
}

/// Fetches blobs the lock does not name (what travels beside its images:
/// see [`crate::companions`]) into the cache, each verified, from the
/// repository `reference` names; blobs already cached cost nothing.
/// Returns how many were fetched.
pub async fn pull_blobs(
    blobs: Vec<(String, Blob)>,
    registry: Arc<Registry>,
    cache: &Cache,
    reporter: Arc<dyn Reporter>,
    jobs: usize,
) -> Result<usize> {
    let mut seen = std::collections::BTreeSet::new();
    let todo: Vec<Job> = blobs
        .into_iter()
        .filter(|(_, b)| seen.insert(b.digest.clone()) && !cache.has(b))
        .map(|(reference, blob)| Job {
            is_manifest: crate::registry::MANIFEST_TYPES.contains(&blob.media_type.as_str()),
            reference,
            blob,
        })
        .collect();
    Ok(run_jobs(todo, registry, cache, reporter, jobs).await?.0)
}

/// Runs downloads, at most `jobs` at once; returns (count, bytes).
async fn run_jobs(
    todo: Vec<Job>,
    registry: Arc<Registry>,
    cache: &Cache,
    reporter: Arc<dyn Reporter>,
    jobs: usize,
) -> Result<(usize, u64)> {
    reporter.pull_started(todo.len(), todo.iter().map(|j| j.blob.size).sum());
    // After a failure no new download starts; those under way run to
    // their end (each removes its own wrong bytes) instead of being dropped
    // half-written. The first failure is the answer.
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let outcomes: Vec<Option<Result<u64>>> =
        futures_util::stream::iter(todo.into_iter().map(|job| {
            let registry = registry.clone();
            let reporter = reporter.clone();
            let cache = cache.clone();
            let failed = failed.clone();
            async move {
                if failed.load(std::sync::atomic::Ordering::SeqCst) {
                    return None;
                }
                let r = fetch_one(&job, &registry, &cache, reporter.as_ref()).await;
                if r.is_err() {
                    failed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Some(r)
            }
        }))
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    reporter.pull_finished();
    let results: Vec<u64> = outcomes.into_iter().flatten().collect::<Result<_>>()?;
    Ok((results.len(), results.iter().sum()))
}

/// Runs `attempt` until it succeeds, fails for good, or runs out of tries.
async fn with_retries<T, F, Fut>(what: &str, mut attempt: F) -> Result<T>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut wait = FIRST_BACKOFF;
    for n in 1..=MAX_ATTEMPTS {
        match attempt(n).await {
            Err(e) if e.transient && n < MAX_ATTEMPTS => {
                tracing::info!(
                    "{what}: attempt {n} failed ({}); retrying in {wait:?}",
                    e.message
                );
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) if e.transient => {
                return Err(FetchError::GaveUp {
                    what: what.to_string(),
                    attempts: MAX_ATTEMPTS,
                    source: e,
                }
                .into())
            }
            other => return other,
        }
    }
    unreachable!("the last attempt returns")
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
    if job.is_manifest {
        // Manifests come from the manifest endpoint, by digest; they are small.
        let by_digest = reference.clone_with_digest(blob.digest.to_string());
        let what = format!("manifest {}", blob.digest);
        let manifest = with_retries(&what, |_| registry.manifest(&by_digest)).await?;
        let temp = cache.temp_path(&blob.digest);
        std::fs::write(&temp, &manifest.bytes).with_path(&temp, "write")?;
        reporter.blob_progress(&blob.digest, manifest.bytes.len() as u64);
        let c = cache.clone();
        let d = blob.digest.clone();
        tokio::task::spawn_blocking(move || c.commit_verified(&temp, &d))
            .await
            .map_err(|source| FetchError::Task {
                task: "commit",
                source,
            })??;
        reporter.blob_done(&blob.digest);
        return Ok(blob.size);
    }

    // Take the blob's partial file, locked; another process may hold it.
    let partial = cache.partial_path(&blob.digest);
    let p = partial.clone();
    let mut file = tokio::task::spawn_blocking(move || -> Result<std::fs::File> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .with_path(&p, "open")?;
        fs4::fs_std::FileExt::lock_exclusive(&f).with_path(&p, "lock")?;
        Ok(f)
    })
    .await
    .map_err(|source| FetchError::Task {
        task: "lock",
        source,
    })??;
    if cache.has(blob) {
        // Another pgoci finished it while we waited for the lock.
        reporter.blob_done(&blob.digest);
        return Ok(0);
    }
    // Resume after whatever an earlier, interrupted run left.
    // The prefix is hashed as it is read back, never held in memory whole.
    let mut hasher = Hasher::default();
    file.seek(SeekFrom::Start(0)).with_path(&partial, "seek")?;
    let had = std::io::copy(&mut file, &mut hasher).with_path(&partial, "read")?;
    if had > blob.size {
        file.set_len(0).with_path(&partial, "truncate")?;
        hasher = Hasher::default();
    } else {
        reporter.blob_progress(&blob.digest, had);
    }

    let what = format!("blob {} from {}", blob.digest, job.reference);
    let state = std::sync::Mutex::new((crate::fsutil::Writeback::new(file), hasher));
    with_retries(&what, |_| async {
        let offset = state.lock().expect("poisoned").1.len();
        if offset == blob.size {
            return Ok(());
        }
        let (mut stream, ranged) = registry
            .blob_stream_from(&reference, &blob.digest, offset)
            .await?;
        if offset > 0 && !ranged {
            // The registry ignored the Range header: start over.
            let mut s = state.lock().expect("poisoned");
            s.0.file().set_len(0).with_path(&partial, "truncate")?;
            s.1 = Hasher::default();
        }
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                // All bytes are in: the client's own digest check failed,
                // and ours (below) will say so as an integrity error.
                Err(_) if state.lock().expect("poisoned").1.len() == blob.size => break,
                Err(source) => {
                    return Err(FetchError::Broke {
                        what: what.clone(),
                        source,
                    }
                    .into())
                }
            };
            let mut s = state.lock().expect("poisoned");
            s.1.update(&chunk);
            if s.1.len() > blob.size {
                break;
            }
            s.0.write_all(&chunk).with_path(&partial, "write")?;
            reporter.blob_progress(&blob.digest, chunk.len() as u64);
        }
        let got = state.lock().expect("poisoned").1.len();
        if got < blob.size {
            return Err(FetchError::EndedEarly {
                what: what.clone(),
                got,
                size: blob.size,
            }
            .into());
        }
        Ok(())
    })
    .await?;
    let (file, hasher) = state.into_inner().expect("poisoned");
    let size = hasher.len();
    let actual = hasher.finish();
    if actual != blob.digest || size != blob.size {
        // Bad bytes never stay: not in the cache, not as a partial.
        let _ = std::fs::remove_file(&partial);
        return Err(FetchError::DigestMismatch {
            digest: blob.digest.clone(),
            reference: job.reference.clone(),
            actual,
            got: size,
        }
        .into());
    }
    let c = cache.clone();
    let d = blob.digest.clone();
    // commit_verified fsyncs, which waits for the disk (seconds for a large
    // layer): off the async workers, so other downloads keep streaming.
    tokio::task::spawn_blocking(move || {
        let result = c.commit_verified(&partial, &d);
        drop(file); // the lock goes with the file, after the rename
        result
    })
    .await
    .map_err(|source| FetchError::Task {
        task: "commit",
        source,
    })??;
    reporter.blob_done(&blob.digest);
    Ok(blob.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transient_failure_every_time_is_given_up_on_with_the_last_as_source() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut tries = 0;
        let err = runtime
            .block_on(with_retries("blob x", |n| {
                tries = n;
                async move {
                    Err::<(), _>(
                        FetchError::EndedEarly {
                            what: "blob x".into(),
                            got: n.into(),
                            size: 10,
                        }
                        .into(),
                    )
                }
            }))
            .unwrap_err();
        assert_eq!(tries, MAX_ATTEMPTS);
        assert_eq!(err.kind, Kind::Registry);
        assert!(!err.transient);
        assert_eq!(
            err.message,
            "blob x: gave up after 5 attempts: download of blob x ended early (5 of 10 bytes)"
        );
        assert!(err
            .hint
            .as_deref()
            .unwrap()
            .contains("run the same command again"));
        match err.typed::<FetchError>() {
            Some(FetchError::GaveUp {
                attempts: 5,
                source,
                ..
            }) => assert!(matches!(
                source.typed::<FetchError>(),
                Some(FetchError::EndedEarly { got: 5, .. })
            )),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cut_downloads_are_transient_wrong_bytes_are_integrity() {
        let e = Error::from(FetchError::Broke {
            what: "blob x".into(),
            source: std::io::Error::other("reset"),
        });
        assert!(e.transient);
        assert_eq!(e.kind, Kind::Registry);
        assert_eq!(e.message, "download of blob x broke: reset");
        let d = Digest::of_bytes(b"x");
        let e = Error::from(FetchError::DigestMismatch {
            digest: d.clone(),
            reference: "r/x:1".into(),
            actual: Digest::of_bytes(b"y"),
            got: 1,
        });
        assert_eq!(e.kind, Kind::Integrity);
        assert!(!e.transient);
        assert!(e
            .message
            .starts_with(&format!("blob {d} from r/x:1 does not match")));
    }
}
