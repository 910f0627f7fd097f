//! Applying OCI layers to a directory the way a container runtime does,
//! confined by construction.
//!
//! Names are read as containerd and GNU tar read them: a leading `/` or `./`
//! is relative to the layer root; `..` that would climb above it is refused.
//! Every file operation goes through [`crate::rootfs::Root`], which resolves
//! parents beneath the root in the kernel, so a symlink from an earlier entry
//! or layer (`x -> /etc`, `up -> ../../..`) is followed *inside* the root and
//! never leads a write, link or removal out of it. Symlinks themselves are
//! data and may point anywhere, as in an image.
//!
//! Whiteouts (`.wh.NAME`, `.wh..wh..opq`) remove what lower layers put
//! there and are never written; a whiteout of `.`, `..` or an empty name is
//! refused. Other `.wh..wh.*` names (aufs metadata) are skipped. Device
//! nodes and fifos are skipped (root file systems made by debootstrap carry
//! `/dev` nodes; the host has its own); sparse files and unknown entry kinds
//! are refused (integrity error). No file or directory keeps setuid, setgid,
//! sticky or world-writable bits. The decompressed bytes of one artifact are
//! capped ([`Budget`]); a full file system is a host error naming it.
//!
//! A layer is either applied straight onto a root ([`apply_layer`]) or
//! stored apart once and composed onto any number of roots later
//! ([`layer`]); both read entries with `read_op` and carry them out with
//! `apply_op`, so the two give the same tree.
//!
//! Every failure but a bug is an [`UnpackError`] variant (kept whole
//! behind the library error: `err.typed::<UnpackError>()`), the file
//! system's own error at the end of its chain.

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Kind, Result};
use crate::lock::Blob;
use crate::rootfs::{remove_all_at, Root};
pub use error::UnpackError;
pub use inflate::Compression;
use inflate::Piped;
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

pub use crate::rootfs::{resolve_in_root, seal};

/// Decides which entries of a layer are kept, and where: `None` skips.
pub type Select<'a> = &'a dyn Fn(&Path) -> Option<PathBuf>;

/// An owned [`Select`].
pub type Selector = Box<dyn Fn(&Path) -> Option<PathBuf>>;

/// Keeps every entry where it is.
pub fn keep_all(path: &Path) -> Option<PathBuf> {
    Some(path.to_path_buf())
}

/// The default cap on decompressed bytes for one artifact: 16 GiB.
pub const DEFAULT_MAX_UNPACKED_BYTES: u64 = 16 << 30;

/// Bounds on what unpacking one artifact may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Decompressed tar bytes (headers, data, padding) over all layers.
    pub max_unpacked_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_unpacked_bytes: DEFAULT_MAX_UNPACKED_BYTES,
        }
    }
}

/// The sha256 of regular files as they were written, by (device, inode):
/// a later walk of the finished tree finds each file's digest without
/// reading it again (overwritten or whited-out files are simply not found).
pub type InodeDigests = HashMap<(u64, u64), Digest>;

/// What the layers of one artifact have used of their [`Limits`] so far,
/// and the digests of the files they wrote: make one per artifact and pass
/// it to each of its layers in turn.
#[derive(Debug, Clone)]
pub struct Budget {
    limits: Limits,
    used: u64,
    digests: InodeDigests,
}

impl Budget {
    pub fn new(limits: Limits) -> Self {
        Budget {
            limits,
            used: 0,
            digests: InodeDigests::new(),
        }
    }

    /// Decompressed bytes read so far.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The digests of the files written, by inode.
    pub fn digests(&self) -> &InodeDigests {
        &self.digests
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(Limits::default())
    }
}

/// Counts decompressed bytes against the budget and stops at the cap.
pub(crate) struct Counting<'b, R> {
    inner: R,
    used: &'b mut u64,
    cap: u64,
    exceeded: bool,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.exceeded {
            return Err(io::Error::other("unpack cap exceeded"));
        }
        let n = self.inner.read(buf)?;
        *self.used += n as u64;
        if *self.used > self.cap {
            self.exceeded = true;
            return Err(io::Error::other("unpack cap exceeded"));
        }
        Ok(n)
    }
}

/// Applies one layer blob (read from `reader`, verified against `blob` as it
/// streams, and read to its end) on top of `dest`, counting its decompressed
/// bytes against `budget` (see `stream_layer`).
pub fn apply_layer(
    reader: impl Read + Send,
    blob: &Blob,
    dest: &Path,
    select: Select,
    budget: &mut Budget,
) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| dest_error(dest, "create", e))?;
    let root = Root::open(dest).map_err(|e| dest_error(dest, "open", e))?;
    stream_layer(reader, blob, budget, |archive, digests| {
        let bad = |source: io::Error| UnpackError::Archive { source };
        // What this layer wrote, so its own opaque marker never removes it.
        let mut written = HashSet::new();
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let Some((rel, op)) = read_op(&entry)? else {
                continue;
            };
            let data = match op {
                Op::File { size, .. } => Some(Data::Stream(&mut entry, size)),
                _ => None,
            };
            apply_op(&rel, &op, data, &root, select, &mut written, digests)?;
        }
        Ok(())
    })
}

/// Streams one layer blob through `body` as a tar archive: verified against
/// `blob` as it streams and read to its end, its decompressed bytes counted
/// against `budget`. `body` gets the budget's digests to record files in.
///
/// Two threads share the work: one reads the blob, hashes it and inflates
/// it; the other parses the tar and runs `body`. Each byte is read once.
pub(crate) fn stream_layer(
    reader: impl Read + Send,
    blob: &Blob,
    budget: &mut Budget,
    body: impl FnOnce(&mut tar::Archive<Counting<'_, Piped>>, &mut InodeDigests) -> Result<()>,
) -> Result<()> {
    let compression = Compression::from_media_type(&blob.media_type).ok_or_else(|| {
        UnpackError::UnsupportedMediaType {
            digest: blob.digest.clone(),
            media_type: blob.media_type.clone(),
        }
    })?;
    let layer_err = |source: io::Error| UnpackError::Stream {
        digest: blob.digest.clone(),
        source,
    };
    let cap = budget.limits.max_unpacked_bytes;
    std::thread::scope(|scope| {
        let (tx, piped) = inflate::pipe();
        scope.spawn(move || inflate::inflate(reader, blob, compression, tx));
        let mut archive = tar::Archive::new(Counting {
            inner: piped,
            used: &mut budget.used,
            cap,
            exceeded: false,
        });
        let applied = body(&mut archive, &mut budget.digests);
        // Read to the very end so the digest check runs on every byte (and
        // the cap bounds what hides behind the end-of-archive marker).
        let mut rest = archive.into_inner();
        let drained = match applied {
            Ok(()) => io::copy(&mut rest, &mut io::sink()).map(drop),
            Err(_) => Ok(()),
        };
        if rest.exceeded {
            return Err(UnpackError::TooBig {
                digest: blob.digest.clone(),
                cap,
            }
            .into());
        }
        // Dropping the pipe stops the inflating thread if we stopped early.
        drop(rest);
        applied.map_err(|e| match e.kind {
            Kind::Integrity => e.context(format!("layer {}", blob.digest)),
            _ => e,
        })?;
        Ok(drained.map_err(layer_err)?)
    })
}

/// Turns an archive name into a clean relative path (no `.`, `..` or root
/// left): a leading `/` or `./` is relative to the layer root, `..` steps
/// back lexically, and `..` past the root is refused.
pub fn safe_relative(name: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                if !out.pop() {
                    return Err(UnpackError::LeavesRoot {
                        name: name.to_path_buf(),
                    }
                    .into());
                }
            }
        }
    }
    Ok(out)
}

/// Strips what no unpacked file may keep: setuid, setgid, sticky, o+w.
fn sanitize(mode: u32) -> u32 {
    mode & 0o775
}

/// Maps a file-system failure on `rel` beneath `root` to an error: a full
/// file system or quota is the host's, a path the archive shaped wrongly
/// (a file where a directory must be, a loop) is the archive's.
fn fs_error(root: &Path, rel: &Path, action: &'static str, source: io::Error) -> Error {
    let path = root.join(rel);
    let errno = source.raw_os_error().map(Errno::from_raw_os_error);
    match errno {
        Some(Errno::NOSPC) | Some(Errno::DQUOT) => UnpackError::Full {
            path,
            mount: mount_point(root),
            action,
            source,
        },
        // The root exists and parents are made as needed: a missing path
        // means a dangling link of the archive's own making.
        Some(Errno::NOENT)
        | Some(Errno::NOTDIR)
        | Some(Errno::LOOP)
        | Some(Errno::EXIST)
        | Some(Errno::ISDIR)
        | Some(Errno::NAMETOOLONG)
        | Some(Errno::XDEV) => UnpackError::UnsafePath {
            rel: rel.to_path_buf(),
            action,
            source,
        },
        _ => UnpackError::Fs {
            path,
            action,
            source,
        },
    }
    .into()
}

/// A failure on the target directory itself: the host's, never the archive's.
fn dest_error(dest: &Path, action: &'static str, source: io::Error) -> Error {
    match source.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::NOSPC) | Some(Errno::DQUOT) => fs_error(dest, Path::new(""), action, source),
        _ => UnpackError::Fs {
            path: dest.to_path_buf(),
            action,
            source,
        }
        .into(),
    }
}

/// The mount point holding `path`: the last ancestor on the same device.
pub(crate) fn mount_point(path: &Path) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let Ok(dev) = std::fs::metadata(path).map(|m| m.dev()) else {
        return path.to_path_buf();
    };
    let mut top = path.to_path_buf();
    for a in path.ancestors().skip(1) {
        match std::fs::metadata(a) {
            Ok(m) if m.dev() == dev => top = a.to_path_buf(),
            _ => break,
        }
    }
    top
}

/// The target a symlink or hardlink entry names.
fn link_target<R: Read>(entry: &tar::Entry<R>, rel: &Path) -> Result<PathBuf> {
    let rel = || rel.to_path_buf();
    let target = entry
        .link_name()
        .map_err(|source| UnpackError::BadLink { rel: rel(), source })?
        .ok_or_else(|| UnpackError::NoLinkTarget { rel: rel() })?;
    Ok(target.into_owned())
}

/// What one archive entry does, read from its header: the entries pgoci
/// keeps, in the order of the archive, are a layer's whole meaning (a
/// regular file's bytes aside). [`layer`] stores them to replay later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
    },
    Symlink {
        target: PathBuf,
    },
    /// A hard link to `target`, a clean relative name.
    Link {
        target: PathBuf,
    },
    /// `.wh.NAME` or `.wh..wh..opq` (the entry's own name says which).
    Whiteout,
}

/// Where a regular file's bytes come from.
pub(crate) enum Data<'a> {
    /// The archive entry itself, of the size its header gives.
    Stream(&'a mut dyn Read, u64),
    /// A file already unpacked (a stored layer's): linked, never copied.
    Stored {
        dir: BorrowedFd<'a>,
        name: &'a OsStr,
        digest: &'a Digest,
    },
}

/// Reads what an entry does, under its clean relative name; `None` for
/// entries that do nothing (the layer root, pax headers, device nodes,
/// fifos, aufs metadata). Names that climb out, bad whiteouts and entry
/// kinds pgoci refuses are integrity errors.
pub(crate) fn read_op<R: Read>(entry: &tar::Entry<R>) -> Result<Option<(PathBuf, Op)>> {
    let name = entry
        .path()
        .map_err(|source| UnpackError::BadName { source })?
        .into_owned();
    let rel = safe_relative(&name)?;
    let Some(file_name) = rel.file_name() else {
        // The layer root itself (`/`, `./`): our directory keeps its mode.
        return Ok(None);
    };
    if let Some(hidden) = file_name.as_bytes().strip_prefix(b".wh.") {
        let opaque = hidden == b".wh..opq";
        if !opaque && hidden.starts_with(b".wh.") {
            return Ok(None); // aufs metadata (`.wh..wh.plnk`, …): nothing to do
        }
        if !opaque && (hidden.is_empty() || hidden == b"." || hidden == b"..") {
            return Err(UnpackError::BadWhiteout { name }.into());
        }
        return Ok(Some((rel, Op::Whiteout)));
    }
    let header = entry.header();
    let mode = header.mode().unwrap_or(0o644);
    let op = match header.entry_type() {
        tar::EntryType::Directory => Op::Dir { mode },
        tar::EntryType::Regular | tar::EntryType::Continuous => Op::File {
            mode,
            size: entry.size(),
        },
        tar::EntryType::Symlink => Op::Symlink {
            target: link_target(entry, &rel)?,
        },
        tar::EntryType::Link => Op::Link {
            target: safe_relative(&link_target(entry, &rel)?)?,
        },
        tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => return Ok(None),
        // Device nodes and fifos are never created: the host has its own.
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => return Ok(None),
        kind => return Err(UnpackError::RefusedKind { rel, kind }.into()),
    };
    Ok(Some((rel, op)))
}

/// Carries out one entry's [`Op`] beneath `root`: `rel` is its clean name
/// in the layer, placed where `select` says; `data` holds a file's bytes.
/// `written` is what this layer wrote so far (its opaque markers spare it).
pub(crate) fn apply_op(
    rel: &Path,
    op: &Op,
    data: Option<Data<'_>>,
    root: &Root,
    select: Select,
    written: &mut HashSet<PathBuf>,
    digests: &mut InodeDigests,
) -> Result<()> {
    if let Op::Whiteout = op {
        return apply_whiteout(root, rel, select, written);
    }
    let Some(out) = select(rel) else {
        return Ok(());
    };
    let out = safe_relative(&out)?;
    if out.file_name().is_none() {
        return Ok(());
    }
    let err = |action: &'static str| {
        let out = out.clone();
        move |e: io::Error| fs_error(root.path(), &out, action, e)
    };
    match op {
        Op::Dir { mode } => {
            let (parent, name) = root.parent_of(&out, true).map_err(err("create"))?;
            let st = rustix::fs::statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW);
            let is_dir =
                matches!(&st, Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory);
            if !is_dir {
                remove_all_at(parent.as_fd(), &name).map_err(err("replace"))?;
                rustix::fs::mkdirat(&parent, &name, Mode::from_raw_mode(0o700))
                    .map_err(|e| err("create directory")(e.into()))?;
            }
            let dir = rustix::fs::openat(
                &parent,
                &name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| err("open directory")(e.into()))?;
            rustix::fs::fchmod(&dir, Mode::from_raw_mode(sanitize(*mode) | 0o700))
                .map_err(|e| err("set mode of")(e.into()))?;
        }
        Op::File { mode, .. } => {
            let (parent, name) = root.parent_of(&out, true).map_err(err("create"))?;
            remove_all_at(parent.as_fd(), &name).map_err(err("replace"))?;
            match data {
                Some(Data::Stream(reader, expected)) => {
                    let fd = rustix::fs::openat(
                        &parent,
                        &name,
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o600),
                    )
                    .map_err(|e| err("create")(e.into()))?;
                    let mut file = std::fs::File::from(fd);
                    let digest = write_data(reader, expected, &mut file, rel, err("write"))?;
                    let st = rustix::fs::fstat(&file).map_err(|e| err("stat")(e.into()))?;
                    digests.insert((st.st_dev, st.st_ino), digest);
                    rustix::fs::fchmod(&file, Mode::from_raw_mode(sanitize(*mode)))
                        .map_err(|e| err("set mode of")(e.into()))?;
                }
                Some(Data::Stored {
                    dir,
                    name: stored,
                    digest,
                }) => {
                    // The stored file already has its (sealed) mode: hard
                    // links share it, and its bytes, with the layer.
                    rustix::fs::linkat(dir, stored, &parent, &name, AtFlags::empty())
                        .map_err(|e| err("link")(e.into()))?;
                    let st = rustix::fs::statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| err("stat")(e.into()))?;
                    digests.insert((st.st_dev, st.st_ino), digest.clone());
                }
                None => return Err(Error::internal("a file entry came without its data")),
            }
        }
        Op::Symlink { target } => {
            let (parent, name) = root.parent_of(&out, true).map_err(err("create"))?;
            remove_all_at(parent.as_fd(), &name).map_err(err("replace"))?;
            rustix::fs::symlinkat(target, &parent, &name)
                .map_err(|e| err("create symlink")(e.into()))?;
        }
        Op::Link { target } => {
            let Some(source) = select(target) else {
                return Err(UnpackError::LinkOutside {
                    rel: rel.to_path_buf(),
                    target: target.clone(),
                }
                .into());
            };
            let source = safe_relative(&source)?;
            let not_regular = |source: Option<io::Error>| UnpackError::LinkNotRegular {
                rel: rel.to_path_buf(),
                target: target.clone(),
                source,
            };
            let (src_parent, src_name) = root
                .parent_of(&source, false)
                .map_err(|e| not_regular(Some(e)))?;
            let src = rustix::fs::statat(&src_parent, &src_name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| not_regular(Some(e.into())))?;
            if FileType::from_raw_mode(src.st_mode) != FileType::RegularFile {
                return Err(not_regular(None).into());
            }
            let (parent, name) = root.parent_of(&out, true).map_err(err("create"))?;
            if let Ok(cur) = rustix::fs::statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW) {
                if cur.st_dev == src.st_dev && cur.st_ino == src.st_ino {
                    note_written(written, &out);
                    return Ok(()); // already that very file
                }
            }
            remove_all_at(parent.as_fd(), &name).map_err(err("replace"))?;
            rustix::fs::linkat(&src_parent, &src_name, &parent, &name, AtFlags::empty())
                .map_err(|e| err("create hardlink")(e.into()))?;
        }
        Op::Whiteout => unreachable!("handled above"),
    }
    note_written(written, &out);
    Ok(())
}

/// Records `out` and the directories above it as this layer's own.
fn note_written(written: &mut HashSet<PathBuf>, out: &Path) {
    for a in out.ancestors() {
        if a.as_os_str().is_empty() || !written.insert(a.to_path_buf()) {
            break;
        }
    }
}

/// Copies an entry's data into the file, hashing it on the way; fewer
/// bytes than the header promised is a truncated archive. A bad archive is
/// an integrity error, a failing disk is `write_err`'s.
pub(crate) fn write_data(
    entry: &mut dyn Read,
    expected: u64,
    file: &mut std::fs::File,
    rel: &Path,
    write_err: impl Fn(io::Error) -> Error,
) -> Result<Digest> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let mut hasher = Hasher::default();
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(UnpackError::ReadEntry {
                    rel: rel.to_path_buf(),
                    source,
                }
                .into())
            }
        };
        file.write_all(&buf[..n]).map_err(&write_err)?;
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    if total != expected {
        return Err(UnpackError::Truncated {
            rel: rel.to_path_buf(),
            got: total,
            expected,
        }
        .into());
    }
    Ok(hasher.finish())
}

/// Applies `.wh.NAME` (remove NAME below) or `.wh..wh..opq` (empty the
/// directory of what lower layers put there); `rel` is the whiteout's own
/// name, already checked by [`read_op`].
fn apply_whiteout(
    root: &Root,
    rel: &Path,
    select: Select,
    written: &HashSet<PathBuf>,
) -> Result<()> {
    let Some(hidden) = rel
        .file_name()
        .and_then(|f| f.as_bytes().strip_prefix(b".wh."))
        .map(OsStr::from_bytes)
    else {
        return Err(Error::internal("a whiteout without its `.wh.` name"));
    };
    let opaque = hidden == ".wh..opq";
    let Some(out) = select(rel) else {
        return Ok(());
    };
    let out = safe_relative(&out)?;
    let dir = out.parent().unwrap_or(Path::new("")).to_path_buf();
    let err = |e: io::Error| fs_error(root.path(), &dir, "apply whiteout in", e);
    // Nothing below to hide when the directory is not there (or not one).
    let Ok(parent) = root.open_dir(&dir) else {
        return Ok(());
    };
    if opaque {
        let Ok(readable) = rustix::fs::openat(
            &parent,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return Ok(());
        };
        crate::rootfs::empty_dir(readable.as_fd(), &|child| {
            !written.contains(&dir.join(child))
        })
        .map_err(err)
    } else {
        remove_all_at(parent.as_fd(), hidden).map_err(err)
    }
}

mod error;
mod inflate;
pub mod layer;

#[cfg(test)]
mod tests;
