//! Every change an apply makes to the host goes through a [`Transaction`],
//! which makes the change and journals how to undo it in the same call, so
//! no change can be made without its undo (the idea of rustup's
//! `transaction.rs`): files written, modified or removed
//! ([`write_file`](Transaction::write_file),
//! [`remove_file`](Transaction::remove_file),
//! [`place_file`](Transaction::place_file)), the `current` link
//! ([`switch_link`](Transaction::switch_link)), directories made or removed
//! ([`create_dir`](Transaction::create_dir),
//! [`remove_dir`](Transaction::remove_dir)), whole trees removed
//! ([`remove_tree`](Transaction::remove_tree): moved aside, deleted only at
//! commit), directories a tool fills on
//! the transaction's behalf ([`fill_dir`](Transaction::fill_dir): initdb,
//! compose, unpack), owners and modes ([`chown`](Transaction::chown),
//! [`chmod`](Transaction::chmod)), and the service: its manager's reload,
//! enablement and whether it runs ([`enable`](Transaction::enable),
//! [`disable`](Transaction::disable), [`start`](Transaction::start),
//! [`restart`](Transaction::restart), [`stop`](Transaction::stop)), each
//! recording the previous *state* (enabled or not, running or not).
//!
//! Undo runs newest first. A directory is removed only if this
//! transaction created it and only once it is empty again: what a tool
//! put into it is removed by its `fill_dir` entry (only the entries that
//! appeared after that call), and what someone else put there keeps the
//! directory (reported, never removed). Two things wait for the end of the
//! undo: the service manager's reload (it must read the restored files)
//! and starting again a server that ran before (it must start on them);
//! a server this transaction started is stopped at its place in the
//! journal, before the files and data it runs on are put back.
//!
//! Every undo that fails is reported in [`Undone`], with its path; none
//! stops the rest. Rolled back on drop unless committed, and explicitly by
//! [`Transaction::rollback`] to learn how it went.
//!
//! Store entries and the service user are kept outside: the first is
//! content-addressed and reclaimed by `gc` (a store this transaction
//! created is filled, so a failed first install leaves none), the second
//! may be shared.

use super::layout::HostLayout;
use super::service::{self, ServiceKind, ServiceManager, ServiceSpec};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::names::InstanceName;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

mod error;
mod undo;
pub use error::TransactionError;
use undo::{undo_file, Saved, Undo};

/// Makes the manager of a kind (the real ones, or a test's).
type Managers = Box<dyn Fn(ServiceKind) -> Box<dyn ServiceManager>>;

/// What an apply changed so far.
pub struct Transaction {
    journal: Vec<Undo>,
    managers: Managers,
    committed: bool,
}

/// How a rollback went.
#[derive(Debug, Default)]
pub struct Undone {
    /// The generation whose server was started again, if one was.
    pub restarted: Option<String>,
    /// Every undo that failed (each message names its path or service).
    pub failures: Vec<Error>,
    /// Directories this transaction created that were kept: they hold
    /// what it did not create.
    pub kept: Vec<PathBuf>,
}

impl Undone {
    /// The failures, then what was kept, as lines for people.
    pub fn warnings(&self) -> Vec<String> {
        self.failures
            .iter()
            .map(|e| format!("could not undo: {}", e.message))
            .chain(self.kept.iter().map(|p| {
                format!(
                    "kept {}: it holds files this run did not create",
                    p.display()
                )
            }))
            .collect()
    }
}

impl Transaction {
    pub fn new(layout: &HostLayout) -> Self {
        let layout = layout.clone();
        Self::with_managers(Box::new(move |kind| service::manager(kind, &layout)))
    }

    /// A transaction whose service operations go to `managers`.
    pub fn with_managers(managers: Managers) -> Self {
        Transaction {
            journal: Vec::new(),
            managers,
            committed: false,
        }
    }

    /// Writes `bytes` to `path` (atomically, with `mode`, making missing
    /// parents; a file that existed keeps its owner) unless it holds them
    /// already. Returns whether it wrote.
    pub fn write_file(&mut self, path: &Path, bytes: &[u8], mode: u32) -> Result<bool> {
        if let Some(target) = link_target(path)? {
            // A symlink (an admin's unit, say): replaced by the file, and
            // put back as the symlink it was.
            if fs::read(path).ok().as_deref() == Some(bytes) {
                return Ok(false);
            }
            self.journal.push(Undo::Link {
                path: path.to_path_buf(),
                previous: Some(target),
            });
            fsutil::write_atomic(path, bytes)?;
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).with_path(path, "chmod")?;
            return Ok(true);
        }
        let previous = saved(path)?;
        if previous.as_ref().map(|s| s.bytes.as_slice()) == Some(bytes) {
            return Ok(false);
        }
        if let Some(parent) = path.parent() {
            self.create_dir(parent)?;
        }
        // A file modified keeps its owner (initdb's postgresql.conf stays
        // the service user's); a new one is root's.
        let owner = previous.as_ref().map(|s| (s.uid, s.gid));
        self.journal.push(Undo::File {
            path: path.to_path_buf(),
            previous,
        });
        fsutil::write_atomic(path, bytes)?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).with_path(path, "chmod")?;
        if let Some((uid, gid)) = owner {
            let now = fs::metadata(path).with_path(path, "stat")?;
            if (now.uid(), now.gid()) != (uid, gid) {
                chown(path, uid, gid)?;
            }
        }
        Ok(true)
    }

    /// Removes a file; absent is fine. Returns whether it existed.
    pub fn remove_file(&mut self, path: &Path) -> Result<bool> {
        if let Some(target) = link_target(path)? {
            self.journal.push(Undo::Link {
                path: path.to_path_buf(),
                previous: Some(target),
            });
            fs::remove_file(path).with_path(path, "remove")?;
            return Ok(true);
        }
        let Some(previous) = saved(path)? else {
            return Ok(false);
        };
        self.journal.push(Undo::File {
            path: path.to_path_buf(),
            previous: Some(previous),
        });
        fs::remove_file(path).with_path(path, "remove")?;
        Ok(true)
    }

    /// Puts a copy of `from` at `path` with `mode` (a hard link where the
    /// file system allows): for big files, whose old version is kept as a
    /// hard link beside it until commit rather than read into memory.
    pub fn place_file(&mut self, path: &Path, from: &Path, mode: u32) -> Result<()> {
        let dir = path.parent().ok_or_else(|| TransactionError::NoParent {
            path: path.to_path_buf(),
        })?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        self.create_dir(dir)?;
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        fsutil::remove_file_if_exists(&tmp)?;
        if fs::hard_link(from, &tmp).is_err() {
            fs::copy(from, &tmp).with_path(&tmp, "copy")?;
        }
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).with_path(&tmp, "chmod")?;
        // Backups a killed run left (the prefix is held exclusively, so
        // none is another run's): the file in place is whole either way.
        let stale = format!(".{name}.undo-");
        for entry in fs::read_dir(dir).with_path(dir, "read")? {
            let entry = entry.with_path(dir, "read")?;
            if entry.file_name().to_string_lossy().starts_with(&stale) {
                fsutil::remove_file_if_exists(&entry.path())?;
            }
        }
        let backup = match fs::symlink_metadata(path) {
            Ok(_) => {
                let backup = dir.join(format!("{stale}{}", std::process::id()));
                if fs::hard_link(path, &backup).is_err() {
                    fs::copy(path, &backup).with_path(&backup, "copy")?;
                }
                Some(backup)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_path(path, "stat"),
        };
        self.journal.push(Undo::Placed {
            path: path.to_path_buf(),
            backup,
        });
        fs::rename(&tmp, path).with_path(path, "write")
    }

    /// Points the symlink `path` at `target` (atomically). Returns whether
    /// it changed. Refuses to replace anything that is not a symlink.
    pub fn switch_link(&mut self, path: &Path, target: &Path) -> Result<bool> {
        let previous = match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                Some(fs::read_link(path).with_path(path, "read")?)
            }
            Ok(_) => {
                return Err(TransactionError::NotASymlink {
                    path: path.to_path_buf(),
                }
                .into())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_path(path, "stat"),
        };
        if previous.as_deref() == Some(target) {
            return Ok(false);
        }
        self.journal.push(Undo::Link {
            path: path.to_path_buf(),
            previous,
        });
        fsutil::switch_symlink(path, target)?;
        Ok(true)
    }

    /// Creates a directory and its missing parents; each one made is
    /// removed on undo once it is empty (innermost first). Returns whether
    /// `path` was created.
    pub fn create_dir(&mut self, path: &Path) -> Result<bool> {
        if path.is_dir() {
            return Ok(false);
        }
        let mut missing = vec![path.to_path_buf()];
        let mut at = path;
        while let Some(parent) = at.parent() {
            if parent.as_os_str().is_empty() || parent.is_dir() {
                break;
            }
            missing.push(parent.to_path_buf());
            at = parent;
        }
        for dir in missing.into_iter().rev() {
            match fs::create_dir(&dir) {
                Ok(()) => self.journal.push(Undo::CreatedDir(dir)),
                // Made meanwhile by someone else: theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => return Err(e).with_path(&dir, "create"),
            }
        }
        Ok(true)
    }

    /// Removes an empty directory (made again, with its mode and owner, on
    /// undo); absent is fine. Returns whether it existed.
    pub fn remove_dir(&mut self, path: &Path) -> Result<bool> {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).with_path(path, "stat"),
        };
        fs::remove_dir(path).with_path(path, "remove")?;
        self.journal.push(Undo::RemovedDir {
            path: path.to_path_buf(),
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        });
        Ok(true)
    }

    /// Removes the directory tree `path` (absent is fine; returns whether it
    /// existed). It is renamed aside beside itself, one step however big,
    /// and deleted only at commit; undo renames it back. A tree a killed
    /// run left aside under the same name is deleted first: that run meant
    /// to remove it, and a re-run finishes what it began.
    pub fn remove_tree(&mut self, path: &Path) -> Result<bool> {
        finish_removal(path)?;
        let aside = aside_of(path)?;
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(TransactionError::NotADirectory {
                    path: path.to_path_buf(),
                }
                .into())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).with_path(path, "stat"),
        }
        fs::rename(path, &aside).with_path(path, "move aside")?;
        self.journal.push(Undo::MovedAside {
            path: path.to_path_buf(),
            aside,
        });
        Ok(true)
    }

    /// A tool run for this transaction (initdb, compose, unpack) is about
    /// to put entries into the existing directory `dir`: on undo, every
    /// entry that is not there now is removed, whole. Those there now stay.
    pub fn fill_dir(&mut self, dir: &Path) -> Result<()> {
        let before = entries(dir)?.unwrap_or_default();
        self.journal.push(Undo::Filled {
            dir: dir.to_path_buf(),
            before,
        });
        Ok(())
    }

    /// Gives `path` to `uid`:`gid` (the previous owner back on undo).
    pub fn chown(&mut self, path: &Path, uid: u32, gid: u32) -> Result<()> {
        let meta = fs::metadata(path).with_path(path, "stat")?;
        self.journal.push(Undo::Owner {
            path: path.to_path_buf(),
            uid: meta.uid(),
            gid: meta.gid(),
        });
        chown(path, uid, gid)
    }

    /// Sets `path`'s mode (the previous mode back on undo).
    pub fn chmod(&mut self, path: &Path, mode: u32) -> Result<()> {
        let meta = fs::metadata(path).with_path(path, "stat")?;
        self.journal.push(Undo::Mode {
            path: path.to_path_buf(),
            mode: meta.permissions().mode() & 0o7777,
        });
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).with_path(path, "chmod")
    }

    fn manager(&self, kind: ServiceKind) -> Box<dyn ServiceManager> {
        (self.managers)(kind)
    }

    /// Tells the manager its files changed; on undo it is told again,
    /// once the files are back.
    pub fn reload(&mut self, kind: ServiceKind) -> Result<()> {
        self.journal.push(Undo::Reload(kind));
        self.manager(kind).reload()
    }

    fn remember_enablement(&mut self, manager: &dyn ServiceManager, instance: &InstanceName) {
        if let Some(was) = manager.is_enabled(instance) {
            self.journal.push(Undo::Enabled {
                kind: manager.kind(),
                instance: instance.clone(),
                was,
            });
        }
    }

    /// Enables the instance's service (as it was on undo).
    pub fn enable(&mut self, kind: ServiceKind, instance: &InstanceName) -> Result<()> {
        let manager = self.manager(kind);
        self.remember_enablement(manager.as_ref(), instance);
        manager.enable(instance)
    }

    /// Disables the instance's service (as it was on undo).
    pub fn disable(&mut self, kind: ServiceKind, instance: &InstanceName) -> Result<()> {
        let manager = self.manager(kind);
        self.remember_enablement(manager.as_ref(), instance);
        manager.disable(instance)
    }

    /// Starts `spec`'s server (enabling it, as the manager does): on undo
    /// it is stopped again unless it ran before, and its enablement is
    /// put back.
    pub fn start(&mut self, kind: ServiceKind, spec: &ServiceSpec) -> Result<()> {
        let manager = self.manager(kind);
        self.remember_enablement(manager.as_ref(), &spec.instance);
        if !manager.is_active(spec) {
            self.journal.push(Undo::Server {
                kind,
                left_running: Some(Box::new(spec.clone())),
                ran_before: None,
            });
        }
        manager.start(spec)
    }

    /// Restarts the instance's server on `spec`; `previous` is the server
    /// that may run now (another generation's), `None` when it is `spec`'s
    /// own. On undo the new server is stopped, and the previous one is
    /// started again at the end if it ran.
    pub fn restart(
        &mut self,
        kind: ServiceKind,
        spec: &ServiceSpec,
        previous: Option<&ServiceSpec>,
    ) -> Result<()> {
        let manager = self.manager(kind);
        self.remember_enablement(manager.as_ref(), &spec.instance);
        let before = previous.unwrap_or(spec);
        let ran = manager.is_active(before);
        self.journal.push(Undo::Server {
            kind,
            left_running: Some(Box::new(spec.clone())),
            ran_before: ran.then(|| Box::new(before.clone())),
        });
        manager.restart(spec)
    }

    /// Stops `spec`'s server if it runs (started again at the end of an
    /// undo). Returns whether it ran.
    pub fn stop(&mut self, kind: ServiceKind, spec: &ServiceSpec) -> Result<bool> {
        let manager = self.manager(kind);
        if manager.is_active(spec) {
            self.journal.push(Undo::Server {
                kind,
                left_running: None,
                ran_before: Some(Box::new(spec.clone())),
            });
        }
        manager.stop(spec)
    }

    /// Keeps every change.
    pub fn commit(mut self) {
        self.committed = true;
        for undo in self.journal.drain(..) {
            let removed = match undo {
                Undo::Placed {
                    backup: Some(backup),
                    ..
                } => fsutil::remove_file_if_exists(&backup),
                Undo::MovedAside { aside, .. } => fsutil::remove_dir_if_exists(&aside),
                _ => Ok(false),
            };
            if let Err(e) = removed {
                tracing::warn!("{}", e.message);
            }
        }
    }

    /// Undoes every change, newest first, and says how that went: every
    /// undo is tried, whatever failed before it.
    pub fn rollback(mut self) -> Undone {
        self.committed = true;
        self.undo()
    }

    fn undo(&mut self) -> Undone {
        let mut out = Undone::default();
        let mut reload: Vec<ServiceKind> = Vec::new();
        let mut bring_back: Vec<(ServiceKind, Box<ServiceSpec>)> = Vec::new();
        for undo in std::mem::take(&mut self.journal).into_iter().rev() {
            let result = match undo {
                Undo::Reload(kind) => {
                    if !reload.contains(&kind) {
                        reload.push(kind);
                    }
                    Ok(())
                }
                Undo::Server {
                    kind,
                    left_running,
                    ran_before,
                } => {
                    if let Some(spec) = ran_before {
                        bring_back.push((kind, spec));
                    }
                    match left_running {
                        // The server this run started must not hold the
                        // data while it is put back.
                        Some(spec) => self.manager(kind).stop(&spec).map(|_| ()).map_err(|e| {
                            e.context(format!("stopping the server of instance {}", spec.instance))
                        }),
                        None => Ok(()),
                    }
                }
                Undo::Enabled {
                    kind,
                    instance,
                    was,
                } => {
                    let manager = self.manager(kind);
                    match was {
                        true => manager.enable(&instance),
                        false => manager.disable(&instance),
                    }
                    .map_err(|e| e.context(format!("the service of instance {instance}")))
                }
                other => undo_file(other, &mut out),
            };
            if let Err(e) = result {
                out.failures.push(e);
            }
        }
        for kind in reload {
            if let Err(e) = self.manager(kind).reload() {
                out.failures.push(e);
            }
        }
        // Oldest first: the first server recorded is the one that ran.
        for (kind, spec) in bring_back.into_iter().rev() {
            let manager = self.manager(kind);
            // The failed start this run made counts against systemd's
            // start limit: forgotten, so the old server may start.
            manager.clear_failed(&spec.instance);
            match manager.restart(&spec) {
                Ok(()) => out.restarted = generation_of(&spec.bin).or(out.restarted),
                Err(e) => out.failures.push(e.context(format!(
                    "starting the previous server of instance {} again",
                    spec.instance
                ))),
            }
        }
        out
    }
}

/// Deletes what a [`Transaction::remove_tree`] of `path` left aside when
/// its run was killed before the commit (absent is fine): that run meant
/// to remove it. Returns whether there was one. What it held can be read
/// first through [`left_aside`].
pub fn finish_removal(path: &Path) -> Result<bool> {
    match left_aside(path)? {
        // Only a directory is what remove_tree leaves; anything else of
        // that name is not pgoci's, and stays.
        Some(aside) => fsutil::remove_dir_if_exists(&aside),
        None => Ok(false),
    }
}

/// Where a killed run's [`Transaction::remove_tree`] of `path` left it,
/// if it did.
pub fn left_aside(path: &Path) -> Result<Option<PathBuf>> {
    let aside = aside_of(path)?;
    let is_dir = fs::symlink_metadata(&aside).is_ok_and(|m| m.is_dir());
    Ok(is_dir.then_some(aside))
}

/// Where [`Transaction::remove_tree`] puts `path` until commit: beside it
/// (same file system, so one rename), under a name that says what it is.
fn aside_of(path: &Path) -> Result<PathBuf> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => {
            let mut aside = OsString::from(".tmp-removed-");
            aside.push(name);
            Ok(parent.join(aside))
        }
        _ => Err(TransactionError::NoParentForAside {
            path: path.to_path_buf(),
        }
        .into()),
    }
}

/// The component after `generations/` (a rootfs server's bin lies deeper
/// inside its generation).
fn generation_of(bin: &Path) -> Option<String> {
    let parts: Vec<_> = bin.components().collect();
    parts
        .windows(2)
        .find(|w| w[0].as_os_str() == "generations")
        .map(|w| w[1].as_os_str().to_string_lossy().into_owned())
}

/// Where `path` points if it is a symlink (dangling or not).
fn link_target(path: &Path) -> Result<Option<PathBuf>> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::read_link(path).with_path(path, "read").map(Some)
        }
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_path(path, "stat"),
    }
}

/// A file's content, mode and owner; `None` if it does not exist.
fn saved(path: &Path) -> Result<Option<Saved>> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_path(path, "stat"),
    };
    if !meta.is_file() {
        return Err(TransactionError::NotARegularFile {
            path: path.to_path_buf(),
        }
        .into());
    }
    Ok(Some(Saved {
        bytes: fs::read(path).with_path(path, "read")?,
        mode: meta.permissions().mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    }))
}

/// The names in a directory; `None` if it does not exist.
fn entries(dir: &Path) -> Result<Option<BTreeSet<OsString>>> {
    let read = match fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_path(dir, "read"),
    };
    let mut names = BTreeSet::new();
    for entry in read {
        names.insert(entry.with_path(dir, "read")?.file_name());
    }
    Ok(Some(names))
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    rustix::fs::chown(
        path,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(std::io::Error::from)
    .with_path(path, "chown")
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.committed {
            let undone = self.undo();
            for warning in undone.warnings() {
                tracing::warn!("undoing an unfinished change: {warning}");
            }
        }
    }
}

#[cfg(test)]
mod tests;
