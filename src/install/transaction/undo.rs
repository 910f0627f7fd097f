//! How each journaled change is undone.

use super::*;

/// A file as it was before the transaction changed it.
pub(super) struct Saved {
    pub(super) bytes: Vec<u8>,
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

pub(super) enum Undo {
    /// Put the file back as it was (or remove it if it did not exist).
    File {
        path: PathBuf,
        previous: Option<Saved>,
    },
    /// A file replaced by [`Transaction::place_file`]: the old one is kept
    /// under `backup` (a hard link) until commit, or was absent.
    Placed {
        path: PathBuf,
        backup: Option<PathBuf>,
    },
    /// Point the link back (or remove it).
    Link {
        path: PathBuf,
        previous: Option<PathBuf>,
    },
    /// A directory this transaction created: removed if empty.
    CreatedDir(PathBuf),
    /// An empty directory this transaction removed: made again.
    RemovedDir {
        path: PathBuf,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A tree [`Transaction::remove_tree`] moved aside to `aside`: moved
    /// back on undo, deleted on commit.
    MovedAside {
        path: PathBuf,
        aside: PathBuf,
    },
    /// A directory a tool filled for this transaction: the entries that
    /// were not there before are removed, with their content.
    Filled {
        dir: PathBuf,
        before: BTreeSet<OsString>,
    },
    Owner {
        path: PathBuf,
        uid: u32,
        gid: u32,
    },
    Mode {
        path: PathBuf,
        mode: u32,
    },
    /// The manager read changed files: it reads the restored ones too.
    Reload(ServiceKind),
    /// The service's enablement before (systemd's enable symlink).
    Enabled {
        kind: ServiceKind,
        instance: InstanceName,
        was: bool,
    },
    /// A server started or stopped: the one this transaction left running
    /// is stopped, the one that ran before is started again.
    Server {
        kind: ServiceKind,
        left_running: Option<Box<ServiceSpec>>,
        ran_before: Option<Box<ServiceSpec>>,
    },
}

/// Undoes a file system change; what cannot be undone of a filled
/// directory goes to `out` entry by entry.
pub(super) fn undo_file(undo: Undo, out: &mut Undone) -> Result<()> {
    match undo {
        Undo::File {
            path,
            previous: Some(saved),
        } => {
            fsutil::write_atomic(&path, &saved.bytes)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(saved.mode))
                .with_path(&path, "chmod")?;
            chown(&path, saved.uid, saved.gid)
        }
        Undo::File {
            path,
            previous: None,
        }
        | Undo::Placed { path, backup: None }
        | Undo::Link {
            path,
            previous: None,
        } => fsutil::remove_file_if_exists(&path).map(|_| ()),
        Undo::Placed {
            path,
            backup: Some(backup),
        } => fs::rename(&backup, &path).with_path(&path, "restore"),
        Undo::MovedAside { path, aside } => fs::rename(&aside, &path).with_path(&path, "restore"),
        Undo::Link {
            path,
            previous: Some(target),
        } => fsutil::switch_symlink(&path, &target),
        Undo::CreatedDir(path) => match fs::remove_dir(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            // Someone else's files are in it: it stays theirs.
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                out.kept.push(path);
                Ok(())
            }
            Err(e) => Err(e).with_path(&path, "remove"),
        },
        Undo::RemovedDir {
            path,
            mode,
            uid,
            gid,
        } => {
            match fs::create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_path(&path, "create"),
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .with_path(&path, "chmod")?;
            chown(&path, uid, gid)
        }
        Undo::Filled { dir, before } => {
            let Some(now) = entries(&dir)? else {
                return Ok(());
            };
            for name in now.difference(&before) {
                let p = dir.join(name);
                let removed = match fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() => fsutil::remove_dir_if_exists(&p).map(|_| ()),
                    _ => fsutil::remove_file_if_exists(&p).map(|_| ()),
                };
                if let Err(e) = removed {
                    out.failures.push(e);
                }
            }
            Ok(())
        }
        Undo::Owner { path, uid, gid } => match fs::symlink_metadata(&path) {
            // Gone since: nothing to give back.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            _ => chown(&path, uid, gid),
        },
        Undo::Mode { path, mode } => {
            match fs::set_permissions(&path, fs::Permissions::from_mode(mode)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other.with_path(&path, "chmod"),
            }
        }
        Undo::Reload(_) | Undo::Enabled { .. } | Undo::Server { .. } => {
            Err(Error::internal("a service undo reached the file undo"))
        }
    }
}
