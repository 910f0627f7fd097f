//! Small file operations every module needs, all crash-safe: a file is
//! written to a temporary name, synced, and renamed over the old one, so a
//! reader sees the old content or the new, never half of either.

use crate::error::{IoContext, Result};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes a file by temp + fsync + rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let mut f = fs::File::create(&tmp).with_path(&tmp, "create")?;
    f.write_all(bytes).with_path(&tmp, "write")?;
    f.sync_all().with_path(&tmp, "sync")?;
    fs::rename(&tmp, path).with_path(path, "write")
}

/// Writes a file atomically with `mode`, creating its parent, but only if
/// its content differs. Returns whether it was written.
pub fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> Result<bool> {
    if fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_path(parent, "create")?;
    }
    write_atomic(path, bytes)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).with_path(path, "chmod")?;
    Ok(true)
}

/// Points `link` at `target` atomically (new symlink, then rename over).
pub fn switch_symlink(link: &Path, target: &Path) -> Result<()> {
    let tmp = link.with_file_name(format!(".current.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).with_path(&tmp, "create symlink")?;
    fs::rename(&tmp, link).with_path(link, "switch")
}

/// Removes a file; absent is fine. Returns whether it existed.
pub fn remove_file_if_exists(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_path(path, "remove"),
    }
}

/// Removes a directory tree; absent is fine. Returns whether it existed.
pub fn remove_dir_if_exists(path: &Path) -> Result<bool> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_path(path, "remove"),
    }
}
