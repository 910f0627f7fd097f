//! Hostile ELF files through the real install path: the real PG 15 +
//! pg_cron bundle, with one extra layer crafted here on the server or on
//! pg_cron (a forged `bin/postgres`, a `pg_cron.so` whose dynamic section
//! names a host path, libraries behind symlinks to host files, a
//! dependency cycle), installed with `install --bundle B --lock L`. The
//! reader runs as root on image files: none of these may copy or link a
//! host file into a generation, read past a file, loop, or end in exit
//! 1/101; a broken server binary or needed library is refused with exit 5
//! before anything is created, never found at initdb (exit 7).

use crate::support::*;
use pgoci::lock::Blob;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The bytes of the file whose path ends with `suffix` in an artifact's
/// layers (the last layer holding it wins, as unpack does).
fn file_of(bundle: &Path, layers: &[Blob], suffix: &str) -> Vec<u8> {
    let mut found = None;
    for blob in layers {
        let file =
            std::fs::File::open(bundle.join("blobs/sha256").join(blob.digest.hex())).unwrap();
        let reader: Box<dyn Read> = if blob.media_type.ends_with("gzip") {
            Box::new(flate2::read::GzDecoder::new(file))
        } else if blob.media_type.ends_with("zstd") {
            Box::new(zstd::stream::read::Decoder::new(file).unwrap())
        } else {
            Box::new(file)
        };
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            if path.ends_with(suffix) && entry.header().entry_type().is_file() {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                found = Some(bytes);
            }
        }
    }
    found.unwrap_or_else(|| panic!("no {suffix} in the artifact"))
}

/// A layer of (name, link target or "", data); links are symlinks.
fn layer(entries: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        if link.is_empty() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o755);
        } else {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_link_name_literal(link).unwrap();
        }
        h.set_size(data.len() as u64);
        h.set_path(name).unwrap();
        h.set_cksum();
        builder.append(&h, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Paths under `root` that a refused install must not leave: an instance,
/// a generation, a data directory, a half-built anything.
fn leftovers(root: &Path) -> Vec<PathBuf> {
    tree(root)
        .into_iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            s.contains(".tmp-")
                || s.contains("instances/h")
                || s.contains("generations/")
                || s.contains("var/lib/pgoci")
        })
        .collect()
}

/// No file under `root` is, or links to, anything in `host_dir`, and no
/// file has the content of `secret`.
fn nothing_of_the_host_in(root: &Path, host_dir: &Path, secret: &[u8]) {
    for p in tree(root) {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&p).unwrap();
            assert!(
                !target.starts_with(host_dir),
                "{} -> {}",
                p.display(),
                target.display()
            );
        } else if meta.is_file() && meta.len() == secret.len() as u64 {
            assert_ne!(
                std::fs::read(&p).unwrap(),
                secret,
                "{} is a copy of the host file",
                p.display()
            );
        }
    }
}

// ---- 64-bit little-endian ELF editing, for the cases below ----

fn u16_at(b: &[u8], at: usize) -> u64 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) as u64
}
fn u32_at(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as u64
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// (file offsets of the dynamic entries, file offset and size of the
/// dynamic string table).
fn dynamic(b: &[u8]) -> (Vec<usize>, usize, usize) {
    let (phoff, phnum) = (u64_at(b, 32) as usize, u16_at(b, 56) as usize);
    let phdrs: Vec<usize> = (0..phnum).map(|i| phoff + i * 56).collect();
    let map = |addr: u64| {
        phdrs
            .iter()
            .filter(|&&p| u32_at(b, p) == 1)
            .find_map(|&p| {
                let (off, vaddr, filesz) = (u64_at(b, p + 8), u64_at(b, p + 16), u64_at(b, p + 32));
                (addr >= vaddr && addr < vaddr + filesz).then(|| (off + addr - vaddr) as usize)
            })
            .unwrap()
    };
    let p = *phdrs.iter().find(|&&p| u32_at(b, p) == 2).unwrap();
    let (off, size) = (u64_at(b, p + 8) as usize, u64_at(b, p + 32) as usize);
    let entries: Vec<usize> = (off..off + size)
        .step_by(16)
        .take_while(|&e| u64_at(b, e) != 0)
        .collect();
    let tag = |t: u64| {
        entries
            .iter()
            .find(|&&e| u64_at(b, e) == t)
            .map(|&e| u64_at(b, e + 8))
            .unwrap()
    };
    (entries.clone(), map(tag(5)), tag(10) as usize)
}

/// Renames the `DT_NEEDED` string `from` to `to` (not longer) in place.
fn rename_needed(b: &mut [u8], from: &str, to: &str) {
    assert!(to.len() <= from.len());
    let (entries, str_at, str_size) = dynamic(b);
    let e = *entries
        .iter()
        .find(|&&e| {
            u64_at(b, e) == 1 && {
                let s = str_at + u64_at(b, e + 8) as usize;
                b[s..].starts_with(from.as_bytes()) && b[s + from.len()] == 0
            }
        })
        .unwrap_or_else(|| panic!("no DT_NEEDED {from}"));
    let s = str_at + u64_at(b, e + 8) as usize;
    assert!(s < str_at + str_size);
    b[s..s + from.len()].fill(0);
    b[s..s + to.len()].copy_from_slice(to.as_bytes());
}

/// Writes `text` over the longest string of the dynamic string table (a
/// symbol name: the file is refused or never loaded) and points the
/// `DT_NEEDED` entry named `needed` at it, as `tag`.
fn repoint_needed(b: &mut [u8], needed: &str, tag: u64, text: &str) {
    let (entries, str_at, str_size) = dynamic(b);
    let table = &b[str_at..str_at + str_size];
    let (mut best, mut at) = (0, 0);
    for s in table.split(|&c| c == 0).scan(0, |pos, s| {
        let here = *pos;
        *pos += s.len() + 1;
        Some((here, s.len()))
    }) {
        if s.1 > best {
            (at, best) = s;
        }
    }
    assert!(
        text.len() <= best,
        "no string of {} bytes to reuse",
        text.len()
    );
    let e = *entries
        .iter()
        .find(|&&e| {
            u64_at(b, e) == 1
                && b[str_at + u64_at(b, e + 8) as usize..].starts_with(needed.as_bytes())
        })
        .unwrap();
    b[str_at + at..str_at + at + best].fill(0);
    b[str_at + at..str_at + at + text.len()].copy_from_slice(text.as_bytes());
    put64(b, e, tag);
    put64(b, e + 8, at as u64);
}

/// A host directory with a short path (it must fit into a string of the
/// image's string table), readable by root only.
fn host_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("e")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

const POSTGRES: &str = "usr/lib/postgresql/15/bin/postgres";

/// A server whose `bin/postgres` has broken headers: refused in the plan
/// with exit 5 naming the file and the fault, before anything is created
/// (no store entry, no generation, no initdb) — by `--check` too.
#[test]
fn a_server_binary_with_broken_headers_is_exit_5_before_anything_runs() {
    let dir = scratch();
    let d = dir.path();
    let (bundle, lock) = real_bundle(d);
    let real = file_of(&bundle, &lock.server.pinned.layers, "bin/postgres");
    let mut phnum = real.clone();
    phnum[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
    let mut strtab = real.clone();
    let (entries, _, _) = dynamic(&strtab);
    let e = *entries.iter().find(|&&e| u64_at(&strtab, e) == 5).unwrap();
    put64(&mut strtab, e + 8, real.len() as u64 * 2);
    let mut strsz = real.clone();
    let e = *entries.iter().find(|&&e| u64_at(&strsz, e) == 10).unwrap();
    put64(&mut strsz, e + 8, u64::MAX - 3);
    let truncated = real[..real.len() / 2].to_vec();
    let cases: [(&str, &[u8], &str); 4] = [
        ("phnum", &phnum, "e_phnum 65535"),
        ("strtab", &strtab, "string table"),
        ("strsz", &strsz, "string table"),
        ("truncated", &truncated, "past the end of the file"),
    ];
    for (name, bytes, want) in cases {
        let lock_file = lock_with_layer(
            d,
            &bundle,
            &lock,
            false,
            name,
            &layer(&[(POSTGRES, "", bytes)]),
        );
        let root = d.join(format!("root-{name}"));
        let out = install_hostile(d, &bundle, &lock_file, &root, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{name}: {stderr}");
        assert!(
            stderr.contains("bin/postgres") && stderr.contains(want),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("initdb"), "{name}: {stderr}");
        assert!(
            leftovers(&root).is_empty(),
            "{name}: {:?}",
            leftovers(&root)
        );
        // The store this run created is gone again.
        assert!(
            !root.join("opt/pgoci/store").exists(),
            "{name}: {:?}",
            tree(&root)
        );
        // `--check` reads the same and refuses the same, changing nothing.
        let root = d.join(format!("check-{name}"));
        let out = install_hostile(d, &bundle, &lock_file, &root, &["--check"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "check {name}: {stderr}");
        assert!(stderr.contains("bin/postgres"), "check {name}: {stderr}");
        assert!(tree(&root).is_empty(), "check {name}: {:?}", tree(&root));
    }
}

/// Broken libraries the closure needs: the extension's own module cut
/// short, and a library of its `system/` with a forged header.
#[test]
fn a_broken_needed_library_is_exit_5_naming_it() {
    let dir = scratch();
    let d = dir.path();
    let (bundle, lock) = real_bundle(d);
    let cron = file_of(&bundle, &lock.extensions[0].pinned.layers, "lib/pg_cron.so");
    let mut renamed = cron.clone();
    rename_needed(&mut renamed, "libpq.so.5", "libpq.so.9");
    let mut forged = std::fs::read("/usr/lib/x86_64-linux-gnu/libpq.so.5").unwrap();
    let shoff = forged.len() as u64 - 10;
    put64(&mut forged, 40, shoff); // e_shoff: the section headers cut off
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "cut-module",
            layer(&[("lib/pg_cron.so", "", &cron[..cron.len() / 3])]),
            "lib/pg_cron.so",
        ),
        (
            "forged-dep",
            layer(&[
                ("lib/pg_cron.so", "", &renamed),
                ("system/libpq.so.9", "", &forged),
            ]),
            "system/libpq.so.9",
        ),
    ];
    for (name, bytes, want) in cases {
        let lock_file = lock_with_layer(d, &bundle, &lock, true, name, &bytes);
        let root = d.join(format!("root-{name}"));
        let out = install_hostile(d, &bundle, &lock_file, &root, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{name}: {stderr}");
        assert!(
            stderr.contains(want) && stderr.contains("damaged ELF"),
            "{name}: {stderr}"
        );
        assert!(
            leftovers(&root).is_empty(),
            "{name}: {:?}",
            leftovers(&root)
        );
    }
}

/// Libraries pointing at host files: a `system/` symlink to a root-only
/// host library, a `DT_NEEDED` naming a host path. The first is resolved
/// inside the image (where it leads nowhere: exit 6, missing), the second
/// is refused as it stands (exit 5); neither puts the host file, or a link
/// to it, anywhere under the root.
#[test]
fn host_files_named_by_an_image_never_reach_a_generation() {
    let dir = scratch();
    let d = dir.path();
    let (bundle, lock) = real_bundle(d);
    let host = host_dir();
    let secret_path = host.path().join("libs.so");
    let secret = std::fs::read("/usr/lib/x86_64-linux-gnu/libpq.so.5").unwrap();
    std::fs::write(&secret_path, &secret).unwrap();
    std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secret_str = secret_path.to_str().unwrap();
    let cron = file_of(&bundle, &lock.extensions[0].pinned.layers, "lib/pg_cron.so");
    let mut renamed = cron.clone();
    rename_needed(&mut renamed, "libpq.so.5", "libpq.so.9");
    let mut absolute = cron.clone();
    repoint_needed(&mut absolute, "libpq.so.5", 1, secret_str);
    let cases: Vec<(&str, Vec<u8>, i32, String)> = vec![
        (
            "symlink",
            layer(&[
                ("lib/pg_cron.so", "", &renamed),
                ("system/libpq.so.9", secret_str, b""),
            ]),
            6,
            "libpq.so.9, which is not found".to_string(),
        ),
        (
            "absolute-needed",
            layer(&[("lib/pg_cron.so", "", &absolute)]),
            5,
            format!("by the path \"{secret_str}\""),
        ),
    ];
    for (name, bytes, code, want) in cases {
        let lock_file = lock_with_layer(d, &bundle, &lock, true, name, &bytes);
        let root = d.join(format!("root-{name}"));
        let out = install_hostile(d, &bundle, &lock_file, &root, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {stderr}");
        assert!(stderr.contains(&want), "{name}: {stderr}");
        assert!(
            leftovers(&root).is_empty(),
            "{name}: {:?}",
            leftovers(&root)
        );
        nothing_of_the_host_in(&root, host.path(), &secret);
        assert_eq!(std::fs::read(&secret_path).unwrap(), secret);
    }
}

/// A `RUNPATH` naming a host directory is searched as ld.so would search
/// it — on the host, where the library stays: the install goes through
/// and nothing of that directory is copied or linked into the generation.
/// And a dependency cycle among an extension's libraries (the module needs
/// libpq.so.9, which needs libcyc.so.1, which needs libpq.so.9 and itself)
/// ends: the install goes through with both placed from the extension.
#[test]
fn host_runpath_and_dependency_cycles() {
    let dir = scratch();
    let d = dir.path();
    let (bundle, lock) = real_bundle(d);
    let host = host_dir();
    std::fs::set_permissions(host.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let libpq = std::fs::read("/usr/lib/x86_64-linux-gnu/libpq.so.5").unwrap();
    std::fs::write(host.path().join("libpq.so.9"), &libpq).unwrap();
    let cron = file_of(&bundle, &lock.extensions[0].pinned.layers, "lib/pg_cron.so");

    // RUNPATH=/tmp/eXXXXXX in place of the DT_NEEDED of libc.so.6 (which
    // the server has loaded already).
    let mut runpath = cron.clone();
    rename_needed(&mut runpath, "libpq.so.5", "libpq.so.9");
    repoint_needed(&mut runpath, "libc.so.6", 29, host.path().to_str().unwrap());
    let lock_file = lock_with_layer(
        d,
        &bundle,
        &lock,
        true,
        "runpath",
        &layer(&[("lib/pg_cron.so", "", &runpath)]),
    );
    let root = d.join("root-runpath");
    let out = install_hostile(d, &bundle, &lock_file, &root, &[]);
    let _servers = Servers::of(&root, "h");
    assert_success(&out);
    nothing_of_the_host_in(&root, host.path(), &libpq);

    // The cycle, in the extension's system/.
    let mut cron9 = cron.clone();
    rename_needed(&mut cron9, "libpq.so.5", "libpq.so.9");
    let mut pq9 = libpq.clone();
    rename_needed(&mut pq9, "libgssapi_krb5.so.2", "libcyc.so.1");
    let mut cyc = libpq.clone();
    rename_needed(&mut cyc, "libgssapi_krb5.so.2", "libpq.so.9");
    rename_needed(&mut cyc, "libldap-2.5.so.0", "libcyc.so.1");
    let lock_file = lock_with_layer(
        d,
        &bundle,
        &lock,
        true,
        "cycle",
        &layer(&[
            ("lib/pg_cron.so", "", &cron9),
            ("system/libpq.so.9", "", &pq9),
            ("system/libcyc.so.1", "", &cyc),
        ]),
    );
    let root = d.join("root-cycle");
    let started = std::time::Instant::now();
    let out = install_hostile(d, &bundle, &lock_file, &root, &["--check", "--json"]);
    assert_success(&out);
    let report = json(&out);
    let rows = report["libraries"]["rows"]
        .as_array()
        .expect("library rows");
    for soname in ["libpq.so.9", "libcyc.so.1"] {
        assert!(
            rows.iter().any(
                |r| r["need"].as_str().is_some_and(|n| n.starts_with(soname))
                    && r["found"]
                        .as_str()
                        .is_some_and(|f| !f.starts_with("missing"))
            ),
            "{soname}: {rows:?}"
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
}
