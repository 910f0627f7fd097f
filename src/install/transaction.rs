//! A journal of what an apply changed, so a failure puts the host back the
//! way it was: files and the `current` link get their old content, what
//! was created is removed, and a server that was stopped or restarted on
//! the new generation is brought back on the old one. Rolled back on drop
//! unless committed (the idea of rustup's `transaction.rs`), and
//! explicitly by [`Transaction::rollback`] to learn how it went.
//!
//! Store entries and the service user are kept: the first is
//! content-addressed and reclaimed by `gc`, the second may be shared.

use super::layout::HostLayout;
use super::service::{self, ServiceKind, ServiceSpec};
use crate::error::{IoContext, Result};
use crate::fsutil;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

enum Undo {
    /// Put the file back (or remove it if it did not exist).
    File {
        path: PathBuf,
        previous: Option<(Vec<u8>, u32)>,
    },
    /// Point the link back (or remove it).
    Link {
        path: PathBuf,
        previous: Option<PathBuf>,
    },
    /// Remove a directory this transaction created, with what is in it.
    Dir(PathBuf),
    /// Remove a directory this transaction created on the way to another,
    /// only if it is empty by then (someone else may have used it since).
    EmptyDir(PathBuf),
    /// Empty a directory that existed, empty, before this transaction
    /// filled it (a mount point given as the data directory).
    Contents(PathBuf),
}

/// A server this transaction touched: the new one to stop, and the old one
/// to start again, if there was one.
struct ServerChange {
    kind: ServiceKind,
    new: ServiceSpec,
    old: Option<ServiceSpec>,
}

/// What an apply changed so far.
pub struct Transaction {
    layout: HostLayout,
    journal: Vec<Undo>,
    reload: Option<ServiceKind>,
    server: Option<ServerChange>,
    forget: Option<(ServiceKind, crate::names::InstanceName)>,
    committed: bool,
}

impl Transaction {
    pub fn new(layout: &HostLayout) -> Self {
        Transaction {
            layout: layout.clone(),
            journal: Vec::new(),
            reload: None,
            server: None,
            forget: None,
            committed: false,
        }
    }

    /// Remembers a file's content before it is written or removed.
    pub fn save_file(&mut self, path: &Path) -> Result<()> {
        let previous = match fs::read(path) {
            Ok(bytes) => {
                let mode = fs::metadata(path)
                    .with_path(path, "stat")?
                    .permissions()
                    .mode();
                Some((bytes, mode & 0o7777))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_path(path, "read"),
        };
        self.journal.push(Undo::File {
            path: path.to_path_buf(),
            previous,
        });
        Ok(())
    }

    /// Remembers where a symlink pointed before it is switched.
    pub fn save_link(&mut self, path: &Path) {
        self.journal.push(Undo::Link {
            path: path.to_path_buf(),
            previous: fs::read_link(path).ok(),
        });
    }

    /// Creates a directory (and parents) and, if it did not exist, records
    /// it for removal on rollback. Returns whether it was created.
    pub fn create_dir(&mut self, path: &Path) -> Result<bool> {
        if path.exists() {
            return Ok(false);
        }
        // The missing ancestors go only if nothing else lives in them by
        // then; the directory itself goes with what this run put in it.
        let mut missing = Vec::new();
        let mut at = path.to_path_buf();
        while let Some(parent) = at.parent() {
            if parent.exists() {
                break;
            }
            missing.push(parent.to_path_buf());
            at = parent.to_path_buf();
        }
        fs::create_dir_all(path).with_path(path, "create")?;
        self.journal
            .extend(missing.into_iter().rev().map(Undo::EmptyDir));
        self.journal.push(Undo::Dir(path.to_path_buf()));
        Ok(true)
    }

    /// An existing empty directory this run will fill: emptied again on
    /// rollback, never removed.
    pub fn fill_empty_dir(&mut self, path: &Path) {
        self.journal.push(Undo::Contents(path.to_path_buf()));
    }

    /// A first install: on rollback the service manager forgets the
    /// instance too (systemd's enable symlink).
    pub fn forget_on_undo(&mut self, kind: ServiceKind, instance: &crate::names::InstanceName) {
        self.forget = Some((kind, instance.clone()));
    }

    /// Records a directory made by someone else for this transaction.
    pub fn created(&mut self, path: &Path) {
        self.journal.push(Undo::Dir(path.to_path_buf()));
    }

    /// The service manager's files changed: reload it on rollback too.
    pub fn service_files_changed(&mut self, kind: ServiceKind) {
        self.reload = Some(kind);
    }

    /// The server is about to run on `new`; `old` ran before (if any).
    pub fn server_changing(
        &mut self,
        kind: ServiceKind,
        new: ServiceSpec,
        old: Option<ServiceSpec>,
    ) {
        self.server = Some(ServerChange { kind, new, old });
    }

    /// Keeps every change.
    pub fn commit(mut self) {
        self.committed = true;
    }

    /// Undoes every change, newest first. Returns the generation whose
    /// server was started again, if one was; fails if some undo failed
    /// (the rest is still undone).
    pub fn rollback(mut self) -> Result<Option<String>> {
        self.committed = true;
        self.undo()
    }

    fn undo(&mut self) -> Result<Option<String>> {
        let manager = self
            .server
            .as_ref()
            .map(|s| service::manager(s.kind, &self.layout));
        if let (Some(m), Some(s)) = (&manager, &self.server) {
            // The new server may be half up; it must not hold the data dir.
            let _ = m.stop(&s.new);
        }
        if let Some((kind, instance)) = &self.forget {
            let _ = service::manager(*kind, &self.layout).forget(instance);
        }
        let mut first_error = None;
        for undo in self.journal.drain(..).rev() {
            if let Err(e) = undo_one(undo) {
                first_error.get_or_insert(e);
            }
        }
        if let Some(kind) = self.reload {
            if let Err(e) = service::manager(kind, &self.layout).reload() {
                first_error.get_or_insert(e);
            }
        }
        let mut restarted = None;
        if let (Some(m), Some(ServerChange { old: Some(old), .. })) = (&manager, &self.server) {
            match m.restart(old) {
                Ok(()) => {
                    // The component after `generations/` (a rootfs server's
                    // bin lies deeper inside its generation).
                    let parts: Vec<_> = old.bin.components().collect();
                    restarted = parts
                        .windows(2)
                        .find(|w| w[0].as_os_str() == "generations")
                        .map(|w| w[1].as_os_str().to_string_lossy().into_owned());
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(restarted),
        }
    }
}

fn undo_one(undo: Undo) -> Result<()> {
    match undo {
        Undo::File {
            path,
            previous: Some((bytes, mode)),
        } => {
            fsutil::write_atomic(&path, &bytes)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).with_path(&path, "chmod")
        }
        Undo::File {
            path,
            previous: None,
        } => fsutil::remove_file_if_exists(&path).map(|_| ()),
        Undo::Link {
            path,
            previous: Some(target),
        } => fsutil::switch_symlink(&path, &target),
        Undo::Link {
            path,
            previous: None,
        } => fsutil::remove_file_if_exists(&path).map(|_| ()),
        Undo::Dir(path) => fsutil::remove_dir_if_exists(&path).map(|_| ()),
        Undo::EmptyDir(path) => {
            // Not empty: someone else's now; left alone.
            let _ = fs::remove_dir(&path);
            Ok(())
        }
        Undo::Contents(path) => {
            for entry in fs::read_dir(&path).with_path(&path, "read")? {
                let entry = entry.with_path(&path, "read")?;
                let p = entry.path();
                if entry.file_type().with_path(&p, "stat")?.is_dir() {
                    fsutil::remove_dir_if_exists(&p)?;
                } else {
                    fsutil::remove_file_if_exists(&p)?;
                }
            }
            Ok(())
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.committed {
            if let Err(e) = self.undo() {
                tracing::error!("undoing an unfinished change failed: {}", e.message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_without_commit_restores_files_links_and_removes_new_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let layout = HostLayout::new(d, Path::new("/p"));
        fs::write(d.join("conf"), "old").unwrap();
        std::os::unix::fs::symlink("gen1", d.join("current")).unwrap();
        {
            let mut tx = Transaction::new(&layout);
            tx.save_file(&d.join("conf")).unwrap();
            fs::write(d.join("conf"), "new").unwrap();
            tx.save_file(&d.join("state")).unwrap();
            fs::write(d.join("state"), "x").unwrap();
            tx.save_link(&d.join("current"));
            fsutil::switch_symlink(&d.join("current"), Path::new("gen2")).unwrap();
            assert!(tx.create_dir(&d.join("a/b/c")).unwrap());
            // dropped here: an early return or a panic
        }
        assert_eq!(fs::read_to_string(d.join("conf")).unwrap(), "old");
        assert!(!d.join("state").exists());
        assert_eq!(fs::read_link(d.join("current")).unwrap(), Path::new("gen1"));
        assert!(!d.join("a").exists());
    }

    #[test]
    fn committed_changes_stay() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut tx = Transaction::new(&HostLayout::new(d, Path::new("/p")));
        tx.save_file(&d.join("f")).unwrap();
        fs::write(d.join("f"), "new").unwrap();
        tx.create_dir(&d.join("made")).unwrap();
        tx.commit();
        assert_eq!(fs::read_to_string(d.join("f")).unwrap(), "new");
        assert!(d.join("made").is_dir());
    }
}
