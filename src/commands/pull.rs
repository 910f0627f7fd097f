//! `pgoci pull`: a lock's blobs into the cache.

use super::{output::Outcome, Context};
use crate::cli::LockSource;
use indicatif::HumanBytes;
use pgoci::cache::Cache;
use pgoci::companions::Companion;
use pgoci::error::Result;
use pgoci::fetch::{self, PullReport};
use pgoci::lock::Lock;
use tracing::Instrument;

/// Pulls a lock; shared by `install` and `upgrade`.
pub fn pull_lock(ctx: &Context, lock: &Lock) -> Result<(Cache, PullReport)> {
    pull_locks(ctx, std::slice::from_ref(lock))
}

/// Pulls several locks at once; shared by `install` and `upgrade`.
pub fn pull_locks(ctx: &Context, locks: &[Lock]) -> Result<(Cache, PullReport)> {
    let (cache, report, _) = pull_all(ctx, locks, false)?;
    Ok((cache, report))
}

/// Pulls the locks' blobs and, with `companions`, what travels beside the
/// locked images (their indexes, signatures, attestations, SBOMs): `pgoci
/// pull` fetches that too so that `bundle export` can run later with no
/// registry, and the export takes it from there. All of it over one
/// registry client in one runtime: one token per repository, one
/// connection pool. A cache that records what travels beside, blobs
/// included, asks no registry for it; otherwise the registry is asked for
/// what the cache lacks.
pub fn pull_all(
    ctx: &Context,
    locks: &[Lock],
    companions: bool,
) -> Result<(Cache, PullReport, Vec<Companion>)> {
    let cache = ctx.cache()?;
    let registry = ctx.registry()?;
    let jobs = ctx.settings.jobs;
    let (report, found) = ctx.block_on(async {
        let report = fetch::pull(locks, registry.clone(), &cache, ctx.reporter.clone(), jobs)
            .instrument(tracing::info_span!("pull", locks = locks.len()))
            .await?;
        // The signatures came down with the blobs; what the policy
        // requires is checked on the local copies before anything uses them.
        let all: Vec<&Lock> = locks.iter().collect();
        let carried = || Ok(pgoci::companions::cached(locks, &cache)?.unwrap_or_default());
        ctx.check_signatures(&all, carried, &cache)?;
        if !companions {
            return Ok((report, Vec::new()));
        }
        if let Some(found) = pgoci::companions::cached(locks, &cache)? {
            if found.iter().all(|c| c.blobs.iter().all(|b| cache.has(b))) {
                return Ok((report, found));
            }
        }
        let found = pgoci::companions::discover(&registry, locks, &cache)
            .instrument(tracing::info_span!("referrers"))
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
        fetch::pull_blobs(blobs, registry.clone(), &cache, ctx.reporter.clone(), jobs).await?;
        Ok((report, found))
    })?;
    Ok((cache, report, found))
}

pub fn run(ctx: &Context, source: &LockSource) -> Result<Outcome> {
    let locks = ctx.locks(source)?;
    // With what a later `bundle export` carries beside the images, so
    // that export needs no registry.
    let (cache, report, companions) = pull_all(ctx, &locks, true)?;
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
            HumanBytes(report.bytes_fetched),
            report.cached,
            cache.root().display(),
            match companions.len() {
                0 => String::new(),
                n => format!(", with {n} manifest(s) beside the images"),
            }
        )))
}
