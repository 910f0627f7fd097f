//! Writing a bundle: where it may go (`-o` never replaces what is not a
//! pgoci bundle), and the directory or `.tar` written under a temporary
//! name and renamed into place.

use super::{index_for, lock_blob, scan_tar, BundleError, Occupied, LAYOUT_FILE, LOCK_FILE};
use crate::blobs::BlobSource;
use crate::companions::Companion;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::lock::{Blob, Lock};
use serde::Serialize;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// Manifests carried beside the locked ones (indexes, referrers).
    pub companions: usize,
    pub path: PathBuf,
    pub format: &'static str,
    pub size: u64,
    pub blobs: usize,
    /// The first lock's digest (the one in `pgoci.lock`).
    pub lock_digest: Digest,
    /// Every lock's digest.
    pub locks: Vec<Digest>,
}

/// Writes a bundle of `locks` (at least one) with blobs from `source` to
/// `path`: a `.tar` file if the name ends so, else a directory. Each blob
/// is written once however many locks need it. Written under a temporary
/// name and renamed, so a bundle at `path` is always complete.
pub fn export(locks: &[Lock], source: &dyn BlobSource, path: &Path) -> Result<ExportReport> {
    export_with(locks, &[], source, path)
}

/// What is at an export's `-o PATH` now, once [`check_target`] let it be
/// replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Nothing: the bundle is renamed into place.
    Absent,
    /// An empty directory (a directory bundle replaces it in one rename).
    EmptyDir,
    /// A previous pgoci bundle (a `.tar` file or a directory layout).
    Bundle,
}

/// Whether an export may write to `path`: it replaces only nothing, an
/// empty directory (for a directory bundle) or a previous pgoci bundle;
/// anything else — the user's own files, `.`, `..`, `/`, a symlink — is
/// exit 2 and left untouched. Called before anything is fetched or written.
pub fn check_target(path: &Path) -> Result<Target> {
    let refuse = |why: Occupied| -> Error {
        BundleError::WontOverwrite {
            path: path.to_path_buf(),
            why,
        }
        .into()
    };
    let text = path.as_os_str().as_encoded_bytes();
    let last = text
        .rsplit(|b| *b == b'/')
        .find(|c| !c.is_empty())
        .unwrap_or(b"");
    if text.is_empty() || last.is_empty() || last == b"." || last == b".." {
        return Err(refuse(Occupied::Directory));
    }
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Target::Absent),
        Err(e) => return Err(Error::io(path, "read", e)),
    };
    let is_tar = path.extension().is_some_and(|e| e == "tar");
    if meta.file_type().is_symlink() {
        return Err(refuse(Occupied::Symlink));
    }
    if meta.is_file() {
        return match is_bundle_file(path) {
            true => Ok(Target::Bundle),
            false => Err(refuse(Occupied::File)),
        };
    }
    if !meta.is_dir() {
        return Err(refuse(Occupied::Special));
    }
    let mut entries = fs::read_dir(path).with_path(path, "read")?.peekable();
    if entries.peek().is_none() {
        return match is_tar {
            true => Err(refuse(Occupied::DirectoryForTar)),
            false => Ok(Target::EmptyDir),
        };
    }
    match bundle_dir_stranger(path) {
        None => Ok(Target::Bundle),
        Some(why) => Err(refuse(Occupied::OtherDirectory(why))),
    }
}

/// A `.tar` pgoci wrote: an OCI layout holding `pgoci.lock`.
fn is_bundle_file(path: &Path) -> bool {
    let Ok(entries) = scan_tar(path) else {
        return false;
    };
    [LAYOUT_FILE, "index.json", LOCK_FILE]
        .iter()
        .all(|n| entries.contains_key(*n))
}

/// Why a directory is not a pgoci bundle directory (`None`: it is one,
/// and nothing of the user's is inside). A bundle holds `oci-layout`,
/// `index.json`, `pgoci.lock` and `blobs/sha256/<hex>`, each a regular
/// file, and nothing else.
fn bundle_dir_stranger(dir: &Path) -> Option<String> {
    let regular = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
    let is_dir = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    let list = |d: &Path| -> Result<Vec<String>, String> {
        let mut names = Vec::new();
        for e in fs::read_dir(d).map_err(|e| format!("cannot list it: {e}"))? {
            let e = e.map_err(|e| format!("cannot list it: {e}"))?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    };
    let names = match list(dir) {
        Ok(n) => n,
        Err(why) => return Some(why),
    };
    for name in &names {
        let p = dir.join(name);
        let ours = match name.as_str() {
            LAYOUT_FILE | "index.json" | LOCK_FILE => regular(&p),
            "blobs" => is_dir(&p),
            _ => false,
        };
        if !ours {
            return Some(format!("it holds {name}"));
        }
    }
    for name in [LAYOUT_FILE, LOCK_FILE] {
        if !names.iter().any(|n| n == name) {
            return Some(format!("it has no {name}"));
        }
    }
    if !names.iter().any(|n| n == "blobs") {
        return None;
    }
    let blobs = dir.join("blobs");
    match list(&blobs) {
        Err(why) => return Some(why),
        Ok(sub) => {
            if let Some(other) = sub
                .iter()
                .find(|n| *n != "sha256" || !is_dir(&blobs.join(n)))
            {
                return Some(format!("it holds blobs/{other}"));
            }
        }
    }
    let sha = blobs.join("sha256");
    if !is_dir(&sha) {
        return None;
    }
    match list(&sha) {
        Err(why) => Some(why),
        Ok(sub) => sub
            .iter()
            .find(|n| {
                n.len() != 64 || !n.bytes().all(|c| c.is_ascii_hexdigit()) || !regular(&sha.join(n))
            })
            .map(|n| format!("it holds blobs/sha256/{n}")),
    }
}

/// A temporary file or directory beside the target, removed on drop
/// unless it was renamed into place.
struct Temp {
    path: PathBuf,
    keep: bool,
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.keep {
            remove_any(&self.path);
        }
    }
}

/// Removes a file or a directory tree; what is gone already is fine.
fn remove_any(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// An I/O failure while writing a bundle to `target`: a full disk (or
/// quota) names the file system as the install does, and is the host's
/// (exit 6); bytes that do not match their digest are integrity (exit 5);
/// anything else is the host's, naming the target.
fn write_error(target: &Path, action: &'static str, e: std::io::Error) -> Error {
    let full = matches!(
        e.raw_os_error(),
        Some(c) if c == libc::ENOSPC || c == libc::EDQUOT
    );
    if full {
        let dir = std::path::absolute(target)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        return BundleError::DiskFull {
            path: target.to_path_buf(),
            action,
            mount: crate::unpack::mount_point(&dir),
            source: e,
        }
        .into();
    }
    match e.kind() {
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
            BundleError::BadSource(e).into()
        }
        _ => Error::io(target, &format!("{action} bundle"), e),
    }
}

/// [`export`], with manifests that travel beside the locked ones and
/// whose blobs `source` holds too (see [`crate::companions::discover`]).
/// The same lock given twice is exported once.
pub fn export_with(
    locks: &[Lock],
    companions: &[Companion],
    source: &dyn BlobSource,
    path: &Path,
) -> Result<ExportReport> {
    check_target(path)?;
    if locks.is_empty() {
        return Err(BundleError::NoLocks.into());
    }
    // Each lock once, by its digest, in the order given: the text, the
    // digest and the lock stay together (they label index.json).
    let mut described: Vec<(Lock, Digest)> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    for l in locks {
        let text = l.to_yaml()?;
        let digest = Digest::of_bytes(text.as_bytes());
        if !described.iter().any(|(_, d)| *d == digest) {
            described.push((l.clone(), digest));
            texts.push(text);
        }
    }
    let lock_text = texts[0].clone();
    let lock_digest = described[0].1.clone();
    // Keys in order: the same locks always give the same bytes.
    let index =
        crate::oci::to_json(&index_for(&described, companions)).map_err(BundleError::Serialize)?;
    let layout = serde_json::to_vec(&crate::oci::layout()).map_err(BundleError::Serialize)?;
    let mut blobs: Vec<Blob> = Vec::new();
    for (l, _) in &described {
        for b in l.blobs() {
            if !blobs.iter().any(|x| x.digest == b.digest) {
                blobs.push(b);
            }
        }
    }
    for c in companions {
        for b in std::iter::once(&c.manifest).chain(&c.blobs) {
            if !blobs.iter().any(|x| x.digest == b.digest) {
                blobs.push(b.clone());
            }
        }
    }
    // Further locks travel as blobs named by their digest.
    let extra_locks: Vec<(Blob, &str)> = texts
        .iter()
        .zip(&described)
        .skip(1)
        .map(|(t, (_, d))| (lock_blob(t, d), t.as_str()))
        .collect();
    let source = WithLocks {
        source,
        locks: &extra_locks,
    };
    blobs.extend(extra_locks.iter().map(|(b, _)| b.clone()));
    let name = path
        .file_name()
        .ok_or_else(|| BundleError::NoFileName {
            path: path.to_path_buf(),
        })?
        .to_string_lossy()
        .into_owned();
    let beside = |what: &str| path.with_file_name(format!(".{name}.{what}-{}", std::process::id()));
    let mut tmp = Temp {
        path: beside("tmp"),
        keep: false,
    };
    // A leftover of an earlier run of this pid (never the user's name).
    remove_any(&tmp.path);
    let is_tar = path.extension().is_some_and(|e| e == "tar");
    let write = if is_tar { write_tar } else { write_dir };
    let documents = [
        (LAYOUT_FILE, layout.as_slice()),
        ("index.json", index.as_slice()),
        (LOCK_FILE, lock_text.as_bytes()),
    ];
    write(&tmp.path, path, &documents, &blobs, &source)?;
    // Checked again just before the rename: what appeared at the target
    // meanwhile is not replaced unless it is a bundle too.
    match check_target(path)? {
        Target::Absent | Target::EmptyDir => {
            fs::rename(&tmp.path, path).map_err(|e| write_error(path, "write", e))?;
        }
        Target::Bundle => {
            let old = Temp {
                path: beside("old"),
                keep: false,
            };
            remove_any(&old.path);
            fs::rename(path, &old.path).map_err(|e| write_error(path, "replace", e))?;
            if let Err(e) = fs::rename(&tmp.path, path) {
                // Put the previous bundle back; nothing else was touched.
                let _ = fs::rename(&old.path, path);
                return Err(write_error(path, "write", e));
            }
            drop(old);
        }
    }
    tmp.keep = true;
    let size = if is_tar {
        fs::metadata(path).with_path(path, "stat")?.len()
    } else {
        documents.iter().map(|(_, d)| d.len() as u64).sum::<u64>()
            + blobs.iter().map(|b| b.size).sum::<u64>()
    };
    Ok(ExportReport {
        path: path.to_path_buf(),
        format: if is_tar { "tar" } else { "directory" },
        size,
        blobs: blobs.len(),
        companions: companions.len(),
        lock_digest,
        locks: described.into_iter().map(|(_, d)| d).collect(),
    })
}

/// A blob source that also serves the lock blobs of an export.
struct WithLocks<'a> {
    source: &'a dyn BlobSource,
    locks: &'a [(Blob, &'a str)],
}

impl BlobSource for WithLocks<'_> {
    fn open_raw(&self, blob: &Blob) -> Result<Box<dyn Read + Send + '_>> {
        match self.locks.iter().find(|(b, _)| b.digest == blob.digest) {
            Some((_, text)) => Ok(Box::new(text.as_bytes())),
            None => self.source.open_raw(blob),
        }
    }
}

/// Writes a directory bundle at `dir` (a temporary name beside `target`,
/// which errors name).
fn write_dir(
    dir: &Path,
    target: &Path,
    documents: &[(&str, &[u8])],
    blobs: &[Blob],
    source: &dyn BlobSource,
) -> Result<()> {
    let fail = |e| write_error(target, "write", e);
    let blob_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blob_dir).map_err(fail)?;
    for (name, bytes) in documents {
        fs::write(dir.join(name), bytes).map_err(fail)?;
    }
    for blob in blobs {
        let dest = blob_dir.join(blob.digest.hex());
        let out = fs::File::create(&dest).map_err(fail)?;
        let mut out = crate::fsutil::Writeback::new(out);
        let mut from = source.open(blob)?;
        // Reading (a blob that does not match: integrity) and writing (a
        // full disk: the host's) fail apart, each said as what it is.
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(BundleError::SourceBlob {
                        digest: blob.digest.clone(),
                        source,
                    }
                    .into())
                }
            };
            std::io::Write::write_all(&mut out, &buf[..n]).map_err(fail)?;
        }
        out.file().sync_all().map_err(fail)?;
    }
    Ok(())
}

/// A tar header with fixed metadata, so output depends on content only.
fn fixed_header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Writes a `.tar` bundle at `file` (a temporary name beside `target`,
/// which errors name).
fn write_tar(
    file: &Path,
    target: &Path,
    documents: &[(&str, &[u8])],
    blobs: &[Blob],
    source: &dyn BlobSource,
) -> Result<()> {
    let tar_err = |e: std::io::Error| write_error(target, "write", e);
    let out = fs::File::create(file).map_err(tar_err)?;
    let out = crate::fsutil::Writeback::new(out);
    let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, out));
    for (name, bytes) in documents {
        let mut h = fixed_header(tar::EntryType::Regular, bytes.len() as u64, 0o644);
        tar.append_data(&mut h, name, *bytes).map_err(tar_err)?;
    }
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = fixed_header(tar::EntryType::Directory, 0, 0o755);
        tar.append_data(&mut h, dir, std::io::empty())
            .map_err(tar_err)?;
    }
    let mut sorted: Vec<&Blob> = blobs.iter().collect();
    sorted.sort_by(|a, b| a.digest.cmp(&b.digest));
    for blob in sorted {
        let mut h = fixed_header(tar::EntryType::Regular, blob.size, 0o644);
        let name = format!("blobs/sha256/{}", blob.digest.hex());
        tar.append_data(&mut h, name, source.open(blob)?)
            .map_err(tar_err)?;
    }
    let buf = tar.into_inner().map_err(tar_err)?;
    buf.into_inner()
        .map_err(|e| tar_err(e.into_error()))?
        .into_file()
        .sync_all()
        .map_err(tar_err)?;
    Ok(())
}
