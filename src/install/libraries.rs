//! `--libraries auto|host|image`: which shared libraries the server and
//! its extensions need, and whether the host or the image provides each —
//! read from the ELF files ([`crate::elf`]), never by running them. Install
//! runs this right after unpacking, before anything else changes, and
//! refuses (exit 6) what cannot run, and (exit 5) an artifact whose ELF
//! files are broken; doctor prints the same table.

use super::generation::server_dirs;
use crate::elf::{self, policy, Closure, Problem, Root};
use crate::error::{Classify, Kind, Result};
use crate::lock::Lock;
use crate::profile::Layout;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The server's libraries cannot be had as asked.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// ELF files of the artifacts that no loader could load.
    #[error(
        "the artifacts hold ELF files the server would load that no loader could: {}",
        first_eight(files)
    )]
    Broken { files: Vec<String> },
    /// Libraries or versions missing under `mode`, with who needs them.
    #[error("the server cannot run on this host with --libraries {}: {}", mode_name(*mode), first_eight(failures))]
    Unrunnable {
        mode: LibraryMode,
        failures: Vec<String>,
    },
}

impl Classify for LibraryError {
    fn kind(&self) -> Kind {
        match self {
            LibraryError::Broken { .. } => Kind::Integrity,
            LibraryError::Unrunnable { .. } => Kind::Host,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            LibraryError::Broken { .. } => "re-pull the artifact if it was damaged in transit, else rebuild the image: these files would not load".into(),
            LibraryError::Unrunnable { .. } => "install the missing libraries, try another --libraries mode, or use an image built for this host's release; `pgoci doctor --bundle …` shows the table".into(),
        })
    }
}

/// The first eight of a list, `; `-separated, and how many more.
fn first_eight(list: &[String]) -> String {
    let shown: Vec<&str> = list.iter().take(8).map(String::as_str).collect();
    let more = list.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} (and {more} more)", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

/// The mode as `--libraries` spells it.
fn mode_name(mode: LibraryMode) -> String {
    serde_json::to_value(mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Where the server's libraries may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LibraryMode {
    /// The host's where they satisfy every need, the image's where not.
    #[default]
    Auto,
    /// The host's only: anything missing is refused before install.
    Host,
    /// The image's own, its dynamic loader included.
    Image,
}

impl LibraryMode {
    fn policy(self) -> policy::Mode {
        match self {
            LibraryMode::Auto => policy::Mode::Auto,
            LibraryMode::Host => policy::Mode::Host,
            LibraryMode::Image => policy::Mode::Image,
        }
    }
}

/// One need, for the table doctor prints and `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Who needs it: a file of an artifact, or a library.
    pub needed_by: String,
    /// The soname and the versions required of it.
    pub need: String,
    /// `host /usr/lib/…`, `image usr/lib/…`, `artifact …` or `missing`.
    pub found: String,
}

/// The verdict on an artifact set's libraries.
#[derive(Debug, Clone, Serialize)]
pub struct LibraryReport {
    pub mode: LibraryMode,
    pub files_checked: usize,
    pub rows: Vec<Row>,
    /// Why it cannot run as asked (empty when it can), one line each.
    pub failures: Vec<String>,
    /// Files of the artifacts the server would load that are damaged or
    /// forged ELF (a header or table past the end, `e_phnum` 65535, a
    /// string table outside the file) or name a library by a path: the
    /// artifact is bad (exit 5), whatever the host has. One line each,
    /// naming the file and what is wrong.
    pub broken: Vec<String>,
    /// Modules of the server no one asked for (PL/Perl, PL/Python, …)
    /// that could not load here: they fail only if someone loads them.
    pub optional_missing: Vec<String>,
    pub glibc_required: Option<String>,
    pub glibc_host: Option<String>,
    /// Libraries the image must provide: (soname, host path in the
    /// store). They go to the generation's `lib/pgoci-deps`.
    pub from_image: Vec<(String, PathBuf)>,
    /// The image's dynamic loader (its path in the store) when the server
    /// must run on the image's glibc: the generation's executables are
    /// patched to start it (interpreter and RPATH), and `LD_LIBRARY_PATH`
    /// is left alone, so what the server starts keeps the host's libraries.
    #[serde(skip)]
    pub image_loader: Option<PathBuf>,
    /// `host` or `image`: whose dynamic loader (and glibc) runs the server.
    pub loader: &'static str,
    /// The collation libraries the server would run on (glibc, ICU).
    pub collation: super::collation::CollationLibs,
}

impl LibraryReport {
    /// `Ok` when the server can run as asked; exit 5 naming each broken
    /// file when an artifact holds one, else exit 6 naming each missing
    /// library or version and who needs it.
    pub fn refuse_failed(&self) -> Result<()> {
        if !self.broken.is_empty() {
            return Err(LibraryError::Broken {
                files: self.broken.clone(),
            }
            .into());
        }
        if self.failures.is_empty() {
            return Ok(());
        }
        Err(LibraryError::Unrunnable {
            mode: self.mode,
            failures: self.failures.clone(),
        }
        .into())
    }
}

/// The ELF files directly in `dir`, sorted, and why each file that claims
/// to be ELF cannot be read (a damaged `bin/postgres` is not skipped: it
/// is the artifact's fault, found here rather than at initdb).
fn elf_files_in(dir: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return (Vec::new(), Vec::new());
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    paths.sort();
    let mut found = Vec::new();
    let mut broken = Vec::new();
    for p in paths {
        match elf::inspect(&p) {
            Ok(Some(_)) => found.push(p),
            Ok(None) => {}
            Err(e) => broken.push(e.message),
        }
    }
    (found, broken)
}

/// Whether a closure problem is the artifacts' fault: a file under the
/// store (as given or canonical) that claims to be ELF and cannot be read.
fn artifact_damage(p: &Problem, stores: &[PathBuf]) -> Option<String> {
    match p {
        Problem::Unreadable { path, message } if stores.iter().any(|s| path.starts_with(s)) => {
            Some(message.clone())
        }
        _ => None,
    }
}

/// Checks the libraries of a lock's unpacked artifacts under `mode`: the
/// server's programs and the requested extensions' modules must load
/// (failures); with `optional`, the server's own other modules are read
/// too and what they lack is listed apart. Every artifact of the lock
/// must be unpacked in `store` (`<store>/<manifest hex>/`).
pub fn check(
    lock: &Lock,
    store: &Path,
    mode: LibraryMode,
    optional: bool,
) -> Result<LibraryReport> {
    let server = &store.join(lock.server.pinned.digest.hex());
    let ext_dirs: Vec<PathBuf> = lock
        .extensions
        .iter()
        .map(|e| store.join(e.pinned.digest.hex()))
        .collect();
    let extensions: Vec<(&Path, &[crate::names::ImagePath])> = ext_dirs
        .iter()
        .zip(&lock.extensions)
        .map(|(d, e)| (d.as_path(), e.ld_library_path.as_slice()))
        .collect();
    let dirs = server_dirs(lock, server)?;
    let (mut files, mut broken) = elf_files_in(&server.join(&dirs.bin));
    for (ext, _) in &extensions {
        let (f, b) = elf_files_in(&ext.join("lib"));
        files.extend(f);
        broken.extend(b);
    }
    let (optional_files, optional_broken) = match optional {
        true => elf_files_in(&server.join(&dirs.pkglibdir)),
        false => (Vec::new(), Vec::new()),
    };
    // What the extensions carry for themselves (`system/`, `ld_library_path`)
    // counts everywhere: pgoci places it for them.
    let ext_roots: Vec<Root> = extensions
        .iter()
        .map(|(dir, paths)| {
            let mut lib_path: Vec<PathBuf> = vec!["/system".into()];
            lib_path.extend(paths.iter().map(|p| Path::new("/").join(p.as_relative())));
            Root::image(*dir).with_library_path(lib_path)
        })
        .collect();
    let mut host_roots = vec![Root::host()];
    host_roots.extend(ext_roots.iter().cloned());
    let mut image_roots = Vec::new();
    if lock.server.layout == Layout::Rootfs {
        image_roots.push(Root::image(server));
    }
    image_roots.extend(ext_roots.iter().cloned());
    // The artifacts' own `$ORIGIN` paths resolve inside their store entry.
    let confine: Vec<PathBuf> = std::iter::once(server)
        .chain(&ext_dirs)
        .map(|d| fs::canonicalize(d).unwrap_or_else(|_| d.clone()))
        .collect();
    let mut host = elf::closure_confined(&files, &host_roots, &confine);
    let image = elf::closure_confined(&files, &image_roots, &confine);
    if mode == LibraryMode::Auto && lock.server.layout == Layout::Rootfs {
        add_host_libraries_behind_the_image(&mut host, &files, &host_roots, server, &confine);
    }
    let plan = policy::plan(mode.policy(), &host, &image);
    let stores = [
        store.to_path_buf(),
        fs::canonicalize(store).unwrap_or_else(|_| store.to_path_buf()),
    ];
    // A `DT_NEEDED` naming a path ("/tmp/x/libz.so", "../lib/libz.so"):
    // ld.so would open that very path on the host, which pgoci can neither
    // check nor place; the closure never looks it up on the host.
    for need in host.needs.iter().chain(&image.needs) {
        if need.soname.contains('/') {
            let why = format!(
                "{} needs a library by the path {:?}, not by a file name",
                need.needed_by, need.soname
            );
            if !broken.contains(&why) {
                broken.push(why);
            }
        }
    }
    for p in host.problems.iter().chain(&image.problems) {
        if let Some(why) = artifact_damage(p, &stores) {
            if !broken.contains(&why) {
                broken.push(why);
            }
        }
    }
    let mut optional_missing: Vec<String> = optional_broken;
    if !optional_files.is_empty() {
        let h = elf::closure_confined(&optional_files, &host_roots, &confine);
        let i = elf::closure_confined(&optional_files, &image_roots, &confine);
        optional_missing.extend(
            policy::plan(mode.policy(), &h, &i)
                .failures
                .iter()
                .map(|p| shorten(&p.to_string(), server)),
        );
    }
    let mut failures: Vec<String> = plan
        .failures
        .iter()
        .filter(|p| artifact_damage(p, &stores).is_none())
        .map(|p| shorten(&p.to_string(), server))
        .collect();
    // glibc libraries of the very same release as the host's mix safely with
    // the host's loader; only a newer image glibc (or `--libraries image`)
    // needs the image's loader, which the generation's executables are
    // then patched to use.
    let same_glibc =
        image.glibc_available.is_some() && image.glibc_available == host.glibc_available;
    let image_loader = match plan.image_loader.is_some()
        && (!same_glibc || mode == LibraryMode::Image)
    {
        false => None,
        true => match image
            .interpreters
            .iter()
            .filter_map(|i| i.found.as_ref())
            .find(|f| f.root == Some(0) && lock.server.layout == Layout::Rootfs)
        {
            Some(found) => Some(found.host.clone()),
            None => {
                failures.push(format!(
                    "the server needs the image's glibc {} (the host has {}), but the server image carries no dynamic loader of its own",
                    image.glibc_available.or(host.glibc_required).map_or("?".into(), |v| v.to_string()),
                    host.glibc_available.map_or("?".into(), |v| v.to_string()),
                ));
                None
            }
        },
    };
    // The server image's own libraries the host lacks (an extension's
    // `system/` is placed by compose already).
    let from_image: Vec<(String, PathBuf)> = plan
        .sources
        .iter()
        .filter(|(_, s)| **s == policy::Source::Image)
        .filter_map(|(soname, _)| Some((soname, image.libraries.get(soname)?)))
        .filter(|(_, lib)| lock.server.layout == Layout::Rootfs && lib.found.root == Some(0))
        .map(|(soname, lib)| (soname.clone(), lib.found.host.clone()))
        .collect();
    // A library needed by a path (`DT_NEEDED` "/usr/lib/…/libx.so") is
    // placed by nobody: the generation's deps are plain file names.
    for (soname, _) in &from_image {
        let plain = !soname.is_empty()
            && soname != "."
            && soname != ".."
            && !soname.contains('/')
            && !soname.chars().any(char::is_control);
        if !plain {
            broken.push(format!(
                "the server image needs a library named {soname:?}, which is not a file name"
            ));
        }
    }
    // The collation libraries the server would run on, read while the
    // artifacts are at hand (a scratch store is gone after the check).
    let collation = super::collation::CollationLibs {
        glibc: match &image_loader {
            Some(_) => from_image
                .iter()
                .find(|(soname, _)| soname == "libc.so.6")
                .and_then(|(_, path)| super::collation::glibc_release(path)),
            None => super::collation::host_glibc(),
        },
        icu: super::collation::icu_of(&server.join(&dirs.bin).join("postgres")),
    };
    Ok(LibraryReport {
        mode,
        collation,
        files_checked: files.len(),
        rows: rows(&host, &image, &plan, server),
        failures,
        broken: broken.iter().map(|b| shorten(b, server)).collect(),
        optional_missing,
        glibc_required: host.glibc_required.map(|v| v.to_string()),
        glibc_host: host.glibc_available.map(|v| v.to_string()),
        from_image,
        loader: match image_loader {
            Some(_) => "image",
            None => "host",
        },
        image_loader,
    })
}

/// With `auto`, a library the host lacks comes from the image, and what
/// that one needs may be on the host again (the image's libldap needs
/// libresolv, which every host has): the plain host walk stops at the
/// missing library and never looks. Walks once more with the server image
/// behind the host's roots and adds the host-side libraries found that way.
fn add_host_libraries_behind_the_image(
    host: &mut Closure,
    files: &[PathBuf],
    host_roots: &[Root],
    server: &Path,
    confine: &[PathBuf],
) {
    let mut roots = host_roots.to_vec();
    roots.push(Root::image(server));
    let image_root = host_roots.len();
    let lookahead = elf::closure_confined(files, &roots, confine);
    for (soname, lib) in lookahead.libraries {
        if lib.found.root.is_some_and(|r| r < image_root) {
            host.libraries.entry(soname).or_insert(lib);
        }
    }
}

/// Store paths are long and all alike: show them from the artifact root.
fn shorten(text: &str, server: &Path) -> String {
    let prefix = server.display().to_string();
    text.replace(&format!("{prefix}/"), "").replace(&prefix, "")
}

fn rows(host: &Closure, image: &Closure, plan: &policy::Plan, server: &Path) -> Vec<Row> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for need in &host.needs {
        if !seen.insert((need.needed_by.clone(), need.soname.clone())) {
            continue;
        }
        let versions: Vec<&str> = need.versions.iter().map(String::as_str).collect();
        let source = plan.sources.get(&need.soname);
        let found = match source {
            Some(policy::Source::Own) => host.libraries.get(&need.soname).map(|l| {
                format!(
                    "artifact {}",
                    shorten(&l.found.host.display().to_string(), server)
                )
            }),
            Some(policy::Source::Host) => host
                .libraries
                .get(&need.soname)
                .map(|l| format!("host {}", l.found.host.display())),
            Some(policy::Source::Image) => image
                .libraries
                .get(&need.soname)
                .map(|l| format!("image {}", l.found.inner.display())),
            None => None,
        }
        .unwrap_or_else(|| "missing".into());
        out.push(Row {
            needed_by: shorten(&need.needed_by.to_string(), server),
            need: match versions.is_empty() {
                true => need.soname.clone(),
                false => format!("{} ({})", need.soname, versions.join(", ")),
            },
            found,
        });
    }
    out
}
