//! Linking an image's tree into a generation: hard links (a copy where
//! the file system refuses), directories, and symlinks kept as they are
//! while they stay inside the tree; one that leaves it is resolved inside
//! the image's own root, as a container would, never against the host.

use crate::error::{Classify, Error, IoContext, Kind, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// Artifacts whose trees cannot be linked into one.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{}: symlinked directories nest deeper than {MAX_LINKED_DEPTH} (a loop?)", from.display())]
    TooDeep { from: PathBuf },
    #[error("{} would replace {} from another artifact", src.display(), dst.display())]
    Conflict { src: PathBuf, dst: PathBuf },
}

impl Classify for LinkError {
    fn kind(&self) -> Kind {
        Kind::Integrity
    }

    fn hint(&self) -> Option<String> {
        match self {
            LinkError::Conflict { .. } => Some(
                "two artifacts of this lock ship the same path with different content; remove one of them".into(),
            ),
            LinkError::TooDeep { .. } => None,
        }
    }
}

/// Mirrors `from` (a directory of the image whose root is `image`) into
/// `to`: hard links for files (a copy where the filesystem refuses), new
/// directories, and symlinks as they are when they stay inside `from`.
/// A symlink that leaves `from` — absolute, or up and out — is resolved
/// inside the image, as a container would see it (Debian's
/// `postgis.control -> /etc/alternatives/…`), and its target's content is
/// installed; one that resolves to nothing is left out, never pointed at
/// the host.
pub fn link_tree(image: &Path, from: &Path, to: &Path) -> Result<()> {
    link_tree_at(image, from, to, 0)
}

/// How deep symlinked directories may nest while being materialised.
const MAX_LINKED_DEPTH: usize = 32;

fn link_tree_at(image: &Path, from: &Path, to: &Path, depth: usize) -> Result<()> {
    if depth > MAX_LINKED_DEPTH {
        return Err(LinkError::TooDeep {
            from: from.to_path_buf(),
        }
        .into());
    }
    fs::create_dir_all(to).with_path(to, "create")?;
    for entry in fs::read_dir(from).with_path(from, "list")? {
        let entry = entry.with_path(from, "list")?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src).with_path(&src, "stat")?;
        if meta.is_dir() {
            link_tree_at(image, &src, &dst, depth)?;
            continue;
        }
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&src).with_path(&src, "read link")?;
            if !stays_inside(&src, &target, from) {
                link_resolved(image, &src, &dst, depth)?;
                continue;
            }
        }
        if fs::symlink_metadata(&dst).is_ok() {
            if same_content(&src, &dst) {
                continue;
            }
            return Err(conflict(&src, &dst));
        }
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&src).with_path(&src, "read link")?;
            std::os::unix::fs::symlink(&target, &dst).with_path(&dst, "create symlink")?;
        } else if fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst).with_path(&dst, "copy")?;
        }
    }
    Ok(())
}

fn conflict(src: &Path, dst: &Path) -> Error {
    LinkError::Conflict {
        src: src.to_path_buf(),
        dst: dst.to_path_buf(),
    }
    .into()
}

/// Whether a relative symlink at `link` stays inside `dir` (lexically).
fn stays_inside(link: &Path, target: &Path, dir: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut at = link.parent().unwrap_or(dir).to_path_buf();
    for c in target.components() {
        match c {
            std::path::Component::ParentDir if at == dir || !at.pop() => return false,
            std::path::Component::Normal(n) => at.push(n),
            _ => {}
        }
    }
    at.starts_with(dir)
}

/// Debian installs versioned control files (`postgis-3.control`) and points
/// `postgis.control` at one through `/etc/alternatives`, which an extension
/// image does not carry. With the alternative gone, the one versioned file
/// beside the link is what it meant.
fn debian_alternative(link: &Path) -> Option<PathBuf> {
    let name = link.file_name()?.to_str()?;
    let stem = name.strip_suffix(".control")?;
    let prefix = format!("{stem}-");
    let candidates: Vec<PathBuf> = fs::read_dir(link.parent()?)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(".control"))
                    .is_some_and(|v| {
                        !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.')
                    })
            })
        })
        .map(|e| e.path())
        .collect();
    match candidates.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Installs what the symlink `src` points to inside `image` at `dst`.
fn link_resolved(image: &Path, src: &Path, dst: &Path, depth: usize) -> Result<()> {
    let rel = src.strip_prefix(image).unwrap_or(src);
    let Some(real) = crate::rootfs::resolve_in_root(image, rel)
        .ok()
        .or_else(|| debian_alternative(src))
    else {
        tracing::warn!(
            "{} points at nothing inside its image: left out",
            src.display()
        );
        return Ok(());
    };
    let meta = fs::metadata(&real).with_path(&real, "stat")?;
    if meta.is_dir() {
        return link_tree_at(image, &real, dst, depth + 1);
    }
    if fs::symlink_metadata(dst).is_ok() {
        return match same_content(&real, dst) {
            true => Ok(()),
            false => Err(conflict(src, dst)),
        };
    }
    if fs::hard_link(&real, dst).is_err() {
        fs::copy(&real, dst).with_path(dst, "copy")?;
    }
    Ok(())
}

/// Whether two paths hold the same thing: the same inode, the same bytes
/// (CloudNativePG's pre-18 extension images copy the server's whole
/// `lib/bitcode/`: byte-identical files are no conflict), or symlinks
/// with the same target.
fn same_content(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(x), Ok(y)) = (fs::symlink_metadata(a), fs::symlink_metadata(b)) else {
        return false;
    };
    if x.file_type().is_symlink() || y.file_type().is_symlink() {
        return x.file_type().is_symlink()
            && y.file_type().is_symlink()
            && fs::read_link(a).ok() == fs::read_link(b).ok();
    }
    if !(x.is_file() && y.is_file()) {
        return false;
    }
    if (x.dev(), x.ino()) == (y.dev(), y.ino()) {
        return true;
    }
    x.len() == y.len()
        && matches!(
            (crate::digest::Digest::of_file(a), crate::digest::Digest::of_file(b)),
            (Ok((da, _)), Ok((db, _))) if da == db
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_files_from_two_artifacts_merge_and_different_ones_conflict() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, gen) = (d.path().join("a"), d.path().join("b"), d.path().join("g"));
        for (root, text) in [(&a, "same"), (&b, "same")] {
            fs::create_dir_all(root.join("lib/bitcode")).unwrap();
            fs::write(root.join("lib/bitcode/x.bc"), text).unwrap();
            std::os::unix::fs::symlink("x.bc", root.join("lib/bitcode/l")).unwrap();
        }
        link_tree(&a, &a, &gen).unwrap();
        link_tree(&b, &b, &gen).unwrap();
        let c = d.path().join("cc");
        fs::create_dir_all(c.join("lib/bitcode")).unwrap();
        fs::write(c.join("lib/bitcode/x.bc"), "other").unwrap();
        let e = link_tree(&c, &c, &gen).unwrap_err();
        assert_eq!(e.kind, crate::Kind::Integrity);
        assert!(e.message.contains("would replace"), "{}", e.message);
    }

    #[test]
    fn symlinks_leaving_the_tree_install_what_they_point_to_inside_the_image() {
        let d = tempfile::tempdir().unwrap();
        let image = d.path().join("image");
        let ext = image.join("share/extension");
        fs::create_dir_all(&ext).unwrap();
        fs::create_dir_all(image.join("etc/alternatives")).unwrap();
        fs::create_dir_all(image.join("usr/share/postgis")).unwrap();
        fs::write(image.join("usr/share/postgis/postgis.control"), "control").unwrap();
        let link = |target: &str, at: &Path| std::os::unix::fs::symlink(target, at).unwrap();
        // Debian: control -> /etc/alternatives/… -> /usr/share/…
        link(
            "/usr/share/postgis/postgis.control",
            &image.join("etc/alternatives/pc"),
        );
        link("/etc/alternatives/pc", &ext.join("postgis.control"));
        link("postgis.control", &ext.join("inside.control"));
        link("/nowhere", &ext.join("dangling.control"));
        link("../../../../../etc/passwd", &ext.join("up.control"));
        let gen = d.path().join("gen");
        link_tree(&image, &ext, &gen).unwrap();
        assert_eq!(
            fs::read_to_string(gen.join("postgis.control")).unwrap(),
            "control"
        );
        assert!(!gen.join("postgis.control").is_symlink());
        assert_eq!(
            fs::read_link(gen.join("inside.control")).unwrap(),
            Path::new("postgis.control")
        );
        // Debian's alternative gone from the image: its versioned file.
        fs::write(ext.join("address_standardizer-3.control"), "as3").unwrap();
        link(
            "/etc/alternatives/as",
            &ext.join("address_standardizer.control"),
        );
        link_tree(&image, &ext, &d.path().join("gen2")).unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("gen2/address_standardizer.control")).unwrap(),
            "as3"
        );
        // Never pointed at the host: what resolves to nothing is left out.
        assert!(fs::symlink_metadata(gen.join("dangling.control")).is_err());
        assert!(fs::symlink_metadata(gen.join("up.control")).is_err());
    }
}
