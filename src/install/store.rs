//! The store: each artifact unpacked once into `store/<manifest-hex>/`,
//! immutable afterwards (files read-only). Unpacking goes to a temporary
//! directory that is renamed into place, so a store entry is whole or absent.

use super::layout::HostLayout;
use crate::blobs::BlobSource;
use crate::error::{IoContext, Result};
use crate::lock::Pinned;
use crate::unpack::{apply_layer, Budget, Select};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Unpacks `pinned` into the store unless it is already there; returns the
/// entry's directory and whether it was created now.
pub fn ensure(
    layout: &HostLayout,
    pinned: &Pinned,
    source: &dyn BlobSource,
    select: Select,
) -> Result<(PathBuf, bool)> {
    let store = layout.store();
    let dest = store.join(pinned.digest.hex());
    if dest.is_dir() && super::manifest::store_manifest_path(&dest).is_file() {
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
            apply_layer(source.open_raw(layer)?, layer, &tmp, select, &mut budget)?;
        }
        make_read_only(&tmp)?;
        // Record every file's digest now, for `status --verify` later.
        let files = super::manifest::hash_tree(&tmp)?;
        super::manifest::write(&super::manifest::store_manifest_path(&dest), &files)
    })();
    if let Err(e) = unpacked {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &dest).with_path(&dest, "move into store")?;
    Ok((dest, true))
}

/// Removes write permission from every file so hard links into generations
/// cannot be used to change the store.
fn make_read_only(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).with_path(dir, "list")? {
        let entry = entry.with_path(dir, "list")?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).with_path(&path, "stat")?;
        if meta.is_dir() {
            make_read_only(&path)?;
        } else if meta.is_file() {
            let mode = meta.permissions().mode() & !0o222;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .with_path(&path, "chmod")?;
        }
    }
    Ok(())
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
