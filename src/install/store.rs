//! The store: each layer unpacked once, and each artifact (image) composed
//! from its layers by hard links, so images sharing layers (two majors on
//! one base, extensions built on one base) share their bytes.
//!
//! ```text
//! store/layers/<layer-hex>/        one layer as it came (unpack::layer), sealed
//! store/<manifest-hex>/            an artifact's root: its layers applied in
//!                                  order, files hard links of the layers'
//! store/<manifest-hex>.files.json  the digest of every file of that root
//! store/<manifest-hex>.layers      the layers it was composed from (for gc)
//! ```
//!
//! Everything is immutable once there (files read-only). Each entry is
//! made in a temporary directory renamed into place, so it is whole or
//! absent; a run killed midway leaves temporary directories that the next
//! run removes, and layers already stored are reused.

use super::layout::HostLayout;
use crate::blobs::BlobSource;
use crate::digest::Digest;
use crate::error::{Classify, Error, IoContext, Kind, Result};
use crate::lock::{Blob, Pinned};
use crate::progress::{Phase, Reporter, ReportingReader};
use crate::unpack::{layer, seal, Budget, Limits, Select};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// What the store refuses.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("artifact {digest} unpacks to more than {cap} bytes, the cap for one artifact")]
    TooBig { digest: Digest, cap: u64 },
    #[error("{entry} is not a store entry")]
    NotAnEntry { entry: String },
}

impl Classify for StoreError {
    fn kind(&self) -> Kind {
        match self {
            StoreError::TooBig { .. } => Kind::Integrity,
            StoreError::NotAnEntry { .. } => Kind::Internal,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            StoreError::TooBig { .. } => Some("the image expands far beyond any PostgreSQL artifact (a decompression bomb?); check where it comes from".into()),
            StoreError::NotAnEntry { .. } => None,
        }
    }
}

/// The directory of stored layers, inside the store.
pub const LAYERS: &str = "layers";

/// Layers of one artifact unpacked at once (each uses two threads).
const PARALLEL_LAYERS: usize = 3;

/// `store/layers/`.
pub fn layers_dir(layout: &HostLayout) -> PathBuf {
    layout.store().join(LAYERS)
}

/// The stored layer of `digest`.
pub fn layer_dir(layout: &HostLayout, digest: &Digest) -> PathBuf {
    layers_dir(layout).join(digest.hex())
}

/// The list of layers an artifact entry was composed from (beside it).
fn layers_list_path(entry: &Path) -> PathBuf {
    entry.with_extension("layers")
}

/// Whether an artifact is unpacked in the store (whole, with its manifest).
pub fn has(layout: &HostLayout, digest: &Digest) -> bool {
    let dest = layout.store().join(digest.hex());
    dest.is_dir() && super::manifest::store_manifest_path(&dest).is_file()
}

/// Whether a layer is stored (whole).
pub fn has_layer(layout: &HostLayout, digest: &Digest) -> bool {
    layer_dir(layout, digest).join(layer::OPS).is_file()
}

/// Unpacks `pinned` into the store unless it is already there; returns the
/// entry's directory and whether it was created now. Layers the store
/// lacks are unpacked (side by side, each verified against its digest
/// while it is read); the entry is then composed from the stored layers.
/// Layers are stored whole; `select` picks what of them the entry holds.
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
    let layers = layers_dir(layout);
    fs::create_dir_all(&layers).with_path(&layers, "create store")?;
    clean_temp(&layers);
    let stored = ensure_layers(layout, &pinned.layers, source, reporter)?;
    crate::failpoint::hit("after-layers");
    // The cap bounds one artifact, whichever of its layers were stored before.
    let cap = Limits::default().max_unpacked_bytes;
    let total: u64 = stored.iter().map(|(_, bytes)| bytes).sum();
    if total > cap {
        return Err(StoreError::TooBig {
            digest: pinned.digest.clone(),
            cap,
        }
        .into());
    }
    let tmp = temp_path(&store, &pinned.digest);
    let composed = (|| {
        let layers: Vec<(PathBuf, Digest)> = stored
            .into_iter()
            .zip(&pinned.layers)
            .map(|((dir, _), blob)| (dir, blob.digest.clone()))
            .collect();
        let digests = layer::compose(&layers, &tmp, select)?;
        // Read-only, no setuid/setgid/sticky or world-writable bits: hard
        // links into generations cannot be used to change the store.
        seal(&tmp)?;
        // Every file's digest, recorded when its layer was stored, for
        // `status --verify` later.
        let files = super::manifest::hash_tree(&tmp, &digests)?;
        super::manifest::write(&super::manifest::store_manifest_path(&dest), &files)?;
        let list: String = pinned
            .layers
            .iter()
            .map(|b| format!("{}\n", b.digest.hex()))
            .collect();
        crate::fsutil::write_atomic(&layers_list_path(&dest), list.as_bytes())
    })();
    if let Err(e) = composed {
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

/// A stored layer's directory and decompressed size.
type StoredLayer = (PathBuf, u64);

/// Stores the layers the store lacks, a few at a time; returns each
/// layer's directory and decompressed size, in order.
fn ensure_layers(
    layout: &HostLayout,
    blobs: &[Blob],
    source: &dyn BlobSource,
    reporter: &dyn Reporter,
) -> Result<Vec<StoredLayer>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results: Vec<Mutex<Option<Result<StoredLayer>>>> =
        blobs.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_LAYERS.min(blobs.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= blobs.len() || failed.load(Ordering::Relaxed) {
                    break;
                }
                let result = ensure_layer(layout, &blobs[i], source, reporter);
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            });
        }
    });
    // The first error in layer order; layers skipped after it have none.
    let mut out = Vec::with_capacity(blobs.len());
    let mut skipped = false;
    for r in results {
        match r.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(r) => out.push(r?),
            None => skipped = true,
        }
    }
    if skipped {
        return Err(Error::internal("a layer was neither stored nor failed"));
    }
    Ok(out)
}

/// Stores one layer unless it is there; returns its directory and size.
fn ensure_layer(
    layout: &HostLayout,
    blob: &Blob,
    source: &dyn BlobSource,
    reporter: &dyn Reporter,
) -> Result<StoredLayer> {
    let dir = layer_dir(layout, &blob.digest);
    // Two artifacts of one run sharing this layer: one stores it, the
    // other waits and finds it.
    let busy = in_flight(&blob.digest);
    let _turn = busy.lock().unwrap_or_else(|e| e.into_inner());
    if has_layer(layout, &blob.digest) {
        return Ok((dir.clone(), layer::stored_bytes(&dir)?));
    }
    if dir.exists() {
        // Not whole (it cannot be, entries appear by rename): start over.
        fs::remove_dir_all(&dir).with_path(&dir, "remove")?;
    }
    let tmp = temp_path(&layers_dir(layout), &blob.digest);
    let stored = (|| {
        let raw = source.open_raw(blob)?;
        let reader = ReportingReader::new(raw, Phase::Unpack, &blob.digest, blob.size, reporter);
        let bytes = layer::store_layer(reader, blob, &tmp, &mut Budget::default())?;
        seal(&tmp)?;
        Ok(bytes)
    })();
    let bytes = match stored {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = fs::rename(&tmp, &dir) {
        let _ = fs::remove_dir_all(&tmp);
        // Another pgoci stored the same layer meanwhile: theirs is as good.
        if has_layer(layout, &blob.digest) {
            return Ok((dir.clone(), layer::stored_bytes(&dir)?));
        }
        return Err(e).with_path(&dir, "move into store");
    }
    Ok((dir, bytes))
}

/// The lock that serialises work on one layer within this process.
fn in_flight(digest: &Digest) -> Arc<Mutex<()>> {
    static BUSY: OnceLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut map = BUSY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    map.entry(digest.hex().to_string()).or_default().clone()
}

/// A fresh `.tmp-<short>-<n>-<pid>` path in `dir` ([`clean_temp`] reads
/// the pid at the end): unique within this process too, where two threads
/// may store the same digest.
fn temp_path(dir: &Path, digest: &Digest) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        ".tmp-{}-{n}-{}",
        digest.short(),
        std::process::id()
    ))
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

/// Removes what killed runs left in the store and layer directories, and
/// the layer directory itself once it holds nothing.
pub fn clean(layout: &HostLayout) {
    clean_temp(&layout.store());
    clean_temp(&layers_dir(layout));
    let _ = fs::remove_dir(layers_dir(layout)); // only when empty
}

/// The layers an artifact entry was composed from (none for an entry
/// unpacked before the store kept layers).
fn layers_of(entry: &Path) -> Vec<String> {
    fs::read_to_string(layers_list_path(entry))
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Store entries nothing uses, each with the bytes removing it frees:
/// artifact entries not in `used` (manifest hexes), and stored layers
/// (`layers/<hex>`) no remaining artifact entry was composed from.
pub fn unused(layout: &HostLayout, used: &BTreeSet<String>) -> BTreeMap<String, u64> {
    let store = layout.store();
    let mut doomed = Vec::new();
    let mut kept_layers = BTreeSet::new();
    if let Ok(entries) = fs::read_dir(&store) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.')
                || name == LAYERS
                || name.ends_with(".files.json")
                || name.ends_with(".layers")
                || !e.file_type().is_ok_and(|t| t.is_dir())
            {
                continue;
            }
            if used.contains(&name) {
                kept_layers.extend(layers_of(&e.path()));
            } else {
                doomed.push((name, e.path()));
            }
        }
    }
    if let Ok(entries) = fs::read_dir(layers_dir(layout)) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !name.starts_with('.') && !kept_layers.contains(&name) {
                doomed.push((format!("{LAYERS}/{name}"), e.path()));
            }
        }
    }
    freed_bytes(&doomed)
}

/// What removing all of `entries` frees, per entry: a file's bytes count
/// once every link to it is among them (an artifact's files are links of
/// its layers', and of generations' while one uses it).
fn freed_bytes(entries: &[(String, PathBuf)]) -> BTreeMap<String, u64> {
    // (dev, ino) -> (links seen, links in all, size, entry seen last in)
    let mut inodes: HashMap<(u64, u64), (u64, u64, u64, usize)> = HashMap::new();
    let mut out: BTreeMap<String, u64> = entries.iter().map(|(n, _)| (n.clone(), 0)).collect();
    for (i, (name, path)) in entries.iter().enumerate() {
        let mut stack = vec![path.clone()];
        while let Some(p) = stack.pop() {
            let Ok(meta) = fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                if let Ok(rd) = fs::read_dir(&p) {
                    stack.extend(rd.flatten().map(|e| e.path()));
                }
            } else if meta.is_file() {
                let seen = inodes.entry((meta.dev(), meta.ino())).or_insert((
                    0,
                    meta.nlink(),
                    meta.len(),
                    i,
                ));
                seen.0 += 1;
                seen.3 = i;
            } else {
                *out.get_mut(name).expect("listed") += meta.len();
            }
        }
    }
    for (seen, links, size, last) in inodes.into_values() {
        if seen >= links {
            *out.get_mut(&entries[last].0).expect("listed") += size;
        }
    }
    out
}

/// Removes one store entry named as [`unused`] names them: moved out of
/// sight first (a rename), then deleted, so a run killed midway never
/// leaves a half entry that looks whole. Returns whether it was there.
pub fn remove(layout: &HostLayout, entry: &str) -> Result<bool> {
    let (parent, name) = match entry.strip_prefix(&format!("{LAYERS}/")) {
        Some(hex) => (layers_dir(layout), hex),
        None => (layout.store(), entry),
    };
    if name.is_empty() || name.starts_with('.') || name.contains('/') || name == LAYERS {
        return Err(StoreError::NotAnEntry {
            entry: entry.to_string(),
        }
        .into());
    }
    let dir = parent.join(name);
    if parent == layout.store() {
        crate::fsutil::remove_file_if_exists(&super::manifest::store_manifest_path(&dir))?;
        crate::fsutil::remove_file_if_exists(&layers_list_path(&dir))?;
    }
    let doomed = parent.join(format!(".tmp-gc-{name}-{}", std::process::id()));
    match fs::rename(&dir, &doomed) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_path(&dir, "remove"),
    }
    crate::failpoint::hit("gc-after-rename");
    crate::fsutil::remove_dir_if_exists(&doomed)?;
    if parent != layout.store() {
        let _ = fs::remove_dir(&parent); // the last layer gone: only when empty
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
