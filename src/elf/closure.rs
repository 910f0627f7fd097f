//! Walks the shared-library closure of a set of ELF files against roots,
//! in ld.so's order: `DT_RPATH` (the object's and its loaders', when the
//! object has no `DT_RUNPATH`), the root's extra library path (like
//! `LD_LIBRARY_PATH`), `DT_RUNPATH`, the root's `ld.so.cache`, then the
//! default directories. Breadth first like ld.so, and like it a soname is
//! loaded once: later needers get the same library. Each file is read
//! once per walk.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::inspect::{expand_dirs, inspect, ElfInfo, Machine};
use super::ldcache::{self, LdCache};
use super::root::{Resolved, Root, RootKind};
use super::GlibcVersion;

/// ld.so's built-in directories for x86-64 (Debian multiarch first).
pub const DEFAULT_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Who needs a library: one of the files given, or a library loaded
/// under a soname (the same in every root, so closures compare).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Needer {
    File(PathBuf),
    Library(String),
}

impl fmt::Display for Needer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Needer::File(p) => write!(f, "{}", p.display()),
            Needer::Library(s) => f.write_str(s),
        }
    }
}

/// Where a library was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Index into the roots given; `None` when found through the
    /// `$ORIGIN` search path of a given file that lies in no image root
    /// (the artifact's own libraries, e.g. in the store).
    pub root: Option<usize>,
    pub kind: Option<RootKind>,
    /// The path inside that root (the host path for `root: None`), every
    /// symlink resolved.
    pub inner: PathBuf,
    pub host: PathBuf,
    /// The path the search tried, before the library's own symlinks were
    /// followed: ld.so takes its directory as the library's `$ORIGIN`.
    pub searched: PathBuf,
}

/// A library in the closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    pub soname: String,
    pub found: Found,
    pub defined_versions: BTreeSet<String>,
    /// The dynamic loader itself (`ld-linux-*`, which libc needs by name).
    pub interpreter_like: bool,
}

/// One `DT_NEEDED` edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub needed_by: Needer,
    pub soname: String,
    /// Versions the needer requires from it (`.gnu.version_r`).
    pub versions: BTreeSet<String>,
    pub found: Option<Found>,
    /// Required versions the found library does not define.
    pub missing_versions: Vec<String>,
}

/// What keeps a file from loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing {
        soname: String,
        needed_by: Needer,
    },
    VersionMissing {
        soname: String,
        version: String,
        needed_by: Needer,
        found_at: PathBuf,
    },
    InterpreterMissing {
        interpreter: String,
        needed_by: Needer,
    },
    /// A file claiming to be ELF that cannot be read.
    Unreadable {
        path: PathBuf,
        message: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { soname, needed_by } => {
                write!(f, "{needed_by} needs {soname}, which is not found")
            }
            Problem::VersionMissing {
                soname,
                version,
                needed_by,
                found_at,
            } => write!(
                f,
                "{needed_by} needs version {version} of {soname}, which {} lacks",
                found_at.display()
            ),
            Problem::InterpreterMissing {
                interpreter,
                needed_by,
            } => write!(
                f,
                "{needed_by} needs the dynamic loader {interpreter}, which is not found"
            ),
            Problem::Unreadable { path, message } => {
                write!(f, "cannot read {}: {message}", path.display())
            }
        }
    }
}

/// The dynamic loader a given file asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    pub needed_by: Needer,
    pub path: String,
    pub found: Option<Found>,
}

/// The closure of a set of files against roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closure {
    pub needs: Vec<Need>,
    /// Loaded libraries by the soname they were needed as.
    pub libraries: BTreeMap<String, Library>,
    pub interpreters: Vec<Interpreter>,
    pub problems: Vec<Problem>,
    /// The highest `GLIBC_x.y` any object in the closure requires.
    pub glibc_required: Option<GlibcVersion>,
    /// The glibc the found `libc.so.6` provides (its highest definition).
    pub glibc_available: Option<GlibcVersion>,
}

impl Closure {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A search directory and the root it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dir {
    /// Look it up in whichever root is being searched.
    EachRoot(PathBuf),
    /// `$ORIGIN` of a library found in root `i`: only there.
    InRoot(usize, PathBuf),
    /// `$ORIGIN` of a given file: a host path, resolved inside the
    /// confining directory that holds it (its artifact), if any.
    Host(PathBuf),
}

/// A loaded object waiting to have its needs resolved.
struct Obj {
    needer: Needer,
    info: Rc<ElfInfo>,
    runpath: Vec<Dir>,
    /// Its own `DT_RPATH` followed by its loaders' (ld.so's inheritance).
    rpath_chain: Vec<Dir>,
}

struct Walker<'a> {
    roots: &'a [Root],
    /// Directories (artifacts in the store) that `$ORIGIN` paths of files
    /// outside every image root may not leave.
    confine: &'a [PathBuf],
    files: HashMap<PathBuf, Option<Rc<ElfInfo>>>,
    caches: HashMap<usize, Option<LdCache>>,
    out: Closure,
}

/// Dirs of `entries`, with `$ORIGIN` ones tied to the object's place.
fn dirs(entries: &[String], origin: &Path, root: Option<usize>) -> Vec<Dir> {
    entries
        .iter()
        .flat_map(|e| {
            let has_origin = e.contains("ORIGIN");
            expand_dirs(std::slice::from_ref(e), origin)
                .into_iter()
                .map(move |d| match (has_origin, root) {
                    (false, _) => Dir::EachRoot(d),
                    (true, Some(i)) => Dir::InRoot(i, d),
                    (true, None) => Dir::Host(d),
                })
        })
        .collect()
}

fn cache_flags(m: &Machine) -> Option<i32> {
    match (m.is_64, m.e_machine) {
        (true, object::elf::EM_X86_64) => Some(ldcache::FLAGS_X86_64),
        (true, object::elf::EM_AARCH64) => Some(ldcache::FLAGS_AARCH64),
        _ => None,
    }
}

impl Walker<'_> {
    /// Reads a file once per walk; damaged files become problems.
    fn read(&mut self, host: &Path) -> Option<Rc<ElfInfo>> {
        if let Some(known) = self.files.get(host) {
            return known.clone();
        }
        let info = match inspect(host) {
            Ok(info) => info.map(Rc::new),
            Err(err) => {
                self.out.problems.push(Problem::Unreadable {
                    path: host.to_path_buf(),
                    message: err.message,
                });
                None
            }
        };
        self.files.insert(host.to_path_buf(), info.clone());
        info
    }

    fn ld_cache(&mut self, i: usize) -> Option<&LdCache> {
        let roots = self.roots;
        self.caches
            .entry(i)
            .or_insert_with(|| {
                let path = roots[i].resolve(Path::new("/etc/ld.so.cache"))?;
                // A root without a readable cache is searched without one,
                // as ld.so does.
                ldcache::parse(&std::fs::read(path.host).ok()?).ok()
            })
            .as_ref()
    }

    /// `soname` in `dir` if it is a loadable object of the needer's kind.
    fn try_dir(
        &mut self,
        dir: &Dir,
        root: usize,
        soname: &str,
        m: &Machine,
    ) -> Option<(Found, Rc<ElfInfo>)> {
        let (at, searched) = match dir {
            Dir::EachRoot(d) => (Some(root), d.join(soname)),
            Dir::InRoot(i, d) => (Some(*i), d.join(soname)),
            Dir::Host(d) => (None, d.join(soname)),
        };
        let resolved = match at {
            Some(i) => self.roots[i].resolve(&searched)?,
            None => match self.confine.iter().find(|c| searched.starts_with(c)) {
                // Symlinks of an artifact resolve inside it, like an image
                // root's: a link to /etc/shadow or `../../..` never leads to
                // a host file being opened.
                Some(base) => {
                    let inner = Path::new("/").join(searched.strip_prefix(base).ok()?);
                    let r = Root::image(base).resolve(&inner)?;
                    Resolved {
                        inner: r.host.clone(),
                        host: r.host,
                    }
                }
                None => {
                    let host = std::fs::canonicalize(&searched).ok()?;
                    Resolved {
                        inner: host.clone(),
                        host,
                    }
                }
            },
        };
        self.candidate(at, resolved, searched, m)
    }

    fn candidate(
        &mut self,
        root: Option<usize>,
        r: Resolved,
        searched: PathBuf,
        m: &Machine,
    ) -> Option<(Found, Rc<ElfInfo>)> {
        if !r.host.is_file() {
            return None;
        }
        let info = self.read(&r.host)?;
        if info.machine != *m {
            return None;
        }
        let kind = root.map(|i| self.roots[i].kind);
        Some((
            Found {
                root,
                kind,
                inner: r.inner,
                host: r.host,
                searched,
            },
            info,
        ))
    }

    fn search(&mut self, obj: &Obj, soname: &str) -> Option<(Found, Rc<ElfInfo>)> {
        let m = obj.info.machine;
        for ri in 0..self.roots.len() {
            if soname.contains('/') {
                // A library named by a path: looked up inside image roots
                // only. On the host root it would mean reading whatever
                // host file an image names (as root); such a need is
                // reported missing there, and install refuses it.
                if self.roots[ri].kind == RootKind::Host {
                    continue;
                }
                let r = self.roots[ri].resolve(Path::new(soname));
                if let Some(hit) = r.and_then(|r| self.candidate(Some(ri), r, soname.into(), &m)) {
                    return Some(hit);
                }
                continue;
            }
            let mut order: Vec<Dir> = Vec::new();
            if obj.runpath.is_empty() {
                order.extend(obj.rpath_chain.iter().cloned());
            }
            order.extend(
                self.roots[ri]
                    .library_path
                    .iter()
                    .cloned()
                    .map(Dir::EachRoot),
            );
            order.extend(obj.runpath.iter().cloned());
            for dir in &order {
                if let Some(hit) = self.try_dir(dir, ri, soname, &m) {
                    return Some(hit);
                }
            }
            let cached: Vec<String> = match (cache_flags(&m), self.ld_cache(ri)) {
                (Some(flags), Some(cache)) => {
                    cache.lookup(soname, flags).map(str::to_string).collect()
                }
                _ => Vec::new(),
            };
            for path in cached {
                let r = self.roots[ri].resolve(Path::new(&path));
                if let Some(hit) = r.and_then(|r| self.candidate(Some(ri), r, path.into(), &m)) {
                    return Some(hit);
                }
            }
            for d in DEFAULT_DIRS {
                if let Some(hit) = self.try_dir(&Dir::EachRoot(PathBuf::from(d)), ri, soname, &m) {
                    return Some(hit);
                }
            }
        }
        None
    }

    fn find_interpreter(&mut self, path: &str) -> Option<Found> {
        (0..self.roots.len()).find_map(|ri| {
            let r = self.roots[ri].resolve(Path::new(path))?;
            r.host.is_file().then(|| Found {
                root: Some(ri),
                kind: Some(self.roots[ri].kind),
                inner: r.inner,
                host: r.host,
                searched: path.into(),
            })
        })
    }
}

/// The `$ORIGIN` of a given file and the root it lies in. A file inside
/// an image root (the longest such root) is resolved in it, so its
/// `$ORIGIN/../lib` cannot leave the image; any other file (the store, or
/// the host) is a host path. Either way the real directory counts.
fn file_origin(file: &Path, roots: &[Root]) -> (Option<usize>, PathBuf) {
    let placed = roots
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == RootKind::Image)
        .filter_map(|(i, r)| Some((i, file.strip_prefix(&r.path).ok()?)))
        .max_by_key(|(i, _)| roots[*i].path.components().count());
    match placed {
        Some((i, rel)) => {
            let inner = Path::new("/").join(rel);
            let real = roots[i].resolve(&inner).map_or(inner, |r| r.inner);
            (
                Some(i),
                real.parent().unwrap_or(Path::new("/")).to_path_buf(),
            )
        }
        None => {
            let real = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
            (None, real.parent().unwrap_or(Path::new("/")).to_path_buf())
        }
    }
}

/// The closure of `files` (host paths) against `roots`, searched in order.
/// Files that are not ELF are skipped; statically linked ones need nothing.
pub fn closure(files: &[PathBuf], roots: &[Root]) -> Closure {
    closure_confined(files, roots, &[])
}

/// [`closure`], with the `$ORIGIN` search paths of files that lie in no
/// image root confined to the directory of `confine` holding them (the
/// artifacts' store entries): their symlinks resolve inside it.
pub fn closure_confined(files: &[PathBuf], roots: &[Root], confine: &[PathBuf]) -> Closure {
    let mut w = Walker {
        roots,
        confine,
        files: HashMap::new(),
        caches: HashMap::new(),
        out: Closure::default(),
    };
    let mut queue: VecDeque<Obj> = VecDeque::new();
    for file in files {
        let Some(info) = w.read(file) else { continue };
        // The kernel hands ld.so the executable's real path, so its
        // `$ORIGIN` is the real directory (`/usr/bin/java` is a symlink
        // into the JDK whose `$ORIGIN/../lib` holds libjli.so).
        let (origin_root, origin) = file_origin(file, roots);
        let origin = origin.as_path();
        let needer = Needer::File(file.clone());
        if let Some(interp) = &info.interpreter {
            let found = w.find_interpreter(interp);
            if found.is_none() {
                w.out.problems.push(Problem::InterpreterMissing {
                    interpreter: interp.clone(),
                    needed_by: needer.clone(),
                });
            }
            w.out.interpreters.push(Interpreter {
                needed_by: needer.clone(),
                path: interp.clone(),
                found,
            });
        }
        let runpath = dirs(&info.runpath, origin, origin_root);
        let rpath_chain = if info.runpath.is_empty() {
            dirs(&info.rpath, origin, origin_root)
        } else {
            Vec::new()
        };
        queue.push_back(Obj {
            needer,
            info,
            runpath,
            rpath_chain,
        });
    }

    let mut loaded: HashMap<String, Option<(Found, Rc<ElfInfo>)>> = HashMap::new();
    while let Some(obj) = queue.pop_front() {
        let mut required = obj.info.glibc_required();
        for soname in obj.info.needed.clone() {
            let versions = obj
                .info
                .required_versions
                .get(&soname)
                .cloned()
                .unwrap_or_default();
            let hit = match loaded.get(&soname) {
                Some(hit) => hit.clone(),
                None => {
                    let hit = w.search(&obj, &soname);
                    loaded.insert(soname.clone(), hit.clone());
                    if let Some((found, info)) = &hit {
                        w.out.libraries.insert(
                            soname.clone(),
                            Library {
                                soname: soname.clone(),
                                found: found.clone(),
                                defined_versions: info.defined_versions.clone(),
                                interpreter_like: info
                                    .soname
                                    .as_deref()
                                    .is_some_and(|s| s.starts_with("ld-linux")),
                            },
                        );
                        let origin = found
                            .searched
                            .parent()
                            .unwrap_or(Path::new("/"))
                            .to_path_buf();
                        let runpath = dirs(&info.runpath, &origin, found.root);
                        let mut rpath_chain = Vec::new();
                        if info.runpath.is_empty() {
                            rpath_chain = dirs(&info.rpath, &origin, found.root);
                            rpath_chain.extend(obj.rpath_chain.iter().cloned());
                        }
                        queue.push_back(Obj {
                            needer: Needer::Library(soname.clone()),
                            info: info.clone(),
                            runpath,
                            rpath_chain,
                        });
                    }
                    hit
                }
            };
            let mut missing_versions = Vec::new();
            match &hit {
                None => w.out.problems.push(Problem::Missing {
                    soname: soname.clone(),
                    needed_by: obj.needer.clone(),
                }),
                // A library without version definitions only draws a
                // warning from ld.so, so it satisfies every requirement.
                Some((found, info)) if !info.defined_versions.is_empty() => {
                    for v in versions
                        .iter()
                        .filter(|v| !info.defined_versions.contains(*v))
                    {
                        missing_versions.push(v.clone());
                        w.out.problems.push(Problem::VersionMissing {
                            soname: soname.clone(),
                            version: v.clone(),
                            needed_by: obj.needer.clone(),
                            found_at: found.host.clone(),
                        });
                    }
                }
                Some(_) => {}
            }
            w.out.needs.push(Need {
                needed_by: obj.needer.clone(),
                soname,
                versions,
                found: hit.map(|(f, _)| f),
                missing_versions,
            });
        }
        required = required.max(w.out.glibc_required);
        w.out.glibc_required = required;
    }
    w.out.glibc_available = loaded
        .get("libc.so.6")
        .and_then(|hit| hit.as_ref())
        .and_then(|(_, info)| GlibcVersion::max_of(&info.defined_versions));
    w.out
}

#[cfg(test)]
mod tests;
