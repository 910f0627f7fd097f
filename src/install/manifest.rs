//! File manifests: the sha256 of every regular file of a store entry
//! (recorded once, when it is unpacked) and of every file of a generation
//! (derived from the store's, through the shared inodes of hard links).
//! `status --verify` re-hashes a generation against its manifest.

use crate::digest::Digest;
use crate::error::{Classify, IoContext, Kind, Result};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A manifest that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("an artifact holds a file name that is not UTF-8 ({0}); pgoci records names as UTF-8")]
    NotUtf8(#[source] serde_json::Error),
    #[error("manifest {} is corrupt: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl Classify for ManifestError {
    fn kind(&self) -> Kind {
        Kind::Integrity
    }
}

/// Relative path → digest of every regular file under a directory.
pub type FileDigests = BTreeMap<PathBuf, Digest>;

/// The manifest file kept inside a generation.
pub const GENERATION_MANIFEST: &str = ".pgoci-files.json";

/// The manifest file of a store entry (beside it, not in it).
pub fn store_manifest_path(entry: &Path) -> PathBuf {
    entry.with_extension("files.json")
}

/// Every regular file under `root`, relative, sorted.
fn regular_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in fs::read_dir(&dir).with_path(&dir, "list")? {
            let entry = entry.with_path(&dir, "list")?;
            let child = rel.join(entry.file_name());
            let t = entry
                .file_type()
                .with_path(&dir.join(entry.file_name()), "stat")?;
            if t.is_dir() {
                stack.push(child);
            } else if t.is_file() {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The digest of every regular file under `root`: taken from `known`
/// (by inode, recorded while the files were written) and hashed only for
/// files it lacks, so a fresh unpack is not read a second time.
pub fn hash_tree(root: &Path, known: &crate::unpack::InodeDigests) -> Result<FileDigests> {
    regular_files(root)?
        .into_iter()
        .map(|rel| {
            let path = root.join(&rel);
            let meta = fs::symlink_metadata(&path).with_path(&path, "stat")?;
            let digest = match known.get(&(meta.dev(), meta.ino())) {
                Some(d) => d.clone(),
                None => Digest::of_file(&path)?.0,
            };
            Ok((rel, digest))
        })
        .collect()
}

/// Writes a manifest as JSON.
pub fn write(path: &Path, files: &FileDigests) -> Result<()> {
    // The only way this fails is a file name that is not UTF-8: bad input.
    let bytes = serde_json::to_vec(files).map_err(ManifestError::NotUtf8)?;
    crate::fsutil::write_atomic(path, &bytes)
}

/// Reads a manifest.
pub fn read(path: &Path) -> Result<FileDigests> {
    let bytes = fs::read(path).with_path(path, "read manifest")?;
    serde_json::from_slice(&bytes).map_err(|source| {
        ManifestError::Corrupt {
            path: path.to_path_buf(),
            source,
        }
        .into()
    })
}

/// The manifest of a composed generation: each file's digest comes from the
/// store entry it is a hard link of; files that are copies are hashed.
pub fn for_generation(gen: &Path, store_entries: &[PathBuf]) -> Result<FileDigests> {
    let mut by_inode = BTreeMap::new();
    for entry in store_entries {
        for (rel, digest) in read(&store_manifest_path(entry))? {
            let meta = fs::metadata(entry.join(&rel)).with_path(&entry.join(&rel), "stat")?;
            by_inode.insert((meta.dev(), meta.ino()), digest);
        }
    }
    let mut out = FileDigests::new();
    for rel in regular_files(gen)? {
        if rel == Path::new(GENERATION_MANIFEST)
            || rel == Path::new(super::layout::GENERATION_LOCK)
            || rel == Path::new(super::layout::RUNTIME_ENV)
        {
            continue;
        }
        let path = gen.join(&rel);
        let meta = fs::metadata(&path).with_path(&path, "stat")?;
        let digest = match by_inode.get(&(meta.dev(), meta.ino())) {
            Some(d) => d.clone(),
            None => Digest::of_file(&path)?.0,
        };
        out.insert(rel, digest);
    }
    Ok(out)
}

/// Files of a generation that no longer match its manifest.
#[derive(Debug, Default, serde::Serialize)]
pub struct Drift {
    pub checked: usize,
    pub modified: Vec<PathBuf>,
    pub missing: Vec<PathBuf>,
}

/// Re-hashes a generation against its manifest.
pub fn verify_generation(gen: &Path) -> Result<Drift> {
    let manifest = read(&gen.join(GENERATION_MANIFEST))?;
    let mut drift = Drift::default();
    for (rel, want) in &manifest {
        let path = gen.join(rel);
        drift.checked += 1;
        match Digest::of_file(&path) {
            Ok((got, _)) if &got == want => {}
            Ok(_) => drift.modified.push(rel.clone()),
            Err(_) => drift.missing.push(rel.clone()),
        }
    }
    Ok(drift)
}
