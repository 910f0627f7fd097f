//! Decides, per library, whether the host or the image provides it, for
//! `--libraries auto|host|image`, from the closure of the same files
//! against the host root and against the image root. Pure: no file is
//! read here.

use std::collections::{BTreeMap, BTreeSet};

use super::closure::{Closure, Library, Needer, Problem};
use super::GlibcVersion;

/// The `--libraries` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Host where it satisfies every required version, image otherwise.
    Auto,
    /// Everything from the host, or fail.
    Host,
    /// Everything from the image, its dynamic loader included.
    Image,
}

/// Where one library comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Host,
    Image,
    /// Found beside the files themselves (their own `$ORIGIN` path).
    Own,
}

/// glibc's own libraries: they come as one set with their loader.
const GLIBC_SET: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libresolv.so.2",
    "libutil.so.1",
    "libanl.so.1",
    "libmvec.so.1",
    "libnsl.so.1",
    "libBrokenLocale.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
];

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// soname → where it comes from.
    pub sources: BTreeMap<String, Source>,
    /// Why the mode cannot work (empty when it can).
    pub failures: Vec<Problem>,
    /// `Some(path inside the image)` when the image's dynamic loader must
    /// run the files (the image's glibc is used).
    pub image_loader: Option<std::path::PathBuf>,
}

impl Plan {
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }
}

fn satisfies(lib: &Library, versions: &BTreeSet<String>) -> bool {
    lib.defined_versions.is_empty() || versions.iter().all(|v| lib.defined_versions.contains(v))
}

/// soname → who needs it, at which versions.
type Requirements = BTreeMap<String, Vec<(Needer, BTreeSet<String>)>>;

/// Versions required of each soname, by whom, in the closures that count
/// for `mode`: `auto` takes both, as a library from the image brings its
/// own needs (an image ICU needing a newer libstdc++ than the host's).
fn requirements(mode: Mode, host: &Closure, image: &Closure) -> Requirements {
    let mut req = Requirements::new();
    let needs: Vec<_> = match mode {
        Mode::Host => host.needs.iter().collect(),
        Mode::Image => image.needs.iter().collect(),
        Mode::Auto => host.needs.iter().chain(&image.needs).collect(),
    };
    for need in needs {
        // glibc's libraries needing each other: the set comes as one piece.
        if is_glibc(&need.soname) && matches!(&need.needed_by, Needer::Library(l) if is_glibc(l)) {
            continue;
        }
        let entry = req.entry(need.soname.clone()).or_default();
        if !entry
            .iter()
            .any(|(n, v)| *n == need.needed_by && *v == need.versions)
        {
            entry.push((need.needed_by.clone(), need.versions.clone()));
        }
    }
    req
}

fn is_glibc(soname: &str) -> bool {
    GLIBC_SET.contains(&soname)
}

/// Whether the host's glibc serves every need on glibc's libraries:
/// each is there and defines every version asked of it. Needs of glibc's
/// own libraries on each other are left out: the set comes as one piece.
fn host_serves_glibc(req: &Requirements, host: &Closure) -> bool {
    req.iter()
        .filter(|(s, _)| is_glibc(s))
        .all(|(soname, needs)| {
            let Some(lib) = host.libraries.get(soname) else {
                tracing::debug!(soname, "the host lacks this library of glibc's");
                return false;
            };
            needs
                .iter()
                .filter(|(by, _)| !matches!(by, Needer::Library(l) if is_glibc(l)))
                .all(|(by, versions)| {
                    let ok = satisfies(lib, versions);
                    if !ok {
                        tracing::debug!(soname, ?by, ?versions, "the host's glibc lacks a version");
                    }
                    ok
                })
        })
}

/// Plans `mode` from the closures of the same files against the host and
/// the image.
///
/// glibc is decided first, as one piece with its loader: the host's when
/// it serves every need (`auto`, `host`), else the image's (`auto`,
/// `image`). On the image's glibc every library comes from the image, as
/// in a container: a host library built for a newer glibc does not load
/// on an older one, and a mix of two glibc sets does not start. Only a
/// library the image lacks may come from the host then, and only when the
/// image's glibc is at least the host's (the host's libraries were built
/// for an older or equal one).
pub fn plan(mode: Mode, host: &Closure, image: &Closure) -> Plan {
    let mut plan = Plan::default();
    // Input problems (unreadable files) hold for every mode.
    for p in host.problems.iter().chain(&image.problems) {
        if matches!(p, Problem::Unreadable { .. }) && !plan.failures.contains(p) {
            plan.failures.push(p.clone());
        }
    }
    let on_image_glibc = match mode {
        Mode::Host => false,
        Mode::Image => true,
        Mode::Auto => !host_serves_glibc(&requirements(Mode::Auto, host, image), host),
    };
    let req = requirements(if on_image_glibc { Mode::Image } else { mode }, host, image);
    let host_fallback = on_image_glibc
        && mode == Mode::Auto
        && matches!((image.glibc_available, host.glibc_available), (Some(i), Some(h)) if i >= h);
    let needed_ok = |lib: &Library, soname: &str| {
        req.get(soname)
            .is_none_or(|needs| needs.iter().all(|(_, v)| satisfies(lib, v)))
    };

    for soname in req.keys() {
        let h = host.libraries.get(soname).filter(|l| needed_ok(l, soname));
        let i = image.libraries.get(soname).filter(|l| needed_ok(l, soname));
        let own = |l: Option<&Library>| l.is_some_and(|l| l.found.root.is_none());
        let choice = if own(host.libraries.get(soname)) || own(image.libraries.get(soname)) {
            Some(Source::Own)
        } else if on_image_glibc {
            match (i, h) {
                (Some(_), _) => Some(Source::Image),
                (None, Some(_)) if host_fallback && !is_glibc(soname) => Some(Source::Host),
                _ => None,
            }
        } else {
            match (h, i) {
                (Some(_), _) => Some(Source::Host),
                (None, Some(_)) if mode == Mode::Auto && !is_glibc(soname) => Some(Source::Image),
                _ => None,
            }
        };
        if let Some(c) = choice {
            plan.sources.insert(soname.clone(), c);
        }
    }

    if on_image_glibc && !image.interpreters.is_empty() {
        match image.interpreters.iter().find_map(|i| i.found.as_ref()) {
            Some(found) => plan.image_loader = Some(found.inner.clone()),
            None => plan.failures.push(Problem::InterpreterMissing {
                interpreter: image.interpreters[0].path.clone(),
                needed_by: image.interpreters[0].needed_by.clone(),
            }),
        }
    }

    // What could not be placed: named against the side it had to come from.
    for (soname, needs) in &req {
        if plan.sources.contains_key(soname) {
            continue;
        }
        let found = if on_image_glibc {
            image.libraries.get(soname)
        } else {
            host.libraries.get(soname).or(match mode {
                Mode::Auto if !is_glibc(soname) => image.libraries.get(soname),
                _ => None,
            })
        };
        for (needer, versions) in needs {
            match found {
                None => plan.failures.push(Problem::Missing {
                    soname: soname.clone(),
                    needed_by: needer.clone(),
                }),
                Some(lib) => {
                    for v in versions
                        .iter()
                        .filter(|v| !satisfies(lib, &BTreeSet::from([(*v).clone()])))
                    {
                        plan.failures.push(Problem::VersionMissing {
                            soname: soname.clone(),
                            version: v.clone(),
                            needed_by: needer.clone(),
                            found_at: lib.found.host.clone(),
                        });
                    }
                }
            }
        }
    }
    plan
}

/// The glibc the plan runs on: the image's when its loader is used.
pub fn glibc_in_use(plan: &Plan, host: &Closure, image: &Closure) -> Option<GlibcVersion> {
    if plan.image_loader.is_some() {
        image.glibc_available
    } else {
        host.glibc_available
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::closure::{Found, Interpreter, Need};
    use crate::elf::RootKind;
    use std::path::PathBuf;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn lib(soname: &str, kind: RootKind, defines: &[&str]) -> Library {
        let prefix = if kind == RootKind::Host { "" } else { "/img" };
        Library {
            soname: soname.into(),
            found: Found {
                root: Some(0),
                kind: Some(kind),
                inner: PathBuf::from(format!("/usr/lib/{soname}")),
                host: PathBuf::from(format!("{prefix}/usr/lib/{soname}")),
                searched: PathBuf::from(format!("/usr/lib/{soname}")),
            },
            defined_versions: set(defines),
            interpreter_like: soname.starts_with("ld-linux"),
        }
    }

    fn postgres() -> Needer {
        Needer::File("/store/bin/postgres".into())
    }

    /// postgres needs libc GLIBC_2.38 and libicu; libicu needs libstdc++.
    fn closure(kind: RootKind, libc: &[&str], icu: bool, stdcxx: &[&str]) -> Closure {
        let mut c = Closure::default();
        let mut need = |by: Needer, soname: &str, versions: &[&str], lib: Option<Library>| {
            let found = lib.as_ref().map(|l| l.found.clone());
            let missing = match &lib {
                Some(l) if !satisfies(l, &set(versions)) => set(versions)
                    .into_iter()
                    .filter(|v| !l.defined_versions.contains(v))
                    .collect(),
                _ => Vec::new(),
            };
            if let Some(l) = lib {
                c.libraries.insert(soname.into(), l);
            }
            c.needs.push(Need {
                needed_by: by,
                soname: soname.into(),
                versions: set(versions),
                found,
                missing_versions: missing,
            });
        };
        need(
            postgres(),
            "libc.so.6",
            &["GLIBC_2.34", "GLIBC_2.38"],
            Some(lib("libc.so.6", kind, libc)),
        );
        need(
            postgres(),
            "libm.so.6",
            &["GLIBC_2.29"],
            Some(lib("libm.so.6", kind, libc)),
        );
        need(
            postgres(),
            "libicuuc.so.76",
            &[],
            icu.then(|| lib("libicuuc.so.76", kind, &[])),
        );
        if icu {
            need(
                Needer::Library("libicuuc.so.76".into()),
                "libstdc++.so.6",
                &["GLIBCXX_3.4.32"],
                Some(lib("libstdc++.so.6", kind, stdcxx)),
            );
        }
        need(
            Needer::Library("libc.so.6".into()),
            "ld-linux-x86-64.so.2",
            &[],
            Some(lib("ld-linux-x86-64.so.2", kind, &["GLIBC_2.2.5"])),
        );
        c.interpreters.push(Interpreter {
            needed_by: postgres(),
            path: "/lib64/ld-linux-x86-64.so.2".into(),
            found: Some(lib("ld-linux-x86-64.so.2", kind, &[]).found),
        });
        c.glibc_required = Some(GlibcVersion(2, 38, 0));
        c.glibc_available = GlibcVersion::max_of(&set(libc));
        c
    }

    const OLD_GLIBC: &[&str] = &["GLIBC_2.2.5", "GLIBC_2.29", "GLIBC_2.34", "GLIBC_2.36"];
    const NEW_GLIBC: &[&str] = &[
        "GLIBC_2.2.5",
        "GLIBC_2.29",
        "GLIBC_2.34",
        "GLIBC_2.36",
        "GLIBC_2.38",
    ];

    #[test]
    fn auto_takes_host_where_it_satisfies() {
        // New-enough host glibc, host lacks ICU: only ICU (and its
        // libstdc++ since the host's is too old) from the image.
        let host = closure(RootKind::Host, NEW_GLIBC, false, &[]);
        let image = closure(RootKind::Image, NEW_GLIBC, true, &["GLIBCXX_3.4.32"]);
        let p = plan(Mode::Auto, &host, &image);
        assert!(p.is_ok(), "{:?}", p.failures);
        assert_eq!(p.sources["libc.so.6"], Source::Host);
        assert_eq!(p.sources["libicuuc.so.76"], Source::Image);
        assert_eq!(p.sources["libstdc++.so.6"], Source::Image);
        assert_eq!(p.image_loader, None);
        assert_eq!(
            glibc_in_use(&p, &host, &image),
            Some(GlibcVersion(2, 38, 0))
        );
    }

    #[test]
    fn auto_takes_image_glibc_and_loader_when_host_is_old() {
        let host = closure(RootKind::Host, OLD_GLIBC, true, &["GLIBCXX_3.4.32"]);
        let image = closure(RootKind::Image, NEW_GLIBC, true, &["GLIBCXX_3.4.32"]);
        let p = plan(Mode::Auto, &host, &image);
        assert!(p.is_ok(), "{:?}", p.failures);
        assert_eq!(p.sources["libc.so.6"], Source::Image);
        // libm satisfied on the host, but glibc comes as one piece.
        assert_eq!(p.sources["libm.so.6"], Source::Image);
        // On the image's glibc, the rest comes from the image too.
        assert_eq!(p.sources["libicuuc.so.76"], Source::Image);
        assert_eq!(p.sources["libstdc++.so.6"], Source::Image);
        assert_eq!(
            p.image_loader,
            Some(PathBuf::from("/usr/lib/ld-linux-x86-64.so.2"))
        );
        assert_eq!(
            glibc_in_use(&p, &host, &image),
            Some(GlibcVersion(2, 38, 0))
        );
    }

    #[test]
    fn auto_keeps_a_newer_host_glibc_for_an_older_image() {
        // A bullseye image on a bookworm host: the host's glibc defines
        // every version the image's files ask for, so it stays; only what
        // the host lacks (ICU here) comes from the image. The image's own
        // glibc libraries need each other at versions (GLIBC_PRIVATE) that
        // do not count against the host.
        let host = closure(RootKind::Host, NEW_GLIBC, false, &[]);
        let mut image = closure(RootKind::Image, NEW_GLIBC, true, &["GLIBCXX_3.4.32"]);
        image.needs.push(Need {
            needed_by: Needer::Library("libm.so.6".into()),
            soname: "libc.so.6".into(),
            versions: set(&["GLIBC_PRIVATE"]),
            found: None,
            missing_versions: vec![],
        });
        let p = plan(Mode::Auto, &host, &image);
        assert!(p.is_ok(), "{:?}", p.failures);
        assert_eq!(p.image_loader, None);
        for s in ["libc.so.6", "libm.so.6"] {
            assert_eq!(p.sources[s], Source::Host, "{s}");
        }
        assert_eq!(p.sources["libicuuc.so.76"], Source::Image);
    }

    #[test]
    fn host_mode_lists_every_failure() {
        let host = closure(RootKind::Host, OLD_GLIBC, true, &["GLIBCXX_3.4.30"]);
        let image = closure(RootKind::Image, NEW_GLIBC, true, &["GLIBCXX_3.4.32"]);
        let p = plan(Mode::Host, &host, &image);
        assert!(!p.is_ok());
        assert!(
            p.failures.contains(&Problem::VersionMissing {
                soname: "libc.so.6".into(),
                version: "GLIBC_2.38".into(),
                needed_by: postgres(),
                found_at: "/usr/lib/libc.so.6".into(),
            }),
            "{:?}",
            p.failures
        );
        assert!(p.failures.iter().any(|f| matches!(f,
            Problem::VersionMissing { soname, version, .. } if soname == "libstdc++.so.6" && version == "GLIBCXX_3.4.32")));
        assert_eq!(p.image_loader, None);
        assert!(p.sources.values().all(|s| *s == Source::Host));

        let no_icu = closure(RootKind::Host, NEW_GLIBC, false, &[]);
        let p = plan(Mode::Host, &no_icu, &image);
        assert_eq!(
            p.failures,
            vec![Problem::Missing {
                soname: "libicuuc.so.76".into(),
                needed_by: postgres()
            }]
        );
    }

    #[test]
    fn image_mode_takes_everything_and_the_loader() {
        let host = closure(RootKind::Host, NEW_GLIBC, true, &["GLIBCXX_3.4.32"]);
        let image = closure(RootKind::Image, NEW_GLIBC, true, &["GLIBCXX_3.4.32"]);
        let p = plan(Mode::Image, &host, &image);
        assert!(p.is_ok(), "{:?}", p.failures);
        assert!(p.sources.values().all(|s| *s == Source::Image));
        assert!(p.image_loader.is_some());
        // An image without its loader cannot do it.
        let mut broken = image.clone();
        broken.interpreters[0].found = None;
        let p = plan(Mode::Image, &host, &broken);
        assert!(
            matches!(p.failures[..], [Problem::InterpreterMissing { .. }]),
            "{:?}",
            p.failures
        );
    }

    #[test]
    fn auto_fails_when_neither_satisfies() {
        let host = closure(RootKind::Host, OLD_GLIBC, false, &[]);
        let image = closure(RootKind::Image, OLD_GLIBC, false, &[]);
        let p = plan(Mode::Auto, &host, &image);
        assert!(p.failures.iter().any(
            |f| matches!(f, Problem::VersionMissing { version, .. } if version == "GLIBC_2.38")
        ));
        assert!(p
            .failures
            .iter()
            .any(|f| matches!(f, Problem::Missing { soname, .. } if soname == "libicuuc.so.76")));
    }
}
