//! Applying OCI layers to a directory, safely. Entries are confined to the
//! target: `..` and absolute names, links that point outside, writes
//! through symlinks and device nodes are refused with an integrity error;
//! whiteouts (`.wh.NAME`, `.wh..wh..opq`) are honoured, never written.

use crate::digest::VerifyingReader;
use crate::error::{Error, IoContext, Result};
use crate::lock::Blob;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// How a layer is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type implies; `None` if not a layer type pgoci reads.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Some(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Decides which entries of a layer are kept, and where: `None` skips.
pub type Select<'a> = &'a dyn Fn(&Path) -> Option<PathBuf>;

/// An owned [`Select`].
pub type Selector = Box<dyn Fn(&Path) -> Option<PathBuf>>;

/// Keeps every entry where it is.
pub fn keep_all(path: &Path) -> Option<PathBuf> {
    Some(path.to_path_buf())
}

/// Applies one layer blob (read from `reader`, verified against `blob` as it
/// streams) on top of `dest`.
pub fn apply_layer(reader: impl Read, blob: &Blob, dest: &Path, select: Select) -> Result<()> {
    let compression = Compression::from_media_type(&blob.media_type).ok_or_else(|| {
        Error::integrity(format!(
            "layer {} has unsupported media type {}",
            blob.digest, blob.media_type
        ))
    })?;
    std::fs::create_dir_all(dest).with_path(dest, "create")?;
    let mut verifying = VerifyingReader::new(reader, blob.digest.clone(), blob.size);
    let decoder: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(&mut verifying),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut verifying)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(&mut verifying)
                .map_err(|e| Error::integrity(format!("layer {}: {e}", blob.digest)))?,
        ),
    };
    let layer_err = |e: io::Error| Error::integrity(format!("layer {}: {e}", blob.digest));
    let mut archive = tar::Archive::new(decoder);
    for entry in archive.entries().map_err(layer_err)? {
        let entry = entry.map_err(layer_err)?;
        apply_entry(entry, dest, select).map_err(|e| match e.kind {
            crate::error::Kind::Integrity => {
                Error::integrity(format!("layer {}: {}", blob.digest, e.message))
            }
            _ => e,
        })?;
    }
    // Read to the very end so the digest check runs on every byte.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(layer_err)?;
    drop(rest);
    io::copy(&mut verifying, &mut io::sink()).map_err(layer_err)?;
    Ok(())
}

/// Turns an archive name into a safe relative path, or refuses it.
pub fn safe_relative(name: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                return Err(Error::integrity(format!(
                    "unsafe archive entry {}: `..` is not allowed",
                    name.display()
                )))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(Error::integrity(format!(
                    "unsafe archive entry {}: absolute paths are not allowed",
                    name.display()
                )))
            }
        }
    }
    Ok(out)
}

/// Whether a symlink at `link` (relative to the root) with `target` stays inside the root.
fn symlink_stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Makes sure every parent of `rel` under `root` is a real directory (never
/// a symlink), creating missing ones, and returns the full path.
fn prepare_parents(root: &Path, rel: &Path) -> Result<PathBuf> {
    let mut cur = root.to_path_buf();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Error::integrity(format!(
                        "unsafe archive entry {}: {} is not a directory (a link?)",
                        rel.display(),
                        cur.display()
                    )))
                }
                Err(_) => fs::create_dir(&cur).with_path(&cur, "create directory")?,
            }
        }
    }
    Ok(root.join(rel))
}

/// Removes whatever is at `path` (file, link or whole directory), if anything.
fn remove_any(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).with_path(path, "remove"),
        Ok(_) => fs::remove_file(path).with_path(path, "remove"),
        Err(_) => Ok(()),
    }
}

/// The target a symlink or hardlink entry names.
fn link_target<R: Read>(entry: &tar::Entry<R>, rel: &Path) -> Result<PathBuf> {
    entry
        .link_name()
        .map_err(|e| Error::integrity(format!("bad link {}: {e}", rel.display())))?
        .map(|t| t.into_owned())
        .ok_or_else(|| Error::integrity(format!("link {} has no target", rel.display())))
}

fn apply_entry<R: Read>(mut entry: tar::Entry<R>, root: &Path, select: Select) -> Result<()> {
    let name = entry
        .path()
        .map_err(|e| Error::integrity(format!("bad entry name: {e}")))?;
    let rel = safe_relative(&name)?;
    if rel.as_os_str().is_empty() {
        return Ok(());
    }
    let file_name = rel
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Whiteouts act on what lower layers put there, then vanish.
    if let Some(hidden) = file_name.strip_prefix(".wh.") {
        let Some(out) = select(&rel) else {
            return Ok(());
        };
        let dir = out.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir_full = prepare_parents(root, &dir.join("x"))?;
        let dir_full = dir_full.parent().expect("joined").to_path_buf();
        if hidden == ".wh..opq" {
            if let Ok(children) = fs::read_dir(&dir_full) {
                for child in children.flatten() {
                    remove_any(&child.path())?;
                }
            }
        } else {
            remove_any(&dir_full.join(hidden))?;
        }
        return Ok(());
    }
    let Some(out) = select(&rel) else {
        return Ok(());
    };
    let full = prepare_parents(root, &out)?;
    let header = entry.header();
    let mode = header.mode().unwrap_or(0o644) & 0o1777; // never setuid/setgid
    let kind = header.entry_type();
    match kind {
        tar::EntryType::Directory => {
            match fs::symlink_metadata(&full) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    remove_any(&full)?;
                    fs::create_dir(&full).with_path(&full, "create directory")?;
                }
                Err(_) => fs::create_dir(&full).with_path(&full, "create directory")?,
            }
            fs::set_permissions(&full, fs::Permissions::from_mode(mode | 0o700))
                .with_path(&full, "set mode of")?;
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            remove_any(&full)?;
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&full)
                .with_path(&full, "create")?;
            io::copy(&mut entry, &mut file)
                .map_err(|e| Error::integrity(format!("reading {}: {e}", rel.display())))?;
            file.set_permissions(fs::Permissions::from_mode(mode))
                .with_path(&full, "set mode of")?;
        }
        tar::EntryType::Symlink => {
            let target = link_target(&entry, &rel)?;
            if !symlink_stays_inside(&out, &target) {
                return Err(Error::integrity(format!(
                    "unsafe archive entry {}: symlink to {} leaves the target directory",
                    rel.display(),
                    target.display()
                )));
            }
            remove_any(&full)?;
            std::os::unix::fs::symlink(&target, &full).with_path(&full, "create symlink")?;
        }
        tar::EntryType::Link => {
            let target = link_target(&entry, &rel)?;
            let target_rel = safe_relative(&target)?;
            let Some(target_out) = select(&target_rel) else {
                return Err(Error::integrity(format!(
                    "hardlink {} points at {}, outside what is extracted",
                    rel.display(),
                    target.display()
                )));
            };
            let source = prepare_parents(root, &target_out)?;
            match fs::symlink_metadata(&source) {
                Ok(m) if m.is_file() => {}
                _ => {
                    return Err(Error::integrity(format!(
                        "unsafe archive entry {}: hardlink target {} is not a regular file of this layer set",
                        rel.display(),
                        target.display()
                    )))
                }
            }
            remove_any(&full)?;
            fs::hard_link(&source, &full).with_path(&full, "create hardlink")?;
        }
        tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
        other => {
            return Err(Error::integrity(format!(
                "unsafe archive entry {}: {:?} entries (device nodes, fifos) are refused",
                rel.display(),
                other
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    /// A tar layer built in memory from (name, kind, link target, bytes).
    fn layer(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> (Vec<u8>, Blob) {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, link, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o755);
            h.set_size(data.len() as u64);
            // set_path refuses `..`; write the raw name for hostile cases.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            if !link.is_empty() {
                h.set_link_name_literal(link).unwrap();
            }
            h.set_cksum();
            builder.append(&h, *data).unwrap();
        }
        let bytes = builder.into_inner().unwrap();
        let blob = Blob {
            digest: Digest::of_bytes(&bytes),
            size: bytes.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        };
        (bytes, blob)
    }

    fn apply(entries: &[(&str, tar::EntryType, &str, &[u8])], dir: &Path) -> Result<()> {
        let (bytes, blob) = layer(entries);
        apply_layer(&bytes[..], &blob, dir, &keep_all)
    }

    use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};

    #[test]
    fn refuses_escapes() {
        for bad in [
            vec![("../evil", F, "", &b"x"[..])],
            vec![("/abs", F, "", &b"x"[..])],
            vec![("link", S, "/etc", &b""[..])],
            vec![("link", S, "../../etc", &b""[..])],
            vec![
                ("d/", D, "", &b""[..]),
                ("d/l", S, "..", &b""[..]),
                ("d/l/x", F, "", &b"x"[..]),
            ],
            vec![("hl", H, "../outside", &b""[..])],
            vec![("dev", tar::EntryType::Char, "", &b""[..])],
        ] {
            let dir = tempfile::tempdir().unwrap();
            let err = apply(&bad, &dir.path().join("root")).unwrap_err();
            assert_eq!(
                err.kind,
                crate::error::Kind::Integrity,
                "{:?}: {}",
                bad[0].0,
                err.message
            );
        }
    }

    #[test]
    fn refuses_writing_through_an_inside_symlink_to_a_dir() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let err = apply(
            &[("a/", D, "", b""), ("l", S, "a", b""), ("l/f", F, "", b"x")],
            &root,
        )
        .unwrap_err();
        assert!(err.message.contains("not a directory"), "{}", err.message);
    }

    #[test]
    fn applies_files_links_and_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        apply(
            &[
                ("bin/", D, "", b""),
                ("bin/a", F, "", b"A"),
                ("bin/b", H, "bin/a", b""),
                ("bin/c", S, "a", b""),
                ("old/", D, "", b""),
                ("old/x", F, "", b"x"),
                ("gone", F, "", b"g"),
            ],
            root,
        )
        .unwrap();
        assert_eq!(fs::read(root.join("bin/b")).unwrap(), b"A");
        assert_eq!(fs::read(root.join("bin/c")).unwrap(), b"A");
        apply(
            &[
                (".wh.gone", F, "", b""),
                ("old/.wh..wh..opq", F, "", b""),
                ("old/y", F, "", b"y"),
            ],
            root,
        )
        .unwrap();
        assert!(!root.join("gone").exists());
        assert!(!root.join("old/x").exists());
        assert!(root.join("old/y").exists());
        assert!(!root.join("old/.wh..wh..opq").exists());
    }

    #[test]
    fn wrong_bytes_fail_the_digest() {
        let (mut bytes, blob) = layer(&[("f", F, "", b"hello")]);
        bytes[600] ^= 1;
        let dir = tempfile::tempdir().unwrap();
        let err = apply_layer(&bytes[..], &blob, dir.path(), &keep_all).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Integrity);
    }
}
