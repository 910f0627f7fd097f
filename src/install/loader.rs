//! `--libraries image` (and `auto` when the host's glibc is too old): the
//! generation carries the image's dynamic loader in `lib/pgoci-deps`, and
//! each executable of the server's `bin/` is replaced by a patched copy
//! whose interpreter is that loader and whose RPATH is that directory
//! ([`crate::elf::patch`]). The store keeps the image's bytes as they were:
//! only the generation's copies change, and their digests go into the
//! generation's manifest, so `status --verify` checks them like the rest.

use crate::elf::patch::{self, Patch};
use crate::error::{Classify, IoContext, Kind, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An image loader pgoci cannot point the server at.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("the image's dynamic loader {} has no ld-* file name", loader.display())]
    NoLdName { loader: PathBuf },
    /// An executable of the image cannot be pointed at its loader.
    #[error(transparent)]
    Patch(patch::PatchError),
}

impl Classify for LoaderError {
    fn kind(&self) -> Kind {
        Kind::Integrity
    }
}

/// What install rewrote in a generation, kept in its runtime environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewritten {
    /// The loader the patched executables start (its final path).
    pub interpreter: PathBuf,
    /// Generation-relative paths of the patched executables.
    pub files: Vec<PathBuf>,
}

/// Largest executable pgoci patches (the patcher holds it in memory).
const MAX_EXECUTABLE: u64 = 512 << 20;

/// Copies the image's loader into `tmp/<deps>` and patches every
/// dynamically linked executable directly in `tmp/<bin>`; `dest` is where
/// the generation will live once renamed (the paths written into the files).
pub fn run_on_image_loader(
    tmp: &Path,
    dest: &Path,
    bin: &Path,
    deps: &Path,
    loader: &Path,
) -> Result<Rewritten> {
    let name = patch::loader_file_name(loader).ok_or_else(|| LoaderError::NoLdName {
        loader: loader.to_path_buf(),
    })?;
    let deps_dir = tmp.join(deps);
    fs::create_dir_all(&deps_dir).with_path(&deps_dir, "create")?;
    let loader_dst = deps_dir.join(name);
    if fs::symlink_metadata(&loader_dst).is_err() && fs::hard_link(loader, &loader_dst).is_err() {
        fs::copy(loader, &loader_dst).with_path(&loader_dst, "copy")?;
    }
    let the_patch = Patch {
        interpreter: dest.join(deps).join(name),
        library_dirs: vec![dest.join(deps)],
    };
    let mut rewritten = Rewritten {
        interpreter: the_patch.interpreter.clone(),
        files: Vec::new(),
    };
    let bin_dir = tmp.join(bin);
    let mut entries: Vec<PathBuf> = fs::read_dir(&bin_dir)
        .with_path(&bin_dir, "list")?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    entries.sort();
    for file in entries {
        let meta = fs::metadata(&file).with_path(&file, "stat")?;
        if meta.len() > MAX_EXECUTABLE {
            continue;
        }
        let data = fs::read(&file).with_path(&file, "read")?;
        if !patch::has_interpreter(&data) {
            continue; // a script or a static program: nothing to point elsewhere
        }
        let rel = file.strip_prefix(tmp).unwrap_or(&file).to_path_buf();
        let patched = patch::patch_bytes(&rel, &data, &the_patch).map_err(LoaderError::Patch)?;
        // A new inode: the store's file (a hard link here) stays as it was.
        let new = bin_dir.join(format!(
            ".{}.pgoci-patched",
            file.file_name().unwrap_or_default().to_string_lossy()
        ));
        fs::write(&new, &patched).with_path(&new, "write")?;
        fs::set_permissions(&new, fs::Permissions::from_mode(meta.mode() & 0o555))
            .with_path(&new, "chmod")?;
        fs::rename(&new, &file).with_path(&file, "replace with patched copy")?;
        rewritten.files.push(rel);
    }
    Ok(rewritten)
}
