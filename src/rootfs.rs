//! File operations confined to a directory tree by construction, the way a
//! container runtime treats an image root: every path is resolved beneath
//! the root by the kernel (`openat2` with `RESOLVE_IN_ROOT`), so a symlink
//! (`x -> /etc`, `up -> ../../..`) is followed as if the process were
//! chrooted there and can never lead an operation outside. Where `openat2`
//! is missing (Linux before 5.6) the same resolution is done one component at
//! a time on directory descriptors, with `..` clamped at the root by us.
//!
//! Operations on a final name (create, link, remove, chmod) always act on a
//! descriptor of the resolved parent plus one plain name, never following a
//! symlink at that name.

use crate::error::{Classify, Kind, Result};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Symlinks followed in one resolution before it counts as a loop, as Linux.
pub const MAX_SYMLINK_HOPS: usize = 40;

/// Why a path could not be resolved in a root, or a tree sealed.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The root (or the tree to seal) cannot be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Symlinks chained beyond [`MAX_SYMLINK_HOPS`].
    #[error("{path} in {root} leads to more than {MAX_SYMLINK_HOPS} symlinks (a loop?)")]
    SymlinkLoop {
        path: PathBuf,
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The path, or a symlink's target on the way, does not exist.
    #[error("{path} in {root} leads to a missing file")]
    Missing {
        path: PathBuf,
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A component on the way is not a directory.
    #[error("{path} in {root} leads to a file used as a directory")]
    NotADirectory {
        path: PathBuf,
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Any other failure while resolving (permissions, I/O).
    #[error("cannot resolve {path} in {root}: {source}")]
    Resolve {
        path: PathBuf,
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Taking the write bits off the tree failed.
    #[error("cannot seal {path}: {source}")]
    Seal {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Classify for RootfsError {
    fn kind(&self) -> Kind {
        match self {
            // The image is broken, not the host.
            RootfsError::SymlinkLoop { .. }
            | RootfsError::Missing { .. }
            | RootfsError::NotADirectory { .. } => Kind::Integrity,
            RootfsError::Open { .. } | RootfsError::Resolve { .. } | RootfsError::Seal { .. } => {
                Kind::Host
            }
        }
    }
}

/// Set once `openat2` answered ENOSYS, so the fallback is used from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

#[cfg(test)]
thread_local! {
    /// Lets tests run everything built on [`Root::open`] with the fallback.
    pub(crate) static FORCE_WALK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// How paths are resolved beneath the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// The kernel's `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, falling
    /// back to [`Resolver::Walk`] where the kernel lacks it.
    Kernel,
    /// One component at a time on descriptors (`O_NOFOLLOW`), symlinks
    /// expanded and `..` clamped by pgoci.
    Walk,
}

/// An open directory that operations are confined to.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    resolver: Resolver,
}

impl Root {
    /// Opens `path` (a real directory, not a symlink) as a confinement root.
    pub fn open(path: &Path) -> io::Result<Root> {
        #[cfg(test)]
        if FORCE_WALK.with(std::cell::Cell::get) {
            return Self::open_with(path, Resolver::Walk);
        }
        Self::open_with(path, Resolver::Kernel)
    }

    /// [`Root::open`] with a chosen resolver (tests cover both).
    pub fn open_with(path: &Path, resolver: Resolver) -> io::Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
            resolver,
        })
    }

    /// The host path of the root, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the directory `rel` names, resolved beneath the root (symlinks
    /// followed inside it, `..` clamped at it), as an `O_PATH` descriptor.
    pub fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        self.open_in_root(rel, OFlags::PATH | OFlags::DIRECTORY)
    }

    /// Like `mkdir -p` beneath the root; returns the directory's descriptor.
    /// A component that exists but is no directory gives ENOTDIR.
    /// A dangling symlink on the way is created where it points (inside
    /// the root), as containerd does.
    pub fn create_dir_all(&self, rel: &Path) -> io::Result<OwnedFd> {
        self.create_dir_all_hops(rel, 0)
    }

    fn create_dir_all_hops(&self, rel: &Path, hops: usize) -> io::Result<OwnedFd> {
        let mut cur = self.open_dir(Path::new(""))?;
        let mut prefix = PathBuf::new();
        for c in rel.components() {
            match c {
                Component::Normal(name) => {
                    prefix.push(name);
                    match self.open_dir(&prefix) {
                        Ok(fd) => cur = fd,
                        Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                            match rustix::fs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                                Ok(()) => {}
                                Err(Errno::EXIST) => {
                                    // Something is there yet does not resolve:
                                    // a dangling symlink. Make its target.
                                    if hops >= MAX_SYMLINK_HOPS {
                                        return Err(Errno::LOOP.into());
                                    }
                                    let target = rustix::fs::readlinkat(&cur, name, Vec::new())?;
                                    let target = Path::new(OsStr::from_bytes(target.as_bytes()));
                                    let at = prefix.parent().unwrap_or(Path::new("")).join(target);
                                    self.create_dir_all_hops(&at, hops + 1)?;
                                }
                                Err(e) => return Err(e.into()),
                            }
                            cur = self.open_dir(&prefix)?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Component::ParentDir => {
                    prefix.push("..");
                    cur = self.open_dir(&prefix)?;
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        Ok(cur)
    }

    /// The resolved parent directory of `rel` (created when `create`) and
    /// its last name. `rel` must end in a plain name.
    pub fn parent_of(&self, rel: &Path, create: bool) -> io::Result<(OwnedFd, OsString)> {
        let name = match rel.components().next_back() {
            Some(Component::Normal(n)) => n.to_os_string(),
            _ => return Err(Errno::INVAL.into()),
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        let fd = if create {
            self.create_dir_all(parent)?
        } else {
            self.open_dir(parent)?
        };
        Ok((fd, name))
    }

    fn open_in_root(&self, rel: &Path, oflags: OFlags) -> io::Result<OwnedFd> {
        if self.resolver == Resolver::Kernel && !NO_OPENAT2.load(Ordering::Relaxed) {
            let path: &Path = if rel.as_os_str().is_empty() {
                Path::new(".")
            } else {
                rel
            };
            // EAGAIN means a concurrent rename raced the lookup; try again.
            for _ in 0..16 {
                match rustix::fs::openat2(
                    &self.fd,
                    path,
                    oflags | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                ) {
                    Err(Errno::AGAIN) => continue,
                    Err(Errno::NOSYS) => {
                        NO_OPENAT2.store(true, Ordering::Relaxed);
                        break;
                    }
                    other => return other.map_err(Into::into),
                }
            }
        }
        walk(self.fd.as_fd(), rel, oflags).map(|(fd, _)| fd)
    }
}

/// Resolves `rel` beneath `root` one component at a time, the way the kernel
/// would for a process chrooted there; opens the final target with `oflags`.
/// Returns the descriptor and the symlink-free path (relative to the root).
fn walk(root: BorrowedFd<'_>, rel: &Path, oflags: OFlags) -> io::Result<(OwnedFd, PathBuf)> {
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    // stack[i] is the directory reached after names[..i]; stack[0] is the root.
    let mut stack: Vec<OwnedFd> = vec![rustix::fs::openat(root, ".", dir_flags, Mode::empty())?];
    let mut names: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<OsString> = VecDeque::new();
    push_front(&mut pending, rel);
    let mut hops = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
                names.pop();
            }
            continue;
        }
        let cur = stack.last().expect("root stays");
        let st = rustix::fs::statat(cur, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(Errno::LOOP.into());
            }
            let target = rustix::fs::readlinkat(cur, name.as_os_str(), Vec::new())?;
            let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
            if target.is_absolute() {
                stack.truncate(1);
                names.clear();
            }
            push_front(&mut pending, &target);
            continue;
        }
        if pending.is_empty() {
            let fd = rustix::fs::openat(
                cur,
                name.as_os_str(),
                oflags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            names.push(name);
            return Ok((fd, names.iter().collect()));
        }
        let fd = rustix::fs::openat(cur, name.as_os_str(), dir_flags, Mode::empty())?;
        stack.push(fd);
        names.push(name);
    }
    // The path ended at a directory (or was empty): reopen it as asked.
    let cur = stack.last().expect("root stays");
    let fd = rustix::fs::openat(
        cur,
        ".",
        oflags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok((fd, names.iter().collect()))
}

/// Puts the components of `path` in front of `pending`, `..` kept as such.
fn push_front(pending: &mut VecDeque<OsString>, path: &Path) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    for p in parts.into_iter().rev() {
        pending.push_front(p);
    }
}

/// Removes `name` in `dir` whatever it is (a directory with all it holds),
/// never following a symlink. Absent is fine.
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        empty_dir(sub.as_fd(), &|_| true)?;
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(())
}

/// Removes every child of the directory `dir` (opened for reading) for which
/// `remove` says yes.
pub fn empty_dir(dir: BorrowedFd<'_>, remove: &dyn Fn(&OsStr) -> bool) -> io::Result<()> {
    for name in list_dir(dir)? {
        if remove(&name) {
            remove_all_at(dir, &name)?;
        }
    }
    Ok(())
}

/// The names in a directory opened for reading, without `.` and `..`.
/// Collected first so removing while listing cannot skip entries.
fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." {
            out.push(name.to_os_string());
        }
    }
    Ok(out)
}

/// Resolves `path` as a process chrooted at `root` would: absolute symlink
/// targets start again at `root`, `..` stops at it, more than
/// [`MAX_SYMLINK_HOPS`] symlinks is a loop. Returns the host path of the
/// final target, beneath `root`. A loop, a missing target or a file used as
/// a directory is an integrity error (the image is broken).
pub fn resolve_in_root(root: &Path, path: &Path) -> Result<PathBuf> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::Open {
        path: root.to_path_buf(),
        source: e.into(),
    })?;
    let source = match walk(root_fd.as_fd(), path, OFlags::PATH) {
        Ok((_, rel)) => return Ok(root.join(rel)),
        Err(e) => e,
    };
    let (path, root) = (path.to_path_buf(), root.to_path_buf());
    let err = match source.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::LOOP) => RootfsError::SymlinkLoop { path, root, source },
        Some(Errno::NOENT) => RootfsError::Missing { path, root, source },
        Some(Errno::NOTDIR) => RootfsError::NotADirectory { path, root, source },
        _ => RootfsError::Resolve { path, root, source },
    };
    Err(err.into())
}

/// Makes a finished tree read-only for the store: files lose every write
/// bit (and setuid/setgid/sticky), directories become 0555. Symlinks are
/// left alone and never followed. Root still removes such a tree (it
/// bypasses permission checks), so `std::fs::remove_dir_all` keeps working.
pub fn seal(root: &Path) -> Result<()> {
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::Open {
        path: root.to_path_buf(),
        source: e.into(),
    })?;
    seal_dir(fd.as_fd()).map_err(|source| {
        RootfsError::Seal {
            path: root.to_path_buf(),
            source,
        }
        .into()
    })
}

fn seal_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    for name in list_dir(dir)? {
        let st = rustix::fs::statat(dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let sub = rustix::fs::openat(
                    dir,
                    name.as_os_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                seal_dir(sub.as_fd())?;
            }
            FileType::RegularFile => {
                let file = rustix::fs::openat(
                    dir,
                    name.as_os_str(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let mode = st.st_mode & 0o555;
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))?;
            }
            _ => {}
        }
    }
    rustix::fs::fchmod(dir, Mode::from_raw_mode(0o555))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("usr/share/postgis")).unwrap();
        fs::create_dir_all(root.join("etc/alternatives")).unwrap();
        fs::write(root.join("usr/share/postgis/postgis.control"), "c").unwrap();
        fs::create_dir_all(root.join("share/extension")).unwrap();
        symlink(
            "/etc/alternatives/postgis.control",
            root.join("share/extension/postgis.control"),
        )
        .unwrap();
        symlink(
            "../../usr/share/postgis/postgis.control",
            root.join("etc/alternatives/postgis.control"),
        )
        .unwrap();
        (dir, root)
    }

    #[test]
    fn resolves_like_a_chroot() {
        let (_dir, root) = tree();
        let got = resolve_in_root(&root, Path::new("share/extension/postgis.control")).unwrap();
        assert_eq!(got, root.join("usr/share/postgis/postgis.control"));
        // `..` clamps at the root, absolute paths start there.
        let got = resolve_in_root(&root, Path::new("/../../../usr/share")).unwrap();
        assert_eq!(got, root.join("usr/share"));
        symlink("../../../../../../usr", root.join("up")).unwrap();
        let got = resolve_in_root(&root, Path::new("up/share/postgis")).unwrap();
        assert_eq!(got, root.join("usr/share/postgis"));
    }

    #[test]
    fn resolution_errors_are_integrity() {
        let (_dir, root) = tree();
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        symlink("/nowhere", root.join("dangling")).unwrap();
        for (p, want) in [
            ("a", "symlinks"),
            ("dangling", "missing"),
            ("usr/share/postgis/postgis.control/x", "file used"),
        ] {
            let e = resolve_in_root(&root, Path::new(p)).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::Integrity, "{p}");
            assert!(e.message.contains(want), "{p}: {}", e.message);
            let source = match e.typed::<RootfsError>() {
                Some(RootfsError::SymlinkLoop { source, .. }) if want == "symlinks" => source,
                Some(RootfsError::Missing { source, .. }) if want == "missing" => source,
                Some(RootfsError::NotADirectory { source, .. }) if want == "file used" => source,
                other => panic!("{p}: {other:?}"),
            };
            assert!(source.raw_os_error().is_some(), "{p}: {source:?}");
        }
    }

    #[test]
    fn both_resolvers_stay_inside() {
        for resolver in [Resolver::Kernel, Resolver::Walk] {
            let (dir, root) = tree();
            fs::create_dir(dir.path().join("outside")).unwrap();
            symlink("/etc", root.join("x")).unwrap();
            symlink("../outside", root.join("out")).unwrap();
            let r = Root::open_with(&root, resolver).unwrap();
            let (fd, name) = r.parent_of(Path::new("out/new/f"), true).unwrap();
            rustix::fs::mkdirat(&fd, name.as_os_str(), Mode::from_raw_mode(0o755)).unwrap();
            assert!(root.join("outside/new/f").is_dir(), "{resolver:?}");
            assert!(!dir.path().join("outside/new").exists(), "{resolver:?}");
            r.create_dir_all(Path::new("x/alternatives/y")).unwrap();
            assert!(root.join("etc/alternatives/y").is_dir(), "{resolver:?}");
        }
    }

    #[test]
    fn sealed_tree_is_read_only_and_root_removes_it() {
        let (dir, root) = tree();
        fs::write(root.join("exe"), "x").unwrap();
        fs::set_permissions(root.join("exe"), fs::Permissions::from_mode(0o6777)).unwrap();
        seal(&root).unwrap();
        let mode = |p: &str| {
            fs::symlink_metadata(root.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("exe"), 0o555);
        assert_eq!(mode("usr/share/postgis/postgis.control"), 0o444);
        assert_eq!(mode("usr/share"), 0o555);
        assert_eq!(mode(""), 0o555);
        let removed = fs::remove_dir_all(&root);
        if rustix::process::geteuid().is_root() {
            removed.unwrap();
            assert!(!root.exists());
        } else {
            // Without CAP_DAC_OVERRIDE a sealed tree resists; unseal to clean up.
            assert!(removed.is_err());
            let _ = std::process::Command::new("chmod")
                .args(["-R", "u+w"])
                .arg(dir.path())
                .status();
        }
    }
}
