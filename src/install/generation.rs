//! Generations: one immutable composed tree per lock (server plus its
//! extensions), built from hard links into the store under a temporary
//! name and renamed into `generations/<n>-<lock12>/`.
//!
//! Before PostgreSQL 18 the server only looks in its own sharedir and
//! pkglibdir, so extension files are linked into those. From 18 on each
//! extension stays in `extensions/<name>/` and `pgoci.conf` points the
//! server there (see `config.rs`).

use super::link::link_tree;
pub use super::runtime::{read_runtime_env, RuntimeEnv};
use crate::error::{Classify, IoContext, Kind, Result};
use crate::lock::Lock;
use crate::profile::Layout;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// An artifact that cannot be composed into a generation.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error("server artifact {reference} has no {marker}: not a PostgreSQL tree")]
    NotPostgres { reference: String, marker: String },
    #[error("extension {extension} sets {key}, which only pgoci may set")]
    ReservedVariable { extension: String, key: String },
    #[error("the server image needs a library named {soname:?}, which is not a file name")]
    LibraryNotAFileName { soname: String },
    #[error("lock: rootfs server without paths")]
    RootfsWithoutPaths,
}

impl Classify for GenerationError {
    fn kind(&self) -> Kind {
        Kind::Integrity
    }

    fn hint(&self) -> Option<String> {
        match self {
            GenerationError::ReservedVariable { .. } => {
                Some("drop that variable from the extension's env".into())
            }
            _ => None,
        }
    }
}

/// Where the server's directories are inside a generation (relative).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerDirs {
    pub bin: PathBuf,
    pub sharedir: PathBuf,
    pub pkglibdir: PathBuf,
}

pub use super::layout::{GENERATION_LOCK, RUNTIME_ENV};

/// The first PostgreSQL major with `extension_control_path`.
pub const FIRST_MAJOR_WITH_EXTENSION_PATHS: u32 = 18;

/// Finds bin, sharedir and pkglibdir in an unpacked server artifact.
pub fn server_dirs(lock: &Lock, server_root: &Path) -> Result<ServerDirs> {
    if lock.server.layout == Layout::Rootfs {
        let paths = lock
            .server
            .paths
            .as_ref()
            .ok_or(GenerationError::RootfsWithoutPaths)?;
        let rel = |p: &str| PathBuf::from(p.trim_start_matches('/'));
        return Ok(ServerDirs {
            bin: rel(paths.bin.as_str()),
            sharedir: rel(paths.share.as_str()),
            pkglibdir: rel(paths.lib.as_str()),
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
                GenerationError::NotPostgres {
                    reference: lock.server.pinned.reference.clone(),
                    marker: marker.to_string(),
                }
                .into()
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
    /// Image-relative directories of system libraries (`system` is implied when present).
    pub ld_library_path: &'a [crate::names::ImagePath],
    /// Environment the server needs for this extension; `${image_root}` is
    /// the extension's tree in the generation.
    pub env: &'a std::collections::BTreeMap<crate::names::EnvKey, String>,
}

/// The system-library directory of a generation, for `LD_LIBRARY_PATH`.
pub const DEPS_DIR: &str = "lib/pgoci-deps";

/// The loader cache of the machine the server runs on. Under `--root` too:
/// the server runs here, as this machine's loader finds its libraries.
const HOST_LD_CACHE: &str = "/etc/ld.so.cache";

/// Shared-library names the host's dynamic loader already knows: its
/// `ld.so.cache`, read by pgoci's own parser (no `ldconfig -p`, which a
/// user's PATH may lack). A cache that cannot be read knows nothing, so
/// every library an extension carries is linked in.
fn host_libraries(cache: &Path) -> std::collections::BTreeSet<String> {
    let parsed = std::fs::read(cache)
        .ok()
        .and_then(|bytes| crate::elf::ldcache::parse(&bytes).ok());
    parsed
        .map(|c| c.entries.into_iter().map(|e| e.soname).collect())
        .unwrap_or_default()
}

/// Links each extension's system libraries that the host lacks into
/// `DEPS_DIR`, and resolves its environment; `gen_final` is where the
/// generation will live once renamed into place.
fn runtime_env(
    extensions: &[ExtensionInput],
    tmp: &Path,
    gen_final: &Path,
    major: u32,
) -> Result<RuntimeEnv> {
    let mut env = RuntimeEnv::default();
    let mut host = None;
    for ext in extensions {
        let mut dirs: Vec<&Path> = ext
            .ld_library_path
            .iter()
            .map(|p| p.as_relative())
            .collect();
        let system = Path::new("system");
        if ext.store_dir.join(system).is_dir() && !dirs.contains(&system) {
            dirs.push(system);
        }
        for dir in dirs {
            let from = ext.store_dir.join(dir);
            let Ok(entries) = fs::read_dir(&from) else {
                continue;
            };
            let host = host.get_or_insert_with(|| host_libraries(Path::new(HOST_LD_CACHE)));
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if host.contains(&name) {
                    continue; // the host provides it: the host's copy wins
                }
                let deps = tmp.join(DEPS_DIR);
                fs::create_dir_all(&deps).with_path(&deps, "create")?;
                let dst = deps.join(&name);
                if fs::symlink_metadata(&dst).is_ok() {
                    continue;
                }
                let src = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                    let target = fs::read_link(&src).with_path(&src, "read link")?;
                    std::os::unix::fs::symlink(target, &dst).with_path(&dst, "create symlink")?;
                } else if fs::hard_link(&src, &dst).is_err() {
                    fs::copy(&src, &dst).with_path(&dst, "copy")?;
                }
                env.ld_library_path = Some(gen_final.join(DEPS_DIR));
            }
        }
        if !ext.env.is_empty() {
            let image_root = gen_final.join("extensions").join(ext.name);
            if major < FIRST_MAJOR_WITH_EXTENSION_PATHS {
                // ${image_root} must exist before 18 too, where files are merged.
                link_tree(
                    ext.store_dir,
                    ext.store_dir,
                    &tmp.join("extensions").join(ext.name),
                )?;
            }
            for (k, v) in ext.env {
                // The loader's and PostgreSQL's own variables are pgoci's to
                // set: an extension may not redirect them (LD_PRELOAD, PGDATA…).
                let key = k.to_string();
                if key.starts_with("LD_")
                    || ["PATH", "PGDATA", "PGPORT", "PGHOST"].contains(&key.as_str())
                {
                    return Err(GenerationError::ReservedVariable {
                        extension: ext.name.to_string(),
                        key,
                    }
                    .into());
                }
                env.vars.insert(
                    k.to_string(),
                    v.replace("${image_root}", &image_root.display().to_string()),
                );
            }
        }
    }
    Ok(env)
}

/// Builds a generation at `dest` (which must not exist) from the server's
/// store entry and the extensions'. Returns what the server's environment
/// needs (also kept in the generation, for re-runs).
pub fn compose(
    lock: &Lock,
    dirs: &ServerDirs,
    server_store: &Path,
    extensions: &[ExtensionInput],
    image_libs: &[(String, PathBuf)],
    image_loader: Option<&Path>,
    dest: &Path,
) -> Result<RuntimeEnv> {
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
        link_server(lock, dirs, server_store, &tmp)?;
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
                link_tree(
                    ext.store_dir,
                    ext.store_dir,
                    &tmp.join("extensions").join(ext.name),
                )?;
            } else {
                link_into_server(ext, dirs, &tmp)?;
            }
            super::licenses::gather(ext.name, ext.store_dir, &tmp)?;
        }
        let mut env = runtime_env(extensions, &tmp, dest, lock.major())?;
        // Libraries of the server image the host lacks, under their sonames.
        for (soname, path) in image_libs {
            // The soname is a DT_NEEDED string from the image: one plain
            // file name, or refused (it becomes a path under the generation).
            let plain = Path::new(soname).components().count() == 1
                && matches!(
                    Path::new(soname).components().next(),
                    Some(std::path::Component::Normal(_))
                )
                && !soname.chars().any(char::is_control);
            if !plain {
                return Err(GenerationError::LibraryNotAFileName {
                    soname: soname.to_string(),
                }
                .into());
            }
            let deps = tmp.join(DEPS_DIR);
            fs::create_dir_all(&deps).with_path(&deps, "create")?;
            let dst = deps.join(soname);
            if fs::symlink_metadata(&dst).is_err() && fs::hard_link(path, &dst).is_err() {
                fs::copy(path, &dst).with_path(&dst, "copy")?;
            }
            env.ld_library_path = Some(dest.join(DEPS_DIR));
        }
        env.notify = super::postgres::links_libsystemd(&tmp.join(&dirs.bin).join("postgres"));
        if let Some(loader) = image_loader {
            // The image's glibc is in DEPS_DIR: on LD_LIBRARY_PATH it would
            // reach the host's programs the server starts, with the host's
            // loader. The patched executables find it through their RPATH.
            env.ld_library_path = None;
            env.rewritten = Some(super::loader::run_on_image_loader(
                &tmp,
                dest,
                &dirs.bin,
                Path::new(DEPS_DIR),
                loader,
            )?);
        }
        let env_file = tmp.join(RUNTIME_ENV);
        fs::write(&env_file, serde_json::to_vec(&env).expect("serializable"))
            .with_path(&env_file, "write")?;
        let mut stores = vec![server_store.to_path_buf()];
        stores.extend(extensions.iter().map(|e| e.store_dir.to_path_buf()));
        let files = super::manifest::for_generation(&tmp, &stores)?;
        super::manifest::write(&tmp.join(super::manifest::GENERATION_MANIFEST), &files)?;
        Ok(env)
    })();
    let env = match built {
        Ok(env) => env,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    fs::rename(&tmp, dest).with_path(dest, "move generation into place")?;
    Ok(env)
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
            link_tree(ext.store_dir, &from, &to)?;
        }
    }
    Ok(())
}

/// The server's part of a generation: the whole tree for `tree` images;
/// for `rootfs` images only the profile's `paths` (bin, lib, share), at
/// their positions — the store keeps the whole image root.
fn link_server(lock: &Lock, dirs: &ServerDirs, store: &Path, gen: &Path) -> Result<()> {
    if lock.server.layout != Layout::Rootfs {
        return link_tree(store, store, gen);
    }
    for rel in [&dirs.bin, &dirs.pkglibdir, &dirs.sharedir] {
        let from = store.join(rel);
        if from.is_dir() {
            link_tree(store, &from, &gen.join(rel))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_libraries_are_what_ldconfig_lists() {
        let ours = host_libraries(Path::new(HOST_LD_CACHE));
        assert!(ours.contains("libc.so.6"), "{ours:?}");
        let out = std::process::Command::new("/sbin/ldconfig")
            .arg("-p")
            .output()
            .expect("ldconfig");
        let theirs: std::collections::BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            // Entries are indented; a header and a "Cache generated by" trailer are not.
            .filter(|l| l.starts_with('\t'))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        assert_eq!(ours, theirs);
        assert!(host_libraries(Path::new("/nowhere/ld.so.cache")).is_empty());
    }
}
