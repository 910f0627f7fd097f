//! Generations: one immutable composed tree per lock (server plus its
//! extensions), built from hard links into the store under a temporary
//! name and renamed into `generations/<n>-<lock12>/`.
//!
//! Before PostgreSQL 18 the server only looks in its own sharedir and
//! pkglibdir, so extension files are linked into those. From 18 on each
//! extension stays in `extensions/<name>/` and `pgoci.conf` points the
//! server there (see `config.rs`).

use crate::error::{Error, IoContext, Result};
use crate::lock::Lock;
use crate::profile::Layout;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// Where the server's directories are inside a generation (relative).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerDirs {
    pub bin: PathBuf,
    pub sharedir: PathBuf,
    pub pkglibdir: PathBuf,
}

/// The lock a generation was composed from, kept inside it.
pub const GENERATION_LOCK: &str = ".pgoci.lock";

/// The first PostgreSQL major with `extension_control_path`.
pub const FIRST_MAJOR_WITH_EXTENSION_PATHS: u32 = 18;

/// Finds bin, sharedir and pkglibdir in an unpacked server artifact.
pub fn server_dirs(lock: &Lock, server_root: &Path) -> Result<ServerDirs> {
    if lock.server.layout == Layout::Rootfs {
        let paths = lock
            .server
            .paths
            .as_ref()
            .ok_or_else(|| Error::integrity("lock: rootfs server without paths".to_string()))?;
        let rel = |p: &str| PathBuf::from(p.trim_start_matches('/'));
        return Ok(ServerDirs {
            bin: rel(&paths.bin),
            sharedir: rel(&paths.share),
            pkglibdir: rel(&paths.lib),
        });
    }
    let find = |marker: &str| -> Result<PathBuf> {
        find_file(server_root, marker, 6)
            .map(|p| {
                p.strip_prefix(server_root)
                    .expect("found under root")
                    .to_path_buf()
            })
            .ok_or_else(|| {
                Error::integrity(format!(
                    "server artifact {} has no {marker}: not a PostgreSQL tree",
                    lock.server.pinned.reference
                ))
            })
    };
    Ok(ServerDirs {
        bin: PathBuf::from("bin"),
        sharedir: find("postgres.bki")?,
        pkglibdir: find("plpgsql.so")?,
    })
}

/// Breadth-first search for the directory holding `name`.
fn find_file(root: &Path, name: &str, max_depth: usize) -> Option<PathBuf> {
    let mut level = vec![root.to_path_buf()];
    for _ in 0..=max_depth {
        let mut next = Vec::new();
        for dir in level {
            if dir.join(name).is_file() {
                return Some(dir);
            }
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            let mut subdirs: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            subdirs.sort();
            next.extend(subdirs);
        }
        level = next;
    }
    None
}

/// One extension's unpacked store entry.
pub struct ExtensionInput<'a> {
    pub name: &'a str,
    pub store_dir: &'a Path,
}

/// Builds a generation at `dest` (which must not exist) from the server's
/// store entry and the extensions'. Returns the server directories.
pub fn compose(
    lock: &Lock,
    dirs: &ServerDirs,
    server_store: &Path,
    extensions: &[ExtensionInput],
    dest: &Path,
) -> Result<()> {
    let parent = dest.parent().expect("generation has a parent");
    fs::create_dir_all(parent).with_path(parent, "create")?;
    let tmp = parent.join(format!(
        ".tmp-{}-{}",
        dest.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_path(&tmp, "remove stale")?;
    }
    let built = (|| {
        link_tree(server_store, &tmp)?;
        // The lock travels with its generation, so rollback can re-render config.
        fs::write(tmp.join(GENERATION_LOCK), lock.to_yaml()?)
            .with_path(&tmp.join(GENERATION_LOCK), "write")?;
        if dirs.bin != Path::new("bin") && !tmp.join("bin").exists() {
            // A stable `bin/` for rootfs servers; PostgreSQL resolves its real
            // location through /proc/self/exe, so relocation still works.
            std::os::unix::fs::symlink(&dirs.bin, tmp.join("bin"))
                .with_path(&tmp.join("bin"), "create symlink")?;
        }
        for ext in extensions {
            if lock.major() >= FIRST_MAJOR_WITH_EXTENSION_PATHS {
                link_tree(ext.store_dir, &tmp.join("extensions").join(ext.name))?;
            } else {
                link_into_server(ext, dirs, &tmp)?;
            }
            let licenses = ext.store_dir.join("licenses");
            if licenses.is_dir() {
                link_tree(&licenses, &tmp.join("licenses").join(ext.name))?;
            }
        }
        let mut stores = vec![server_store.to_path_buf()];
        stores.extend(extensions.iter().map(|e| e.store_dir.to_path_buf()));
        let files = super::manifest::for_generation(&tmp, &stores)?;
        super::manifest::write(&tmp.join(super::manifest::GENERATION_MANIFEST), &files)
    })();
    if let Err(e) = built {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, dest).with_path(dest, "move generation into place")
}

/// Pre-18: the extension's `lib/` into pkglibdir, `share/extension/` into
/// the sharedir's `extension/`. A name clash with a different file is refused.
fn link_into_server(ext: &ExtensionInput, dirs: &ServerDirs, gen: &Path) -> Result<()> {
    let pairs = [
        (ext.store_dir.join("lib"), gen.join(&dirs.pkglibdir)),
        (
            ext.store_dir.join("share/extension"),
            gen.join(&dirs.sharedir).join("extension"),
        ),
    ];
    for (from, to) in pairs {
        if from.is_dir() {
            link_tree(&from, &to)?;
        }
    }
    Ok(())
}

/// Mirrors `from` into `to` with hard links for files (a copy where the
/// filesystem refuses), the same symlinks, and new directories.
pub fn link_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_path(to, "create")?;
    for entry in fs::read_dir(from).with_path(from, "list")? {
        let entry = entry.with_path(from, "list")?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src).with_path(&src, "stat")?;
        if meta.is_dir() {
            link_tree(&src, &dst)?;
        } else if fs::symlink_metadata(&dst).is_ok() {
            if meta.is_file() && same_file(&src, &dst) {
                continue;
            }
            return Err(Error::integrity(format!(
                "{} would replace {} from another artifact",
                src.display(),
                dst.display()
            ))
            .hint("two artifacts of this lock ship the same file; remove one of them"));
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&src).with_path(&src, "read link")?;
            std::os::unix::fs::symlink(&target, &dst).with_path(&dst, "create symlink")?;
        } else if fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst).with_path(&dst, "copy")?;
        }
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}
