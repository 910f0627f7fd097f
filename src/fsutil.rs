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

/// A file being written that the kernel starts writing to disk every
/// few megabytes (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not
/// wait), so the disk works while the network or the source does and the
/// fsync at the end waits for the tail only. Measured on a 1 GiB pull:
/// 1.64 s → 1.50 s. Advisory: an error changes nothing, the fsync decides.
pub struct Writeback {
    file: fs::File,
    pending: u64,
}

impl Writeback {
    /// Bytes let pile up between two writeback starts.
    const EVERY: u64 = 8 << 20;

    pub fn new(file: fs::File) -> Self {
        Writeback { file, pending: 0 }
    }

    pub fn file(&self) -> &fs::File {
        &self.file
    }

    pub fn into_file(self) -> fs::File {
        self.file
    }
}

impl Write for Writeback {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.pending += n as u64;
        if self.pending >= Self::EVERY {
            self.pending = 0;
            use std::os::fd::AsRawFd;
            // SAFETY: a syscall on a descriptor `self.file` keeps open; no
            // memory is passed (neither nix nor rustix wraps this call).
            unsafe {
                libc::sync_file_range(self.file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
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

/// The text right after the first `marker` in a file's bytes, as long as
/// `keep` accepts its characters: how a version is read out of a binary
/// (`postgres (PostgreSQL) 17.10`, glibc's `release version 2.36.`)
/// without running it.
pub fn text_after_marker(path: &Path, marker: &[u8], keep: impl Fn(u8) -> bool) -> Option<String> {
    let bytes = fs::read(path).ok()?;
    let at = bytes.windows(marker.len()).position(|w| w == marker)? + marker.len();
    Some(
        bytes[at..]
            .iter()
            .take_while(|b| keep(**b))
            .map(|&b| b as char)
            .collect(),
    )
}
