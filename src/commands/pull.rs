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

/// What travels beside the locked images (their indexes, signatures,
/// attestations, SBOMs), into the cache: `pgoci pull` fetches it so that
/// `bundle export` can run later with no registry, and the export takes
/// it from there. A cache that records it all, blobs included, asks no
/// registry; otherwise the registry is asked for what the cache lacks.
pub fn pull_companions(
    ctx: &Context,
    locks: &[Lock],
    cache: &Cache,
) -> Result<Vec<pgoci::companions::Companion>> {
    if let Some(found) = pgoci::companions::cached(locks, cache)? {
        if found.iter().all(|c| c.blobs.iter().all(|b| cache.has(b))) {
            return Ok(found);
        }
    }
    let registry = ctx.registry()?;
    let _span = tracing::info_span!("referrers").entered();
    ctx.block_on(async {
        let found = pgoci::companions::discover(&registry, locks, cache)
            .await
            .map_err(|e| match e.kind {
                pgoci::Kind::Registry => e.hint(
                    "the images' indexes and referrers come from their registry; \
                     `bundle export --images-only` exports without them",
                ),
                _ => e,
            })?;
        let blobs = found
            .iter()
            .flat_map(|c| c.blobs.iter().map(|b| (c.reference(), b.clone())))
            .collect();
        fetch::pull_blobs(
            blobs,
            registry.clone(),
            cache,
            ctx.reporter.clone(),
            ctx.global.jobs.unwrap_or_else(fetch::default_jobs),
        )
        .await?;
        Ok(found)
    })
}

pub fn run(ctx: &Context, source: &LockSource) -> Result<Outcome> {
    let locks = ctx.locks(source)?;
    let (cache, report) = pull_locks(ctx, &locks)?;
    // What a later `bundle export` carries beside the images, so it needs
    // no registry.
    let companions = pull_companions(ctx, &locks, &cache)?;
    Ok(Outcome::new("pull", report.fetched > 0)
        .field("companions", companions.len())
        .field("fetched", report.fetched)
        .field("cached", report.cached)
        .field("bytes_fetched", report.bytes_fetched)
        .field("cache_dir", cache.root())
        .field("lock_digest", locks[0].digest()?.to_string())
        .note(format!(
            "pulled {} blob(s) ({}), {} already cached, into {}{}",
            report.fetched,
            human_bytes(report.bytes_fetched),
            report.cached,
            cache.root().display(),
            match companions.len() {
                0 => String::new(),
                n => format!(", with {n} manifest(s) beside the images"),
            }
        )))
}
