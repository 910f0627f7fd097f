//! `pgoci rollback`, `uninstall` and `gc`.

use super::{
    output::{human_bytes, Outcome},
    Context,
};
use pgoci::error::Result;
use pgoci::install::lifecycle;
use pgoci::lock::Lock;
use std::path::PathBuf;

pub fn rollback(ctx: &Context, instance: &str) -> Result<Outcome> {
    let report = lifecycle::rollback(&ctx.layout(), instance, ctx.reporter.as_ref())?;
    Ok(Outcome::new("rollback", report.changed)
        .field("instance", instance)
        .field("actions", &report.actions)
        .note(format!("instance {instance} rolled back")))
}

pub fn uninstall(ctx: &Context, instance: &str, purge: bool) -> Result<Outcome> {
    let report = lifecycle::uninstall(&ctx.layout(), instance, purge, ctx.reporter.as_ref())?;
    Ok(Outcome::new("uninstall", report.changed)
        .field("instance", instance)
        .field("purged", purge)
        .field("actions", &report.actions)
        .note(if report.changed {
            format!("instance {instance} uninstalled")
        } else {
            format!("instance {instance} is not installed: nothing to do")
        }))
}

pub fn gc(ctx: &Context, keep: &[PathBuf]) -> Result<Outcome> {
    let keep: Vec<Lock> = keep.iter().map(|p| Lock::read(p)).collect::<Result<_>>()?;
    let cache = ctx.cache()?;
    let report = lifecycle::gc(&ctx.layout(), Some(&cache), &keep)?;
    let changed = report.store_entries + report.cache_blobs > 0;
    Ok(Outcome::new("gc", changed)
        .field("store_entries", report.store_entries)
        .field("cache_blobs", report.cache_blobs)
        .field("bytes_freed", report.bytes_freed)
        .note(format!(
            "freed {} ({} store entries, {} cache blobs)",
            human_bytes(report.bytes_freed),
            report.store_entries,
            report.cache_blobs
        )))
}
