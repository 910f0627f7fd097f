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
    Ok((cache, report))
}

pub fn run(ctx: &Context, source: &LockSource) -> Result<Outcome> {
    let lock = ctx.lock(source)?;
    let (cache, report) = pull_lock(ctx, &lock)?;
    Ok(Outcome::new("pull", report.fetched > 0)
        .field("fetched", report.fetched)
        .field("cached", report.cached)
        .field("bytes_fetched", report.bytes_fetched)
        .field("cache_dir", cache.root())
        .field("lock_digest", lock.digest()?.to_string())
        .note(format!(
            "pulled {} blob(s) ({}), {} already cached, into {}",
            report.fetched,
            human_bytes(report.bytes_fetched),
            report.cached,
            cache.root().display()
        )))
}
