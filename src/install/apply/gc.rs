//! Planning and applying gc: store entries and cache blobs nothing uses.

use super::{ApplyError, LifecycleReport, Runner};
use crate::cache::Cache;
use crate::error::Result;
use crate::fsutil;
use crate::install::generation::{self};
use crate::install::layout::HostLayout;
use crate::install::plan::{self, Step};
use crate::install::store;
use crate::lock::Lock;
use crate::progress::Reporter;
use std::collections::BTreeMap;
use std::fs;

/// Plans gc: store entries no generation of any instance uses (and the
/// stored layers only they were composed from), and cache
/// blobs that neither those generations' locks nor `keep` locks need.
pub fn plan_gc(layout: &HostLayout, cache: Option<&Cache>, keep: &[Lock]) -> Result<Vec<Step>> {
    let instances = crate::install::facts::other_instances(layout, "")?;
    let mut used_store = std::collections::BTreeSet::new();
    let mut used_blobs = std::collections::BTreeSet::new();
    for st in &instances {
        for g in &st.generations {
            used_store.extend(g.store.iter().cloned());
            let lock_file = layout
                .generation(&st.instance, &g.name)
                .join(generation::GENERATION_LOCK);
            if let Ok(lock) = Lock::read(&lock_file) {
                used_blobs.extend(lock.blobs().into_iter().map(|b| b.digest));
            }
        }
    }
    for lock in keep {
        used_blobs.extend(lock.blobs().into_iter().map(|b| b.digest));
        used_store.extend(lock.artifacts().map(|a| a.digest.hex().to_string()));
    }
    let store_entries = store::unused(layout, &used_store);
    let mut blobs = BTreeMap::new();
    if let Some(cache) = cache {
        for d in cache.digests()? {
            if !used_blobs.contains(&d) {
                let size = fs::metadata(cache.path(&d)).map(|m| m.len()).unwrap_or(0);
                blobs.insert(d, size);
            }
        }
    }
    Ok(plan::gc(store_entries, blobs))
}

/// Applies gc steps.
pub fn gc(
    steps: &[Step],
    layout: &HostLayout,
    cache: Option<&Cache>,
    reporter: &dyn Reporter,
) -> Result<LifecycleReport> {
    let mut runner = Runner {
        reporter,
        done: Vec::new(),
    };
    // Entries a killed gc or install moved aside.
    store::clean(layout);
    for step in steps {
        match step {
            Step::RemoveStoreEntry { entry, .. } => {
                runner.run(step, || Ok(((), store::remove(layout, entry)?)))?
            }
            Step::RemoveCacheBlob { digest, .. } => runner.run(step, || {
                let Some(cache) = cache else {
                    return Ok(((), false));
                };
                Ok(((), fsutil::remove_file_if_exists(&cache.path(digest))?))
            })?,
            other => {
                return Err(ApplyError::UnexpectedStep {
                    plan: "gc",
                    step: other.kind(),
                }
                .into())
            }
        }
    }
    Ok(LifecycleReport {
        changed: !runner.done.is_empty(),
        actions: runner.done,
        data: Vec::new(),
    })
}
