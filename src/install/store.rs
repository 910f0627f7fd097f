//! The store: each artifact unpacked once into `store/<manifest-hex>/`,
//! immutable afterwards (files read-only). Unpacking goes to a temporary
//! directory that is renamed into place, so a store entry is whole or absent.

use super::layout::HostLayout;
use crate::blobs::BlobSource;
use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::lock::Pinned;
use crate::progress::{Phase, Reporter, ReportingReader};
use crate::unpack::{apply_layer, seal, Budget, Select};
use std::fs;
use std::path::{Path, PathBuf};

/// Whether an artifact is unpacked in the store (whole, with its manifest).
pub fn has(layout: &HostLayout, digest: &Digest) -> bool {
    let dest = layout.store().join(digest.hex());
    dest.is_dir() && super::manifest::store_manifest_path(&dest).is_file()
}

/// Unpacks `pinned` into the store unless it is already there; returns the
/// entry's directory and whether it was created now. Each layer is
/// verified against its digest while it is unpacked.
pub fn ensure(
    layout: &HostLayout,
    pinned: &Pinned,
    source: &dyn BlobSource,
    select: Select,
    reporter: &dyn Reporter,
) -> Result<(PathBuf, bool)> {
    let store = layout.store();
    let dest = store.join(pinned.digest.hex());
    if has(layout, &pinned.digest) {
        return Ok((dest, false));
    }
    if dest.is_dir() {
        // An entry from before manifests were recorded: unpack it afresh.
        fs::remove_dir_all(&dest).with_path(&dest, "remove")?;
    }
    fs::create_dir_all(&store).with_path(&store, "create store")?;
    let tmp = store.join(format!(
        ".tmp-{}-{}",
        pinned.digest.short(),
        std::process::id()
    ));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_path(&tmp, "remove stale")?;
    }
    fs::create_dir(&tmp).with_path(&tmp, "create")?;
    let unpacked = (|| {
        let mut budget = Budget::default();
        for layer in &pinned.layers {
            let raw = source.open_raw(layer)?;
            let reader =
                ReportingReader::new(raw, Phase::Unpack, &layer.digest, layer.size, reporter);
            apply_layer(reader, layer, &tmp, select, &mut budget)?;
        }
        // Read-only, no setuid/setgid/sticky or world-writable bits: hard
        // links into generations cannot be used to change the store.
        seal(&tmp)?;
        // Record every file's digest now, for `status --verify` later.
        let files = super::manifest::hash_tree(&tmp, budget.digests())?;
        super::manifest::write(&super::manifest::store_manifest_path(&dest), &files)
    })();
    if let Err(e) = unpacked {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if let Err(e) = fs::rename(&tmp, &dest) {
        let _ = fs::remove_dir_all(&tmp);
        // Another pgoci unpacked the same artifact meanwhile: theirs is as good.
        if has(layout, &pinned.digest) {
            return Ok((dest, false));
        }
        return Err(e).with_path(&dest, "move into store");
    }
    Ok((dest, true))
}

/// Removes `.tmp-*-<pid>` entries of `dir` left by killed runs (those
/// whose process is gone; a concurrent run's temp dirs are left alone).
pub fn clean_temp(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(".tmp-") {
            continue;
        }
        let alive = name
            .rsplit('-')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}
