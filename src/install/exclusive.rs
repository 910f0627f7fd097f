//! One writer per prefix: every command that changes a prefix (install,
//! upgrade, rollback, uninstall, gc) holds an exclusive `flock` for the
//! whole of plan + apply, so facts cannot go stale under a plan, state is
//! never read-modify-written by two processes, and gc never removes what
//! an install in flight is about to record.
//!
//! The lock file lives in `/run/lock/pgoci/` (named by the prefix's path),
//! not under the prefix: a failed first install must leave nothing behind,
//! and the file must not vanish while someone waits on it.
//!
//! `/run/lock` (and `/tmp`, where there is none) is writable by every
//! user, and the lock is taken as root, so nothing there is trusted: the
//! directory must be a real directory (not a symlink) owned by this user
//! and writable by no one else, and the lock file is opened with
//! `O_NOFOLLOW | O_CLOEXEC`, created `0600`, and must be a regular file
//! owned by this user. Anything else is refused (exit 6), naming the path,
//! before a byte is written there. A user who is not root has a directory
//! of their own (`pgoci-<uid>`).

use super::layout::HostLayout;
use crate::digest::Digest;
use crate::error::{Classify, Error, IoContext, Kind, Result};
use fs4::fs_std::FileExt;
use std::fs::{self, File};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Held while a command changes a prefix; released on drop.
pub struct PrefixGuard {
    _file: File,
}

/// The directory of prefix locks for this user.
fn lock_dir() -> PathBuf {
    let uid = rustix::process::geteuid();
    let name = match uid.is_root() {
        true => "pgoci".to_string(),
        false => format!("pgoci-{uid}"),
    };
    match Path::new("/run/lock").is_dir() {
        true => Path::new("/run/lock").join(name),
        false => Path::new("/tmp").join(format!("{name}-locks")),
    }
}

/// Where the lock of a prefix is.
pub fn lock_path(layout: &HostLayout) -> PathBuf {
    let id = Digest::of_bytes(layout.prefix.as_os_str().as_encoded_bytes());
    lock_dir().join(format!("{}.lock", &id.hex()[..16]))
}

/// A lock path that is not what pgoci makes there: exit 6, naming it.
fn unsafe_lock(path: &Path, why: Unsafe) -> Error {
    PrefixLockError::Unsafe {
        path: path.to_path_buf(),
        why,
    }
    .into()
}

/// What is wrong with a lock path pgoci did not make as it makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unsafe {
    #[error("the directory is a symlink")]
    DirectorySymlink,
    #[error("it is not a directory")]
    NotADirectory,
    #[error("the directory belongs to uid {0}")]
    DirectoryOwner(u32),
    /// The permission bits (`mode & 0o777`).
    #[error("the directory is writable by others ({0:o})")]
    DirectoryWritable(u32),
    #[error("it is a symlink")]
    Symlink,
    #[error("it is not a regular file")]
    NotAFile,
    #[error("it belongs to uid {0}")]
    Owner(u32),
}

/// The prefix lock cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum PrefixLockError {
    /// Not what pgoci makes there (a symlink, another owner…).
    #[error("refusing the prefix lock {}: {why}", path.display())]
    Unsafe { path: PathBuf, why: Unsafe },
    /// Another pgoci holds it, and `--no-wait` was given.
    #[error("another pgoci is changing {} (lock {})", prefix.display(), lock.display())]
    Busy { prefix: PathBuf, lock: PathBuf },
}

impl Classify for PrefixLockError {
    fn kind(&self) -> Kind {
        Kind::Host
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            PrefixLockError::Unsafe { .. } => {
                "someone else made it; remove it (as root), then run again".into()
            }
            PrefixLockError::Busy { .. } => {
                "wait for it to finish, or run without --no-wait to wait".into()
            }
        })
    }
}

/// Creates the lock directory (`0700`) if it is missing, then checks it
/// is a real directory owned by this user that no one else may write to.
fn safe_dir(dir: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_path(dir, "create"),
    }
    let meta = fs::symlink_metadata(dir).with_path(dir, "inspect")?;
    if meta.file_type().is_symlink() {
        return Err(unsafe_lock(dir, Unsafe::DirectorySymlink));
    }
    if !meta.is_dir() {
        return Err(unsafe_lock(dir, Unsafe::NotADirectory));
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(unsafe_lock(dir, Unsafe::DirectoryOwner(meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_lock(
            dir,
            Unsafe::DirectoryWritable(meta.mode() & 0o777),
        ));
    }
    Ok(())
}

/// Opens (creating, `0600`) the lock file without following a symlink,
/// and checks it is a regular file of this user's.
fn open_lock(path: &Path) -> Result<File> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => unsafe_lock(path, Unsafe::Symlink),
            _ => Error::io(path, "open lock", e),
        })?;
    let meta = file.metadata().with_path(path, "inspect")?;
    if !meta.is_file() {
        return Err(unsafe_lock(path, Unsafe::NotAFile));
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(unsafe_lock(path, Unsafe::Owner(meta.uid())));
    }
    Ok(file)
}

impl PrefixGuard {
    /// Takes the lock; if another pgoci holds it, waits (telling `waiting`
    /// once) or, with `no_wait`, fails with exit 6.
    pub fn acquire(layout: &HostLayout, no_wait: bool, waiting: impl FnOnce()) -> Result<Self> {
        let path = lock_path(layout);
        if let Some(dir) = path.parent() {
            safe_dir(dir)?;
        }
        let file = open_lock(&path)?;
        match FileExt::try_lock_exclusive(&file) {
            Ok(true) => return Ok(PrefixGuard { _file: file }),
            Ok(false) => {}
            Err(e) => return Err(e).with_path(&path, "lock"),
        }
        if no_wait {
            return Err(PrefixLockError::Busy {
                prefix: layout.prefix.clone(),
                lock: path,
            }
            .into());
        }
        waiting();
        FileExt::lock_exclusive(&file).with_path(&path, "lock")?;
        Ok(PrefixGuard { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_lock_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        safe_dir(dir.path()).unwrap();
        let victim = dir.path().join("victim");
        let link = dir.path().join("x.lock");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = open_lock(&link).expect_err("refused");
        assert_eq!(err.kind, crate::Kind::Host, "{}", err.message);
        assert!(err.message.contains("symlink"), "{}", err.message);
        assert!(!victim.exists(), "the link's target was created");
        // A lock made here is the user's own, 0600.
        let own = dir.path().join("y.lock");
        open_lock(&own).unwrap();
        let mode = std::fs::metadata(&own).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_directory_others_may_write_to_or_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let err = safe_dir(&open).expect_err("refused");
        assert!(
            err.message.contains("writable by others"),
            "{}",
            err.message
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        let err = safe_dir(&link).expect_err("refused");
        assert!(err.message.contains("symlink"), "{}", err.message);
        assert!(matches!(
            err.typed::<PrefixLockError>(),
            Some(PrefixLockError::Unsafe {
                why: Unsafe::DirectorySymlink,
                ..
            })
        ));
        let err = safe_dir(&open).expect_err("refused");
        match err.typed::<PrefixLockError>() {
            Some(PrefixLockError::Unsafe { path, why }) => {
                assert_eq!(path, &open);
                assert_eq!(*why, Unsafe::DirectoryWritable(0o777));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "refusing the prefix lock {}: the directory is writable by others (777)",
                open.display()
            )
        );
        assert_eq!(
            err.hint.as_deref(),
            Some("someone else made it; remove it (as root), then run again")
        );
    }
}
