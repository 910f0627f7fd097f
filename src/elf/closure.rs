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
mod tests {
    use super::*;
    use std::process::Command;

    /// `soname => path` lines of ldd, the oracle on system binaries.
    fn ldd(file: &str) -> BTreeMap<String, PathBuf> {
        let out = Command::new("ldd").arg(file).output().expect("ldd runs");
        assert!(out.status.success(), "ldd {file} failed");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.trim().split_once(" => ")?;
                let path = rest.split(" (").next()?.trim();
                Some((name.to_string(), std::fs::canonicalize(path).ok()?))
            })
            .collect()
    }

    fn compare_with_ldd(file: &str) -> Closure {
        let c = closure(&[PathBuf::from(file)], &[Root::host()]);
        assert!(c.is_ok(), "{:?}", c.problems);
        let ours: BTreeMap<String, PathBuf> = c
            .libraries
            .iter()
            .filter(|(_, l)| !l.interpreter_like)
            .map(|(s, l)| (s.clone(), std::fs::canonicalize(&l.found.host).unwrap()))
            .collect();
        assert_eq!(ours, ldd(file), "closure of {file} differs from ldd");
        c
    }

    #[test]
    fn ls_matches_ldd() {
        let c = compare_with_ldd("/usr/bin/ls");
        let libc = &c.libraries["libc.so.6"];
        assert_eq!(libc.found.root, Some(0));
        assert_eq!(libc.found.kind, Some(RootKind::Host));
        assert!(c.glibc_required.unwrap() <= c.glibc_available.unwrap());
        assert!(c.glibc_available.unwrap() >= GlibcVersion(2, 34, 0));
        assert_eq!(c.interpreters.len(), 1);
        assert!(c.interpreters[0].found.is_some());
    }

    #[test]
    fn psql_matches_ldd() {
        let psql = [
            "/usr/lib/postgresql/15/bin/psql",
            "/usr/bin/openssl",
            "/usr/bin/curl",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("psql, openssl or curl on this machine");
        let c = compare_with_ldd(psql);
        assert!(c
            .needs
            .iter()
            .any(|n| matches!(&n.needed_by, Needer::Library(_))));
        assert!(c.needs.iter().all(|n| n.missing_versions.is_empty()));
    }

    #[test]
    fn libssl_needs_openssl_versions() {
        let ssl = PathBuf::from("/usr/lib/x86_64-linux-gnu/libssl.so.3");
        let c = closure(std::slice::from_ref(&ssl), &[Root::host()]);
        let need = c
            .needs
            .iter()
            .find(|n| n.needed_by == Needer::File(ssl.clone()) && n.soname == "libcrypto.so.3")
            .unwrap();
        assert!(need.versions.contains("OPENSSL_3.0.0"));
        assert!(need.found.is_some() && need.missing_versions.is_empty());
    }

    fn copy(from: &str, to: &Path) {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(std::fs::canonicalize(from).unwrap(), to).unwrap();
    }

    /// A fake image root: ls and its libraries behind absolute and
    /// relative symlinks; everything is found inside it, nothing on the
    /// host, and a missing library is reported, not taken from the host.
    #[test]
    fn image_root_resolution_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let libs = ldd("/usr/bin/ls");
        let real_dir = r.join("usr/lib/x86_64-linux-gnu");
        for (soname, path) in &libs {
            // Versioned real name + relative soname link, like packages ship.
            let real = format!("{soname}.real");
            copy(path.to_str().unwrap(), &real_dir.join(&real));
            std::os::unix::fs::symlink(&real, real_dir.join(soname)).unwrap();
        }
        // /lib -> /usr/lib (absolute, must mean the image's /usr/lib).
        std::os::unix::fs::symlink("/usr/lib", r.join("lib")).unwrap();
        copy("/usr/bin/ls", &r.join("usr/bin/ls"));
        let ld = "/lib64/ld-linux-x86-64.so.2";
        copy(ld, &r.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"));
        std::os::unix::fs::symlink("usr/lib", r.join("lib64")).unwrap();
        std::fs::rename(
            r.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
            r.join("usr/lib/ld-linux-x86-64.so.2"),
        )
        .unwrap();

        let ls = r.join("usr/bin/ls");
        let c = closure(std::slice::from_ref(&ls), &[Root::image(r)]);
        assert!(c.is_ok(), "{:?}", c.problems);
        for soname in libs.keys() {
            assert!(
                c.libraries.contains_key(soname),
                "{soname} not found in the image"
            );
        }
        for lib in c.libraries.values() {
            assert!(lib.found.host.starts_with(r), "{lib:?} escaped the root");
            assert_eq!(lib.found.kind, Some(RootKind::Image));
        }
        let interp = c.interpreters[0].found.as_ref().unwrap();
        assert_eq!(interp.inner, Path::new("/usr/lib/ld-linux-x86-64.so.2"));
        assert!(interp.host.starts_with(r));

        // Take libc away: missing, even though the host has one.
        std::fs::remove_file(real_dir.join("libc.so.6")).unwrap();
        let c = closure(std::slice::from_ref(&ls), &[Root::image(r)]);
        assert!(
            c.problems.contains(&Problem::Missing {
                soname: "libc.so.6".into(),
                needed_by: Needer::File(ls.clone()),
            }),
            "{:?}",
            c.problems
        );
        assert_eq!(c.glibc_available, None);
        // An extra library dir (like an extension's system/) is searched.
        std::fs::create_dir_all(r.join("system")).unwrap();
        copy(
            "/lib/x86_64-linux-gnu/libc.so.6",
            &r.join("system/libc.so.6"),
        );
        let root = Root::image(r).with_library_path([PathBuf::from("/system")]);
        let c = closure(&[ls], &[root]);
        assert!(c.is_ok(), "{:?}", c.problems);
        assert_eq!(
            c.libraries["libc.so.6"].found.inner,
            Path::new("/system/libc.so.6")
        );
    }

    /// Rewrites a copy of `ls` to carry `RUNPATH=$ORIGIN/../lib` (in place
    /// of the weak `__gmon_start__` name and the `DT_DEBUG` slot, both of
    /// the same size), so the test needs no patchelf.
    fn ls_with_origin_runpath() -> Vec<u8> {
        use object::read::elf::{FileHeader, SectionHeader};
        let mut bytes = std::fs::read("/usr/bin/ls").unwrap();
        let header = object::elf::FileHeader64::<object::Endianness>::parse(&*bytes).unwrap();
        let endian = header.endian().unwrap();
        let sections = header.sections(endian, &*bytes).unwrap();
        let mut dynstr = None;
        let mut dynamic = None;
        for s in sections.iter() {
            let name = sections.section_name(endian, s).unwrap();
            let Some(range) = s.file_range(endian) else {
                continue;
            };
            match name {
                b".dynstr" => dynstr = Some(range),
                b".dynamic" => dynamic = Some(range),
                _ => {}
            }
        }
        let (str_at, str_len) = dynstr.unwrap();
        let (dyn_at, dyn_len) = dynamic.unwrap();
        let table = &bytes[str_at as usize..(str_at + str_len) as usize];
        let name = b"__gmon_start__\0";
        let off = table.windows(name.len()).position(|w| w == name).unwrap();
        let at = str_at as usize + off;
        bytes[at..at + 14].copy_from_slice(b"$ORIGIN/../lib");
        let mut slot = None;
        for e in (dyn_at as usize..(dyn_at + dyn_len) as usize).step_by(16) {
            if u64::from_le_bytes(bytes[e..e + 8].try_into().unwrap()) == 21 {
                slot = Some(e); // DT_DEBUG
            }
        }
        let e = slot.expect("ls has a DT_DEBUG slot");
        bytes[e..e + 8].copy_from_slice(&29u64.to_le_bytes()); // DT_RUNPATH
        bytes[e + 8..e + 16].copy_from_slice(&(off as u64).to_le_bytes());
        bytes
    }

    /// `$ORIGIN` of a given file is its real directory (behind a
    /// symlink), and libraries found through it are the file's own.
    #[test]
    fn origin_runpath_of_a_symlinked_file() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let app = r.join("opt/app");
        std::fs::create_dir_all(app.join("bin")).unwrap();
        std::fs::write(app.join("bin/ls"), ls_with_origin_runpath()).unwrap();
        let info = inspect(&app.join("bin/ls")).unwrap().unwrap();
        assert_eq!(info.runpath, vec!["$ORIGIN/../lib".to_string()]);
        let libs = ldd("/usr/bin/ls");
        // libc in the root's /usr/lib, every other library in the app's own
        // lib/: ls's direct needs are found there, its libraries' needs not
        // (DT_RUNPATH is not inherited).
        for (soname, path) in &libs {
            let to = if soname == "libc.so.6" {
                r.join("usr/lib").join(soname)
            } else {
                app.join("lib").join(soname)
            };
            copy(path.to_str().unwrap(), &to);
        }
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("../../opt/app/bin/ls", r.join("usr/bin/ls")).unwrap();
        let c = closure(&[r.join("usr/bin/ls")], &[Root::image(r)]);
        let host = closure(&[r.join("usr/bin/ls")], &[Root::host()]);
        assert!(host.is_ok(), "{:?}", host.problems);
        let mut indirect = 0;
        for soname in libs.keys().filter(|s| *s != "libc.so.6") {
            if info.needed.contains(soname) {
                // Inside the image: found in the image, at its place there.
                let lib = &c.libraries[soname];
                assert_eq!(lib.found.root, Some(0), "{lib:?}");
                assert_eq!(lib.found.inner, Path::new("/opt/app/lib").join(soname));
                assert_eq!(lib.found.host, app.join("lib").join(soname));
                // Outside any image (like the store): the file's own.
                let lib = &host.libraries[soname];
                assert_eq!(lib.found.root, None, "{lib:?}");
                assert_eq!(lib.found.host, app.join("lib").join(soname));
            } else {
                indirect += 1;
                assert!(
                    c.problems
                        .iter()
                        .any(|p| matches!(p, Problem::Missing { soname: s, .. } if s == soname)),
                    "{soname}: {:?}",
                    c.problems
                );
            }
        }
        assert!(
            indirect > 0,
            "ls has indirect needs (libselinux's libpcre2)"
        );
        let libc = &c.libraries["libc.so.6"];
        assert_eq!(libc.found.inner, Path::new("/usr/lib/libc.so.6"));
        assert_eq!(libc.found.root, Some(0));
    }

    /// A given file outside every image root (an artifact in the store)
    /// whose `$ORIGIN/../lib` holds a symlink to a host library: followed
    /// on the host without confinement, resolved inside the artifact with
    /// it (where it leads nowhere, so the host's own copy is found by the
    /// ordinary search instead, as a host library).
    #[test]
    fn origin_symlinks_stay_inside_a_confining_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("artifact");
        std::fs::create_dir_all(app.join("bin")).unwrap();
        std::fs::create_dir_all(app.join("lib")).unwrap();
        std::fs::write(app.join("bin/ls"), ls_with_origin_runpath()).unwrap();
        let libc = std::fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
        std::os::unix::fs::symlink(&libc, app.join("lib/libc.so.6")).unwrap();
        let files = [app.join("bin/ls")];
        let loose = closure(&files, &[Root::host()]);
        assert_eq!(loose.libraries["libc.so.6"].found.root, None);
        assert_eq!(loose.libraries["libc.so.6"].found.host, libc);
        let confined = closure_confined(&files, &[Root::host()], std::slice::from_ref(&app));
        assert!(confined.is_ok(), "{:?}", confined.problems);
        let found = &confined.libraries["libc.so.6"].found;
        assert_eq!(found.root, Some(0), "{found:?}");
        assert_eq!(found.kind, Some(RootKind::Host));
        // A relative escape is clamped at the artifact too.
        std::fs::remove_file(app.join("lib/libc.so.6")).unwrap();
        let up = "../".repeat(libc.components().count() + 4);
        let rel = format!("{up}{}", libc.strip_prefix("/").unwrap().display());
        std::os::unix::fs::symlink(&rel, app.join("lib/libc.so.6")).unwrap();
        let confined = closure_confined(&files, &[Root::host()], std::slice::from_ref(&app));
        assert_eq!(confined.libraries["libc.so.6"].found.root, Some(0));
    }

    /// A library that defines versions but not the one required.
    #[test]
    fn version_missing_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        copy(
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
            &r.join("app/libssl.so.3"),
        );
        // libc in place of libcrypto: defines versions, none OPENSSL_*.
        copy(
            "/lib/x86_64-linux-gnu/libc.so.6",
            &r.join("usr/lib/libcrypto.so.3"),
        );
        copy(
            "/lib/x86_64-linux-gnu/libc.so.6",
            &r.join("usr/lib/libc.so.6"),
        );
        let file = r.join("app/libssl.so.3");
        let c = closure(std::slice::from_ref(&file), &[Root::image(r)]);
        assert!(c.problems.iter().any(|p| matches!(p,
            Problem::VersionMissing { soname, version, needed_by, .. }
                if soname == "libcrypto.so.3" && version == "OPENSSL_3.0.0" && *needed_by == Needer::File(file.clone()))), "{:?}", c.problems);
    }
}
