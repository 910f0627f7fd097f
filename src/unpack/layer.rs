//! A layer stored on its own, once, and applied to any number of image
//! roots later by hard links.
//!
//! [`store_layer`] reads a layer blob (verified as it streams, like
//! [`super::apply_layer`]) into a directory of its own:
//!
//! ```text
//! <dir>/files/<n>   the bytes of the n-th regular file entry, sealed
//! <dir>/ops         every entry that does something, in archive order
//! ```
//!
//! Nothing of the layer is applied there: whiteouts, opaque markers, hard
//! links and symlinks are kept as the entries they are. [`compose`] then
//! replays the layers of an image in order onto its root through the very
//! code [`super::apply_layer`] uses (`apply_op`), regular files
//! becoming hard links of the stored ones. So an image composed from stored
//! layers is what applying its blobs directly gives (the same symlink
//! resolution beneath the root, the same later-entry-wins and whiteout
//! rules), while the bytes exist once however many images share the layer.
//!
//! `ops` is text, one entry a line, fields split by single spaces, names
//! with `%`, control bytes and spaces written as `%XX` (any other byte,
//! non-UTF-8 included, as it is):
//!
//! ```text
//! pgoci-layer 1 <decompressed bytes>
//! D <mode> <name>
//! F <mode> <size> <n> <sha256 hex> <name>
//! S <name> <target>
//! H <name> <target>
//! W <name>
//! ```

use super::{
    apply_op, fs_error, read_op, safe_relative, sanitize, stream_layer, write_data, Budget, Data,
    InodeDigests, Op, Select, UnpackError,
};
use crate::digest::Digest;
use crate::error::{Error, Kind, Result};
use crate::lock::Blob;
use crate::rootfs::Root;
use rustix::fd::AsFd;
use rustix::fs::{Mode, OFlags};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The entries of a stored layer, beside its files.
pub const OPS: &str = "ops";
/// The directory of a stored layer's file bytes.
pub const FILES: &str = "files";
const MAGIC: &str = "pgoci-layer 1";

/// Reads one layer blob (verified against `blob` as it streams, its
/// decompressed bytes counted against `budget`) into `dest`, a directory
/// that must not exist yet. Returns the decompressed bytes read. `dest` is
/// left unsealed (the caller seals it once it is whole).
pub fn store_layer(
    reader: impl Read + Send,
    blob: &Blob,
    dest: &Path,
    budget: &mut Budget,
) -> Result<u64> {
    let before = budget.used();
    let files = dest.join(FILES);
    std::fs::create_dir(dest).map_err(|e| super::dest_error(dest, "create", e))?;
    std::fs::create_dir(&files).map_err(|e| super::dest_error(&files, "create", e))?;
    let files_fd = rustix::fs::open(
        &files,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| super::dest_error(&files, "open", e.into()))?;
    let mut ops = Vec::new();
    stream_layer(reader, blob, budget, |archive, _| {
        let bad = |source: io::Error| UnpackError::Archive { source };
        let mut n = 0u64;
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let Some((rel, op)) = read_op(&entry)? else {
                continue;
            };
            match &op {
                Op::Dir { mode } => {
                    write!(ops, "D {mode:o} ").map_err(bad)?;
                }
                Op::File { mode, size } => {
                    let name = n.to_string();
                    n += 1;
                    let at = Path::new(FILES).join(&name);
                    let err = |action: &'static str| {
                        let at = at.clone();
                        move |e: io::Error| fs_error(dest, &at, action, e)
                    };
                    let fd = rustix::fs::openat(
                        &files_fd,
                        name.as_str(),
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o600),
                    )
                    .map_err(|e| err("create")(e.into()))?;
                    let mut file = std::fs::File::from(fd);
                    let digest = write_data(&mut entry, *size, &mut file, &rel, err("write"))?;
                    rustix::fs::fchmod(&file, Mode::from_raw_mode(sanitize(*mode)))
                        .map_err(|e| err("set mode of")(e.into()))?;
                    write!(ops, "F {mode:o} {size} {name} {} ", digest.hex()).map_err(bad)?;
                }
                Op::Symlink { target } => {
                    ops.extend_from_slice(b"S ");
                    escape(target.as_os_str().as_bytes(), &mut ops);
                    ops.push(b' ');
                }
                Op::Link { target } => {
                    ops.extend_from_slice(b"H ");
                    escape(target.as_os_str().as_bytes(), &mut ops);
                    ops.push(b' ');
                }
                Op::Whiteout => ops.extend_from_slice(b"W "),
            }
            escape(rel.as_os_str().as_bytes(), &mut ops);
            ops.push(b'\n');
        }
        Ok(())
    })?;
    let used = budget.used() - before;
    let mut text = format!("{MAGIC} {used}\n").into_bytes();
    text.extend_from_slice(&ops);
    let path = dest.join(OPS);
    std::fs::write(&path, text).map_err(|e| fs_error(dest, Path::new(OPS), "write", e))?;
    Ok(used)
}

/// The decompressed bytes a stored layer was read from.
pub fn stored_bytes(layer: &Path) -> Result<u64> {
    let text = read_ops_file(layer)?;
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    parse_header(layer, first)
}

/// Applies stored layers, lowest first, onto `dest` (created if missing),
/// each given with its digest (for messages). Regular files become hard
/// links of the stored ones; returns the digest of each by inode.
pub fn compose(layers: &[(PathBuf, Digest)], dest: &Path, select: Select) -> Result<InodeDigests> {
    std::fs::create_dir_all(dest).map_err(|e| super::dest_error(dest, "create", e))?;
    let root = Root::open(dest).map_err(|e| super::dest_error(dest, "open", e))?;
    let mut digests = InodeDigests::new();
    for (dir, digest) in layers {
        replay(dir, &root, select, &mut digests).map_err(|e| match e.kind {
            Kind::Integrity => e.context(format!("layer {digest}")),
            _ => e,
        })?;
    }
    Ok(digests)
}

/// One stored layer onto `root`.
fn replay(layer: &Path, root: &Root, select: Select, digests: &mut InodeDigests) -> Result<()> {
    let text = read_ops_file(layer)?;
    let files = layer.join(FILES);
    let files_fd = rustix::fs::open(
        &files,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Fs {
        path: files.clone(),
        action: "open",
        source: e.into(),
    })?;
    let mut lines = text.split(|b| *b == b'\n');
    parse_header(layer, lines.next().unwrap_or_default())?;
    // What this layer wrote, so its own opaque marker never removes it.
    let mut written = HashSet::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let corrupt = || corrupt(layer, line);
        let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
        let name = |i: usize| -> Result<PathBuf> {
            let raw = unescape(fields.get(i).ok_or_else(corrupt)?).ok_or_else(corrupt)?;
            Ok(PathBuf::from(OsStr::from_bytes(&raw)))
        };
        let num = |i: usize, radix: u32| -> Result<u64> {
            let f = fields.get(i).ok_or_else(corrupt)?;
            std::str::from_utf8(f)
                .ok()
                .and_then(|s| u64::from_str_radix(s, radix).ok())
                .ok_or_else(corrupt)
        };
        let mode = |i: usize| num(i, 8).and_then(|m| u32::try_from(m).map_err(|_| corrupt()));
        let (rel, op, stored) = match (fields[0], fields.len()) {
            (b"D", 3) => (name(2)?, Op::Dir { mode: mode(1)? }, None),
            (b"F", 6) => {
                let hex = std::str::from_utf8(fields[4]).map_err(|_| corrupt())?;
                let digest: Digest = format!("sha256:{hex}").parse().map_err(|_| corrupt())?;
                let op = Op::File {
                    mode: mode(1)?,
                    size: num(2, 10)?,
                };
                (name(5)?, op, Some((name(3)?, digest)))
            }
            (b"S", 3) => (name(2)?, Op::Symlink { target: name(1)? }, None),
            (b"H", 3) => (name(2)?, Op::Link { target: name(1)? }, None),
            (b"W", 2) => (name(1)?, Op::Whiteout, None),
            _ => return Err(corrupt()),
        };
        // Our own file, yet names are cleaned again: confinement never
        // rests on what a file on disk says.
        let rel = safe_relative(&rel)?;
        let op = match op {
            Op::Link { target } => Op::Link {
                target: safe_relative(&target)?,
            },
            op => op,
        };
        let data = match &stored {
            Some((file, digest)) => {
                // Only the names store_layer gives: digits, one component.
                let digits = file.as_os_str().as_bytes();
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(corrupt());
                }
                Some(Data::Stored {
                    dir: files_fd.as_fd(),
                    name: file.as_os_str(),
                    digest,
                })
            }
            None => None,
        };
        apply_op(&rel, &op, data, root, select, &mut written, digests)?;
    }
    Ok(())
}

fn read_ops_file(layer: &Path) -> Result<Vec<u8>> {
    let path = layer.join(OPS);
    std::fs::read(&path).map_err(|source| {
        UnpackError::Fs {
            path,
            action: "read",
            source,
        }
        .into()
    })
}

fn parse_header(layer: &Path, line: &[u8]) -> Result<u64> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|l| l.strip_prefix(MAGIC))
        .and_then(|rest| rest.trim().parse().ok())
        .ok_or_else(|| corrupt(layer, line))
}

fn corrupt(layer: &Path, line: &[u8]) -> Error {
    UnpackError::Corrupt {
        layer: layer.to_path_buf(),
        line: line.to_vec(),
    }
    .into()
}

/// Writes `bytes` with `%`, space, control bytes and DEL as `%XX`.
fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        if b <= b' ' || b == b'%' || b == 0x7f {
            out.extend_from_slice(format!("%{b:02x}").as_bytes());
        } else {
            out.push(b);
        }
    }
}

/// The inverse of [`escape`]; `None` for a malformed field.
fn unescape(field: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'%' {
            let hex = std::str::from_utf8(field.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        let mut out = Vec::new();
        escape(&all, &mut out);
        assert!(!out.contains(&b' ') && !out.contains(&b'\n'));
        assert_eq!(unescape(&out).unwrap(), all);
        assert_eq!(unescape(b"a%2"), None);
        assert_eq!(unescape(b"a%zz"), None);
    }
}
