//! Hostile layers through the real install path: a real PG 15 + pg_cron
//! bundle whose pg_cron artifact gets one extra layer crafted here, installed
//! with `install --bundle B --lock L` (any OCI layout serves the blobs a
//! lock names). Refused layers exit 5 and leave nothing behind; accepted
//! ones stay beneath the store entry whatever their symlinks say.

use crate::support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// An uncompressed layer from (raw name, kind, link target, data, mode).
fn layer(entries: &[(&str, tar::EntryType, &str, &[u8], u32)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, link, data, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if !link.is_empty() {
            h.set_link_name_literal(link).unwrap();
        }
        h.set_cksum();
        builder.append(&h, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// A sibling of the install roots that no layer may touch.
fn outside(dir: &Path) -> PathBuf {
    let out = dir.join("outside");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("secret"), "s").unwrap();
    out
}

use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};

#[test]
fn refused_layers_exit_5_and_change_nothing() {
    let dir = scratch();
    let d = dir.path();
    let (bundle, lock) = real_bundle(d);
    let outside = outside(d);
    let rel_out = "../../../../../../../../../../outside/secret";
    let mut truncated = layer(&[("big", F, "", &[7u8; 4000], 0o644)]);
    truncated.truncate(512 + 1000);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            layer(&[("../../evil", F, "", b"x", 0o644)]),
            "leaves the layer root",
        ),
        (
            "wh-dotdot",
            layer(&[("lib/.wh..", F, "", b"", 0o644)]),
            "whiteout must name a file",
        ),
        (
            "wh-empty",
            layer(&[(".wh.", F, "", b"", 0o644)]),
            "whiteout must name a file",
        ),
        (
            "hl-out",
            layer(&[("h", H, rel_out, b"", 0o644)]),
            "leaves the layer root",
        ),
        (
            "hl-absent",
            layer(&[("h", H, "absent", b"", 0o644)]),
            "not a regular file",
        ),
        ("truncated", truncated, "truncated"),
        (
            "loop",
            layer(&[("l", S, "/l", b"", 0o777), ("l/f", F, "", b"", 0o644)]),
            "symbolic links",
        ),
    ];
    for (name, bytes, want) in cases {
        let lock_file = lock_with_layer(d, &bundle, &lock, true, name, &bytes);
        let root = d.join(format!("root-{name}"));
        let out = install_hostile(d, &bundle, &lock_file, &root, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{name}: {stderr}");
        assert!(stderr.contains(want), "{name}: {stderr}");
        // No partial store entry and no instance.
        let leftovers: Vec<_> = tree(&root)
            .into_iter()
            .filter(|p| {
                let s = p.to_string_lossy();
                s.contains(".tmp-") || s.contains("instances/h")
            })
            .collect();
        assert!(leftovers.is_empty(), "{name}: {leftovers:?}");
        assert_eq!(tree(&outside), [outside.join("secret")], "{name}");
        assert!(!d.join("evil").exists() && !root.join("evil").exists());
    }
}

#[test]
fn accepted_hostile_layer_stays_beneath_its_store_entry() {
    let dir = scratch();
    let d = dir.path();
    let (bundle, lock) = real_bundle(d);
    let outside = outside(d);
    let abs = outside.to_str().unwrap().to_string();
    let bytes = layer(&[
        ("/", D, "", b"", 0o777),
        ("./", D, "", b"", 0o777),
        ("/hostile/", D, "", b"", 0o1777),
        ("/hostile/a", F, "", b"a", 0o644),
        ("./hostile/b", F, "", b"b", 0o644),
        ("hostile/suid", F, "", b"s", 0o6777),
        (
            "hostile/d1/d2/d3/up",
            S,
            "../../../../../../../../../..",
            b"",
            0o777,
        ),
        ("hostile/d1/d2/d3/up/escaped", F, "", b"e", 0o644),
        ("hostile/abs", S, &abs, b"", 0o777),
        ("hostile/abs/secret", F, "", b"pwned", 0o644),
        ("hostile/abs/.wh.secret", F, "", b"", 0o644),
        ("hostile/dup", F, "", b"1", 0o644),
        ("hostile/dup", F, "", b"2", 0o644),
        ("hostile/h", H, "/hostile/dup", b"", 0o644),
    ]);
    let lock_file = lock_with_layer(d, &bundle, &lock, true, "accepted", &bytes);
    let root = d.join("root");
    let out = install_hostile(d, &bundle, &lock_file, &root, &[]);
    assert_success(&out);
    assert_eq!(tree(&outside), [outside.join("secret")]);
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"s");
    let hex = lock.extensions[0].pinned.digest.hex().to_string();
    let entry = tree(&root)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|f| f == hex.as_str()))
        .expect("pg_cron store entry");
    let read = |p: &str| std::fs::read(entry.join(p)).unwrap();
    assert_eq!(read("hostile/a"), b"a");
    assert_eq!(read("hostile/b"), b"b");
    assert_eq!(read("escaped"), b"e");
    assert_eq!(read("hostile/h"), b"2");
    // The absolute symlink is kept as data; what went through it stayed
    // inside, and its whiteout removed only that.
    assert_eq!(
        std::fs::read_link(entry.join("hostile/abs")).unwrap(),
        outside
    );
    let inside = entry.join(outside.strip_prefix("/").unwrap());
    assert!(inside.is_dir() && !inside.join("secret").exists());
    let mode = std::fs::metadata(entry.join("hostile/suid"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7000, 0, "{mode:o}");
    assert_eq!(mode & 0o222, 0, "{mode:o}");
}
