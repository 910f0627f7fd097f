//! One writer per prefix: every command that changes a prefix (install,
//! upgrade, rollback, uninstall, gc) holds an exclusive `flock` for the
//! whole of plan + apply, so facts cannot go stale under a plan, state is
//! never read-modify-written by two processes, and gc never removes what
//! an install in flight is about to record.
//!
//! The lock file lives in `/run/lock/pgoci/` (named by the prefix's path),
//! not under the prefix: a failed first install must leave nothing behind,
//! and the file must not vanish while someone waits on it.

use super::layout::HostLayout;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use fs4::fs_std::FileExt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Held while a command changes a prefix; released on drop.
pub struct PrefixGuard {
    _file: File,
}

/// Where the lock of a prefix is.
pub fn lock_path(layout: &HostLayout) -> PathBuf {
    let dir = match Path::new("/run/lock").is_dir() {
        true => Path::new("/run/lock/pgoci"),
        false => Path::new("/tmp/pgoci-locks"),
    };
    let id = Digest::of_bytes(layout.prefix.as_os_str().as_encoded_bytes());
    dir.join(format!("{}.lock", &id.hex()[..16]))
}

impl PrefixGuard {
    /// Takes the lock; if another pgoci holds it, waits (telling `waiting`
    /// once) or, with `no_wait`, fails with exit 6.
    pub fn acquire(layout: &HostLayout, no_wait: bool, waiting: impl FnOnce()) -> Result<Self> {
        let path = lock_path(layout);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_path(dir, "create")?;
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_path(&path, "open lock")?;
        match FileExt::try_lock_exclusive(&file) {
            Ok(true) => return Ok(PrefixGuard { _file: file }),
            Ok(false) => {}
            Err(e) => return Err(e).with_path(&path, "lock"),
        }
        if no_wait {
            return Err(Error::host(format!(
                "another pgoci is changing {} (lock {})",
                layout.prefix.display(),
                path.display()
            ))
            .hint("wait for it to finish, or run without --no-wait to wait"));
        }
        waiting();
        FileExt::lock_exclusive(&file).with_path(&path, "lock")?;
        Ok(PrefixGuard { _file: file })
    }
}
