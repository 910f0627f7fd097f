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
