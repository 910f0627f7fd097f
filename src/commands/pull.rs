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

/// Pulls a lock; shared by `install` and `upgrade`.
pub fn pull_lock(ctx: &Context, lock: &Lock) -> Result<(Cache, PullReport)> {
    pull_locks(ctx, std::slice::from_ref(lock))
}

/// Pulls several locks at once; shared by `pull` and `bundle export`.
pub fn pull_locks(ctx: &Context, locks: &[Lock]) -> Result<(Cache, PullReport)> {
    let cache = ctx.cache()?;
    let _span = tracing::info_span!("pull", locks = locks.len()).entered();
    let report = ctx.block_on(fetch::pull(
        locks,
        ctx.registry()?,
        &cache,
        ctx.reporter.clone(),
        ctx.global.jobs.unwrap_or_else(fetch::default_jobs),
    ))?;
    // The signatures came down with the blobs; what the policy requires
    // is checked on the local copies before anything uses them.
    for lock in locks {
        ctx.check_signatures(lock, &cache)?;
    }
    Ok((cache, report))
}

pub fn run(ctx: &Context, source: &LockSource) -> Result<Outcome> {
    let locks = ctx.locks(source)?;
    let (cache, report) = pull_locks(ctx, &locks)?;
    Ok(Outcome::new("pull", report.fetched > 0)
        .field("fetched", report.fetched)
        .field("cached", report.cached)
        .field("bytes_fetched", report.bytes_fetched)
        .field("cache_dir", cache.root())
        .field("lock_digest", locks[0].digest()?.to_string())
        .note(format!(
            "pulled {} blob(s) ({}), {} already cached, into {}",
            report.fetched,
            human_bytes(report.bytes_fetched),
            report.cached,
            cache.root().display()
        )))
}
