//! `pgoci pull`: a lock's blobs into the cache.

use super::{
    output::{human_bytes, Outcome},
    Context,
};
use crate::cli::LockSource;
use pgoci::cache::Cache;
use pgoci::error::Result;
use pgoci::fetch::{self, PullReport};
use pgoci::lock::Lock;

/// Pulls a lock; shared by `pull`, `bundle export` and `install`.
pub fn pull_lock(ctx: &Context, lock: &Lock) -> Result<(Cache, PullReport)> {
    let cache = ctx.cache()?;
    let _span = tracing::info_span!("pull", blobs = lock.blobs().len()).entered();
    let report = ctx.block_on(fetch::pull(
        lock,
        ctx.registry()?,
        &cache,
        ctx.reporter.clone(),
        ctx.global.jobs.unwrap_or_else(fetch::default_jobs),
    ))?;
    // The signatures came down with the blobs; what the policy requires
    // is checked on the local copies before anything uses them.
    ctx.check_signatures(lock, &cache)?;
    Ok((cache, report))
}

pub fn run(ctx: &Context, source: &LockSource) -> Result<Outcome> {
    let locks = ctx.locks(source)?;
    let (mut fetched, mut cached, mut bytes, mut cache_dir) = (0, 0, 0, None);
    for lock in &locks {
        let (cache, report) = pull_lock(ctx, lock)?;
        fetched += report.fetched;
        cached += report.cached;
        bytes += report.bytes_fetched;
        cache_dir = Some(cache.root().to_path_buf());
    }
    let cache_dir = cache_dir.unwrap_or_default();
    Ok(Outcome::new("pull", fetched > 0)
        .field("fetched", fetched)
        .field("cached", cached)
        .field("bytes_fetched", bytes)
        .field("cache_dir", &cache_dir)
        .field("lock_digest", locks[0].digest()?.to_string())
        .note(format!(
            "pulled {fetched} blob(s) ({}), {cached} already cached, into {}",
            human_bytes(bytes),
            cache_dir.display()
        )))
}
