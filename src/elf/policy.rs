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

/// Versions required of each soname, by whom, in the closures that count
/// for `mode`: `auto` takes both, as a library from the image brings its
/// own needs (an image ICU needing a newer libstdc++ than the host's).
fn requirements(
    mode: Mode,
    host: &Closure,
    image: &Closure,
) -> BTreeMap<String, Vec<(Needer, BTreeSet<String>)>> {
    let mut req: BTreeMap<String, Vec<(Needer, BTreeSet<String>)>> = BTreeMap::new();
    let needs: Vec<_> = match mode {
        Mode::Host => host.needs.iter().collect(),
        Mode::Image => image.needs.iter().collect(),
        Mode::Auto => host.needs.iter().chain(&image.needs).collect(),
    };
    for need in needs {
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

/// Plans `mode` from the closures of the same files against the host and
/// the image.
pub fn plan(mode: Mode, host: &Closure, image: &Closure) -> Plan {
    let req = requirements(mode, host, image);
    let mut plan = Plan::default();
    // Input problems (unreadable files) hold for every mode.
    for p in host.problems.iter().chain(&image.problems) {
        if matches!(p, Problem::Unreadable { .. }) && !plan.failures.contains(p) {
            plan.failures.push(p.clone());
        }
    }
    let pick = |closure: &Closure, soname: &str| -> Option<Library> {
        closure.libraries.get(soname).cloned()
    };
    let needed_ok = |lib: &Library, soname: &str| {
        req.get(soname)
            .is_none_or(|needs| needs.iter().all(|(_, v)| satisfies(lib, v)))
    };

    // A first choice per soname, by mode.
    for soname in req.keys() {
        let h = pick(host, soname);
        let i = pick(image, soname);
        let own = |l: &Option<Library>| l.as_ref().is_some_and(|l| l.found.root.is_none());
        let choice = if own(&h) || own(&i) {
            Some(Source::Own)
        } else {
            match mode {
                Mode::Host => h.filter(|l| needed_ok(l, soname)).map(|_| Source::Host),
                Mode::Image => i.filter(|l| needed_ok(l, soname)).map(|_| Source::Image),
                Mode::Auto => match (h, i) {
                    (Some(h), _) if needed_ok(&h, soname) => Some(Source::Host),
                    (_, Some(i)) if needed_ok(&i, soname) => Some(Source::Image),
                    _ => None,
                },
            }
        };
        if let Some(c) = choice {
            plan.sources.insert(soname.clone(), c);
        }
    }

    // glibc is one piece: if any of it comes from the image, all of it
    // and the image's loader do (a newer libc with an older loader, or
    // the other way round, does not start).
    let glibc_from_image = GLIBC_SET
        .iter()
        .any(|s| plan.sources.get(*s) == Some(&Source::Image));
    if glibc_from_image {
        for s in GLIBC_SET {
            if let Some(src) = plan.sources.get_mut(*s) {
                if image.libraries.contains_key(*s) {
                    *src = Source::Image;
                }
            }
        }
        match image.interpreters.iter().find_map(|i| i.found.as_ref()) {
            Some(found) => plan.image_loader = Some(found.inner.clone()),
            None => plan.failures.push(Problem::InterpreterMissing {
                interpreter: image
                    .interpreters
                    .first()
                    .map(|i| i.path.clone())
                    .unwrap_or_else(|| "ld-linux".into()),
                needed_by: Needer::Library("libc.so.6".into()),
            }),
        }
    } else if mode == Mode::Image && !image.interpreters.is_empty() {
        // `image` always runs on the image's own loader.
        match image.interpreters.iter().find_map(|i| i.found.as_ref()) {
            Some(found) => plan.image_loader = Some(found.inner.clone()),
            None => plan.failures.push(Problem::InterpreterMissing {
                interpreter: image.interpreters[0].path.clone(),
                needed_by: image.interpreters[0].needed_by.clone(),
            }),
        }
    }

    // What could not be placed.
    for (soname, needs) in &req {
        if plan.sources.contains_key(soname) {
            continue;
        }
        let found = match mode {
            Mode::Host => host.libraries.get(soname),
            Mode::Image => image.libraries.get(soname),
            Mode::Auto => host.libraries.get(soname).or(image.libraries.get(soname)),
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
        assert_eq!(p.sources["ld-linux-x86-64.so.2"], Source::Image);
        assert_eq!(p.sources["libicuuc.so.76"], Source::Host);
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
