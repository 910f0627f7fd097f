//! Layers built here with the `tar` crate (raw header edits for names it
//! refuses), applied to temporary directories, hostile ones included.

use super::*;
use crate::digest::Digest;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};

/// One entry: name (written raw), kind, link target, data, mode.
type Ent<'a> = (&'a str, tar::EntryType, &'a str, &'a [u8], u32);

fn e<'a>(name: &'a str, kind: tar::EntryType, link: &'a str, data: &'a [u8]) -> Ent<'a> {
    (name, kind, link, data, 0o755)
}

fn tar_bytes(entries: &[Ent]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, link, data, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_size(data.len() as u64);
        // set_path refuses `..` and leading `/`; write the raw name.
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        if !link.is_empty() {
            h.set_link_name_literal(link).unwrap();
        }
        h.set_cksum();
        builder.append(&h, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn compress(raw: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => raw.to_vec(),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(raw).unwrap();
            enc.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(raw, 1).unwrap(),
    }
}

fn blob_of(bytes: &[u8], c: Compression) -> Blob {
    let media_type = match c {
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    };
    Blob {
        digest: Digest::of_bytes(bytes),
        size: bytes.len() as u64,
        media_type: media_type.into(),
    }
}

fn apply_raw(raw: &[u8], c: Compression, dir: &Path, budget: &mut Budget) -> Result<()> {
    let bytes = compress(raw, c);
    apply_layer(&bytes[..], &blob_of(&bytes, c), dir, &keep_all, budget)
}

thread_local! {
    /// Makes [`apply`] store each layer first and compose from the stored
    /// layer, as the install path does.
    static VIA_STORED_LAYER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Applies one layer onto `dir`: straight from the blob, or (see
/// [`VIA_STORED_LAYER`]) stored apart, sealed, and composed onto `dir`.
fn apply(entries: &[Ent], dir: &Path) -> Result<()> {
    let raw = tar_bytes(entries);
    if VIA_STORED_LAYER.with(std::cell::Cell::get) {
        let layers = tempfile::tempdir().unwrap();
        let stored = layers.path().join("layer");
        let blob = blob_of(&raw, Compression::None);
        layer::store_layer(&raw[..], &blob, &stored, &mut Budget::default())?;
        seal(&stored).unwrap();
        layer::compose(&[(stored, blob.digest)], dir, &keep_all)?;
        return Ok(());
    }
    apply_raw(&raw, Compression::None, dir, &mut Budget::default())
}

/// Runs `check` with layers applied straight and through stored layers.
fn both_ways(check: fn()) {
    check();
    VIA_STORED_LAYER.with(|f| f.set(true));
    let stored = std::panic::catch_unwind(check);
    VIA_STORED_LAYER.with(|f| f.set(false));
    stored.expect("through stored layers");
}

fn integrity(r: Result<()>, what: &str) -> String {
    let err = r.expect_err(what);
    assert_eq!(err.kind, Kind::Integrity, "{what}: {}", err.message);
    err.message
}

/// A root inside a temp dir, plus a sibling `outside/` holding `secret`.
fn bed() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), "s").unwrap();
    (dir, root, outside)
}

/// Everything below `dir`, as sorted relative paths.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Runs `check` with the kernel's `openat2` and with the descriptor walk
/// used where the kernel lacks it, each both ways ([`both_ways`]).
fn with_both_resolvers(check: fn()) {
    both_ways(check);
    crate::rootfs::FORCE_WALK.with(|f| f.set(true));
    let walked = std::panic::catch_unwind(|| both_ways(check));
    crate::rootfs::FORCE_WALK.with(|f| f.set(false));
    walked.expect("with the descriptor walk");
}

#[test]
fn leading_slash_and_dot_slash_are_relative_to_the_root() {
    with_both_resolvers(leading_slash_and_dot_slash_are_relative_to_the_root_with)
}

fn leading_slash_and_dot_slash_are_relative_to_the_root_with() {
    let (_d, root, _) = bed();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
    apply(
        &[
            e("/", D, "", b""),
            e("./", D, "", b""),
            e("/usr/", D, "", b""),
            e("/usr/bin/x", F, "", b"x"),
            e("./etc/y", F, "", b"y"),
            e("usr/./lib/../lib/z", F, "", b"z"),
        ],
        &root,
    )
    .unwrap();
    assert_eq!(fs::read(root.join("usr/bin/x")).unwrap(), b"x");
    assert_eq!(fs::read(root.join("etc/y")).unwrap(), b"y");
    assert_eq!(fs::read(root.join("usr/lib/z")).unwrap(), b"z");
    // The root entries never change the target directory itself.
    let mode = fs::metadata(&root).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
}

#[test]
fn dotdot_escapes_are_refused() {
    both_ways(dotdot_escapes_are_refused_with)
}

fn dotdot_escapes_are_refused_with() {
    for bad in ["../evil", "a/../../evil", "/../evil", "./../evil"] {
        let (_d, root, outside) = bed();
        let msg = integrity(apply(&[e(bad, F, "", b"x")], &root), bad);
        assert!(msg.contains("leaves the layer root"), "{bad}: {msg}");
        assert!(!root.parent().unwrap().join("evil").exists(), "{bad}");
        assert_eq!(listing(&outside), ["secret"]);
    }
    assert_eq!(
        safe_relative(Path::new("/a/./b/../c")).unwrap(),
        Path::new("a/c")
    );
}

#[test]
fn whiteouts_of_dot_dotdot_or_nothing_are_refused() {
    both_ways(whiteouts_of_dot_dotdot_or_nothing_are_refused_with)
}

fn whiteouts_of_dot_dotdot_or_nothing_are_refused_with() {
    for bad in ["a/.wh..", ".wh...", ".wh.", "a/.wh.", "a/.wh..."] {
        let (_d, root, outside) = bed();
        apply(
            &[
                e("a/", D, "", b""),
                e("a/f", F, "", b"f"),
                e("g", F, "", b"g"),
            ],
            &root,
        )
        .unwrap();
        let msg = integrity(apply(&[e(bad, F, "", b"")], &root), bad);
        assert!(msg.contains("whiteout must name a file"), "{bad}: {msg}");
        assert_eq!(listing(&root), ["a", "a/f", "g"], "{bad}");
        assert_eq!(listing(&outside), ["secret"]);
    }
}

#[test]
fn whiteouts_and_opaque_directories() {
    with_both_resolvers(whiteouts_and_opaque_directories_with)
}

fn whiteouts_and_opaque_directories_with() {
    let (_d, root, _) = bed();
    apply(
        &[
            e("bin/", D, "", b""),
            e("bin/a", F, "", b"A"),
            e("bin/b", H, "bin/a", b""),
            e("bin/c", S, "a", b""),
            e("old/", D, "", b""),
            e("old/x", F, "", b"x"),
            e("old/sub/y", F, "", b"y"),
            e("keep/", D, "", b""),
            e("keep/x", F, "", b"x"),
            e("gone/deep/f", F, "", b"g"),
        ],
        &root,
    )
    .unwrap();
    assert_eq!(
        fs::metadata(root.join("bin/b")).unwrap().ino(),
        fs::metadata(root.join("bin/a")).unwrap().ino()
    );
    assert_eq!(fs::read(root.join("bin/c")).unwrap(), b"A");
    apply(
        &[
            e(".wh.gone", F, "", b""),
            e("bin/.wh.c", F, "", b""),
            e("old/new/n", F, "", b"n"),
            // The marker after this layer's own children must spare them.
            e("old/.wh..wh..opq", F, "", b""),
            e("keep/.wh..wh.plnk", F, "", b""),
            e("nothere/.wh.x", F, "", b""),
        ],
        &root,
    )
    .unwrap();
    assert_eq!(
        listing(&root),
        [
            "bin",
            "bin/a",
            "bin/b",
            "keep",
            "keep/x",
            "old",
            "old/new",
            "old/new/n"
        ]
    );
}

#[test]
fn symlinks_never_lead_writes_out_of_the_root() {
    with_both_resolvers(symlinks_never_lead_writes_out_of_the_root_with)
}

fn symlinks_never_lead_writes_out_of_the_root_with() {
    let (d, root, outside) = bed();
    // A chain of 20 directories whose bottom points far above the root,
    // and links to the outside by relative and absolute targets.
    let deep: String = (1..=20).map(|i| format!("d{i}/")).collect();
    let up = format!("{deep}up");
    let abs = outside.display().to_string();
    apply(
        &[
            e(&deep, D, "", b""),
            e(&up, S, &"../".repeat(25), b""),
            e("rel", S, "../outside", b""),
            e("abs", S, &abs, b""),
            e("x", S, "/etc", b""),
            e("loop", S, "/loop", b""),
        ],
        &root,
    )
    .unwrap();
    // The links are kept as written: they are data.
    assert_eq!(fs::read_link(root.join("abs")).unwrap(), outside);
    let escaped = format!("{up}/escaped");
    apply(
        &[
            e(&escaped, F, "", b"1"),
            e("rel/secret", F, "", b"2"),
            e("abs/secret", F, "", b"3"),
            e("x/pgoci-test", F, "", b"4"),
            e("rel/newdir/", D, "", b""),
        ],
        &root,
    )
    .unwrap();
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"s");
    assert_eq!(listing(&outside), ["secret"]);
    assert!(!d.path().join("escaped").exists());
    assert!(!Path::new("/etc/pgoci-test").exists());
    // Resolved as in a chroot: each write landed beneath the root.
    assert_eq!(fs::read(root.join("escaped")).unwrap(), b"1");
    assert_eq!(fs::read(root.join("outside/secret")).unwrap(), b"2");
    let abs_inside = root.join(outside.strip_prefix("/").unwrap());
    assert_eq!(fs::read(abs_inside.join("secret")).unwrap(), b"3");
    assert_eq!(fs::read(root.join("etc/pgoci-test")).unwrap(), b"4");
    assert!(root.join("outside/newdir").is_dir());
    // In the root, `/loop -> /loop` is a loop, whatever the host has.
    let msg = integrity(apply(&[e("loop/f", F, "", b"")], &root), "loop");
    assert!(msg.contains("symbolic links"), "{msg}");
}

#[test]
fn whiteouts_never_remove_through_symlinks() {
    with_both_resolvers(whiteouts_never_remove_through_symlinks_with)
}

fn whiteouts_never_remove_through_symlinks_with() {
    let (_d, root, outside) = bed();
    apply(
        &[
            e("rel", S, "../outside", b""),
            e("abs", S, outside.to_str().unwrap(), b""),
        ],
        &root,
    )
    .unwrap();
    apply(
        &[
            e("rel/.wh.secret", F, "", b""),
            e("abs/.wh..wh..opq", F, "", b""),
            e(".wh.rel", F, "", b""),
        ],
        &root,
    )
    .unwrap();
    assert_eq!(listing(&outside), ["secret"]);
    assert_eq!(listing(&root), ["abs"]);
}

#[test]
fn hard_links_resolve_in_the_root_and_need_a_regular_target() {
    with_both_resolvers(hard_links_resolve_in_the_root_and_need_a_regular_target_with)
}

fn hard_links_resolve_in_the_root_and_need_a_regular_target_with() {
    let (_d, root, outside) = bed();
    apply(
        &[
            e("rel", S, "../outside", b""),
            e("dir/", D, "", b""),
            e("link", S, "dir", b""),
        ],
        &root,
    )
    .unwrap();
    for (target, what) in [
        ("../outside/secret", "leaves the layer root"),
        ("rel/secret", "not a regular file"),
        ("absent", "not a regular file"),
        ("dir", "not a regular file"),
        ("link", "not a regular file"),
    ] {
        let msg = integrity(apply(&[e("h", H, target, b"")], &root), target);
        assert!(msg.contains(what), "{target}: {msg}");
        assert!(!root.join("h").exists(), "{target}");
    }
    assert_eq!(fs::metadata(outside.join("secret")).unwrap().nlink(), 1);
    // Through an in-root symlink to a real file is fine.
    apply(&[e("dir/f", F, "", b"f"), e("h", H, "/link/f", b"")], &root).unwrap();
    assert_eq!(
        fs::metadata(root.join("h")).unwrap().ino(),
        fs::metadata(root.join("dir/f")).unwrap().ino()
    );
}

#[test]
fn special_bits_and_world_write_are_dropped() {
    let (_d, root, _) = bed();
    apply(
        &[
            ("d/", D, "", b"", 0o1777),
            ("d/suid", F, "", b"x", 0o6777),
            ("d/plain", F, "", b"x", 0o644),
            ("ro/", D, "", b"", 0o555),
        ],
        &root,
    )
    .unwrap();
    let mode = |p: &str| fs::symlink_metadata(root.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("d"), 0o775);
    assert_eq!(mode("d/suid"), 0o775);
    assert_eq!(mode("d/plain"), 0o644);
    assert_eq!(mode("ro"), 0o755);
    seal(&root).unwrap();
    assert_eq!(mode("d"), 0o555);
    assert_eq!(mode("d/suid"), 0o555);
    assert_eq!(mode("d/plain"), 0o444);
}

#[test]
fn devices_and_fifos_are_skipped_and_sparse_files_refused() {
    // Root file systems made by debootstrap carry /dev nodes: a container
    // runtime makes its own, and so does the host; none is ever created.
    for kind in [
        tar::EntryType::Char,
        tar::EntryType::Block,
        tar::EntryType::Fifo,
    ] {
        let (_d, root, _) = bed();
        apply(&[e("dev", kind, "", b"")], &root).unwrap();
        assert!(!root.join("dev").exists());
    }
    let (_d, root, _) = bed();
    // A sparse entry is refused (here already by the tar reader).
    integrity(
        apply(&[e("sparse", tar::EntryType::GNUSparse, "", b"")], &root),
        "",
    );
    assert!(!root.join("sparse").exists());
}

/// A gzip stream of `raw` then `zeros` zero bytes, made without holding them.
fn gzip_with_zeros(raw: &[u8], zeros: usize) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(raw).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(chunk.len());
        enc.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    enc.finish().unwrap()
}

#[test]
fn decompressed_bytes_are_capped_per_artifact() {
    let cap = Limits {
        max_unpacked_bytes: 1 << 20,
    };
    // One file of 64 MiB zeros: a few KiB compressed.
    let mut h = tar::Header::new_gnu();
    h.set_path("bomb").unwrap();
    h.set_size(64 << 20);
    h.set_mode(0o644);
    h.set_cksum();
    let bomb = gzip_with_zeros(h.as_bytes(), 64 << 20);
    assert!(bomb.len() < 200 << 10);
    let (_d, root, _) = bed();
    let blob = blob_of(&bomb, Compression::Gzip);
    let err = apply_layer(&bomb[..], &blob, &root, &keep_all, &mut Budget::new(cap)).unwrap_err();
    assert_eq!(err.kind, Kind::Integrity);
    assert!(
        err.message.contains(&blob.digest.to_string()) && err.message.contains("1048576"),
        "{}",
        err.message
    );
    // Zeros hidden after the end of the archive count too.
    let trailing = gzip_with_zeros(&tar_bytes(&[e("f", F, "", b"f")]), 8 << 20);
    let blob = blob_of(&trailing, Compression::Gzip);
    let err = apply_layer(
        &trailing[..],
        &blob,
        &root,
        &keep_all,
        &mut Budget::new(cap),
    )
    .unwrap_err();
    assert!(
        err.message.contains("the cap for one artifact"),
        "{}",
        err.message
    );
    // The budget spans the layers of one artifact.
    let big = vec![7u8; 700 << 10];
    let layer = tar_bytes(&[e("big", F, "", &big)]);
    let mut budget = Budget::new(cap);
    apply_raw(&layer, Compression::Zstd, &root, &mut budget).unwrap();
    assert!(budget.used() > 700 << 10);
    let msg = integrity(
        apply_raw(&layer, Compression::Zstd, &root, &mut budget),
        "second layer",
    );
    assert!(msg.contains("the cap"), "{msg}");
}

#[test]
fn truncated_archives_fail() {
    let raw = tar_bytes(&[e("a", F, "", &[1u8; 3000]), e("b", F, "", b"b")]);
    for cut in [512 + 1000, 100, 512 + 3072 + 200] {
        let (_d, root, _) = bed();
        integrity(
            apply_raw(
                &raw[..cut],
                Compression::None,
                &root,
                &mut Budget::default(),
            ),
            &format!("cut at {cut}"),
        );
        // The same cut inside a compressed stream.
        let gz = compress(&raw, Compression::Gzip);
        let short = &gz[..gz.len() / 2];
        let blob = blob_of(short, Compression::Gzip);
        integrity(
            apply_layer(short, &blob, &root, &keep_all, &mut Budget::default()),
            "short gzip",
        );
    }
}

#[test]
fn a_missing_end_of_archive_marker_is_accepted_as_runtimes_do() {
    // Go's archive/tar (containerd) and GNU tar stop cleanly at EOF on an
    // entry boundary; every entry before it is whole.
    let raw = tar_bytes(&[e("a", F, "", b"a"), e("b", F, "", b"b")]);
    let (_d, root, _) = bed();
    apply_raw(
        &raw[..2048],
        Compression::None,
        &root,
        &mut Budget::default(),
    )
    .unwrap();
    assert_eq!(listing(&root), ["a", "b"]);
}

#[test]
fn later_entries_win_and_kinds_replace_each_other() {
    with_both_resolvers(later_entries_win_and_kinds_replace_each_other_with)
}

fn later_entries_win_and_kinds_replace_each_other_with() {
    let (_d, root, outside) = bed();
    apply(
        &[
            e("f", F, "", b"1"),
            e("f", F, "", b"2"),
            e("d/", D, "", b""),
            e("d/x", F, "", b"x"),
            e("file-then-dir", F, "", b"x"),
            e("l", S, "../outside", b""),
        ],
        &root,
    )
    .unwrap();
    apply(
        &[
            e("d", F, "", b"now a file"),
            e("file-then-dir/", D, "", b""),
            e("file-then-dir/y", F, "", b"y"),
            e("l/", D, "", b""),
            e("l/z", F, "", b"z"),
        ],
        &root,
    )
    .unwrap();
    assert_eq!(fs::read(root.join("f")).unwrap(), b"2");
    assert_eq!(fs::read(root.join("d")).unwrap(), b"now a file");
    assert!(root.join("file-then-dir/y").is_file());
    // A directory entry replaces a symlink instead of following it.
    assert!(fs::symlink_metadata(root.join("l")).unwrap().is_dir());
    assert!(root.join("l/z").is_file());
    assert_eq!(listing(&outside), ["secret"]);
}

#[test]
fn a_file_in_the_way_of_a_directory_is_an_integrity_error() {
    both_ways(a_file_in_the_way_of_a_directory_is_an_integrity_error_with)
}

fn a_file_in_the_way_of_a_directory_is_an_integrity_error_with() {
    let (_d, root, _) = bed();
    let msg = integrity(
        apply(&[e("f", F, "", b"x"), e("f/g", F, "", b"y")], &root),
        "file as dir",
    );
    assert!(msg.contains("f/g"), "{msg}");
}

#[test]
fn gzip_and_zstd_layers_apply() {
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let (_d, root, _) = bed();
        let raw = tar_bytes(&[
            e("/usr/lib/x.so", F, "", b"elf"),
            e("/usr/lib/y.so", S, "x.so", b""),
        ]);
        apply_raw(&raw, c, &root, &mut Budget::default()).unwrap();
        assert_eq!(
            fs::read(root.join("usr/lib/y.so")).unwrap(),
            b"elf",
            "{c:?}"
        );
    }
}

#[test]
fn wrong_bytes_fail_the_digest() {
    let raw = tar_bytes(&[e("f", F, "", b"hello")]);
    let blob = blob_of(&raw, Compression::None);
    let mut bytes = raw.clone();
    bytes[600] ^= 1;
    let (_d, root, _) = bed();
    integrity(
        apply_layer(&bytes[..], &blob, &root, &keep_all, &mut Budget::default()),
        "flipped bit",
    );
    // Extra bytes after the archive are read and caught as well.
    bytes = raw.clone();
    bytes.extend_from_slice(&[0u8; 1024]);
    integrity(
        apply_layer(&bytes[..], &blob, &root, &keep_all, &mut Budget::default()),
        "longer blob",
    );
}

#[test]
fn a_full_file_system_is_a_host_error_naming_it() {
    // /dev/full answers every write with ENOSPC, as a full disk does.
    let (_d, root, _) = bed();
    let mut full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let err = write_data(&mut &[1u8; 10][..], 10, &mut full, Path::new("x"), |e| {
        fs_error(&root, Path::new("x"), "write", e)
    })
    .unwrap_err();
    assert_eq!(err.kind, Kind::Host, "{}", err.message);
    assert!(
        err.message.contains(&root.join("x").display().to_string()),
        "{}",
        err.message
    );
    // The mount point as util-linux sees it.
    let findmnt = std::process::Command::new("findmnt")
        .args(["-n", "-o", "TARGET", "--target"])
        .arg(&root)
        .output()
        .unwrap();
    let mount = String::from_utf8(findmnt.stdout).unwrap();
    let want = format!("mounted at {} is full", mount.trim());
    assert!(err.message.contains(&want), "{want} in {}", err.message);
    assert!(err.hint.is_some());
}

#[test]
fn selectors_still_pick_and_place() {
    let (_d, root, _) = bed();
    let raw = tar_bytes(&[
        e("/usr/lib/postgresql/bin/postgres", F, "", b"pg"),
        e("/usr/share/doc/x", F, "", b"doc"),
        e("/usr/lib/postgresql/bin/.wh.old", F, "", b""),
    ]);
    let blob = blob_of(&raw, Compression::None);
    let select = |p: &Path| p.starts_with("usr/lib/postgresql").then(|| p.to_path_buf());
    apply_layer(&raw[..], &blob, &root, &select, &mut Budget::default()).unwrap();
    assert_eq!(
        listing(&root),
        [
            "usr",
            "usr/lib",
            "usr/lib/postgresql",
            "usr/lib/postgresql/bin",
            "usr/lib/postgresql/bin/postgres"
        ]
    );
}

#[test]
fn a_full_file_system_fails_the_unpack_as_a_host_error() {
    // A 256 KiB tmpfs, mounted only inside a private mount namespace of a
    // child (this very test binary, running the ignored test below).
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=256k pgoci-enospc "$1" && exec "$2" --ignored --exact unpack::tests::unpack_onto_a_small_tmpfs --test-threads 1"#)
        .arg("sh")
        .arg(dir.path())
        .arg(std::env::current_exe().unwrap())
        .env("PGOCI_TEST_SMALL_FS", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "run by a_full_file_system_fails_the_unpack_as_a_host_error in its own mount namespace"]
fn unpack_onto_a_small_tmpfs() {
    let fs_root =
        PathBuf::from(std::env::var_os("PGOCI_TEST_SMALL_FS").expect("set by the parent test"));
    let big = vec![1u8; 1 << 20];
    let raw = tar_bytes(&[e("dir/big", F, "", &big)]);
    let dest = fs_root.join("root");
    let err = apply_raw(&raw, Compression::Gzip, &dest, &mut Budget::default()).unwrap_err();
    assert_eq!(err.kind, Kind::Host, "{}", err.message);
    let want = format!(
        "cannot write {}: the file system mounted at {} is full",
        dest.join("dir/big").display(),
        fs_root.display()
    );
    assert!(err.message.contains(&want), "{want} in {}", err.message);
}

#[test]
fn digests_recorded_while_writing_match_a_full_rehash() {
    use tar::EntryType::{Directory, Link, Regular};
    let (_d, root, _) = bed();
    let mut budget = Budget::default();
    let layer1 = tar_bytes(&[
        e("d", Directory, "", b""),
        e("d/a", Regular, "", b"first"),
        e("d/gone", Regular, "", b"whited out"),
        e("d/b", Regular, "", b"bee"),
    ]);
    let layer2 = tar_bytes(&[
        e("d/a", Regular, "", b"second"),
        e("d/.wh.gone", Regular, "", b""),
        e("d/hard", Link, "d/b", b""),
    ]);
    for layer in [layer1, layer2] {
        apply_raw(&layer, Compression::Gzip, &root, &mut budget).unwrap();
    }
    seal(&root).unwrap();
    let known = crate::install::manifest::hash_tree(&root, budget.digests()).unwrap();
    let rehashed = crate::install::manifest::hash_tree(&root, &InodeDigests::new()).unwrap();
    assert_eq!(known, rehashed);
    assert_eq!(known.len(), 3, "{known:?}");
    // Every file was known from the write: nothing needed a second read.
    use std::os::unix::fs::MetadataExt;
    for rel in known.keys() {
        let m = std::fs::metadata(root.join(rel)).unwrap();
        assert!(
            budget.digests().contains_key(&(m.dev(), m.ino())),
            "{rel:?}"
        );
    }
}

/// Two layers stored once, composed onto two roots: the roots share every
/// file's inode with the stored layers, match a direct apply of the same
/// blobs, and their recorded digests match a full re-hash.
#[test]
fn stored_layers_compose_shared_roots_equal_to_a_direct_apply() {
    let lower = tar_bytes(&[
        e("d/", D, "", b""),
        e("d/a", F, "", b"first"),
        e("d/gone", F, "", b"whited out"),
        e("d/b", F, "", b"bee"),
        e("l", S, "d", b""),
        e("with space %20", F, "", b"s"),
        e("old/", D, "", b""),
        e("old/x", F, "", b"x"),
    ]);
    let upper = tar_bytes(&[
        e("d/a", F, "", b"second"),
        e("d/.wh.gone", F, "", b""),
        // A hard link to a file of the lower layer, through a symlink.
        e("d/hard", H, "l/b", b""),
        // A file written through a lower layer's symlink.
        e("l/via", F, "", b"v"),
        e("old/new", F, "", b"n"),
        e("old/.wh..wh..opq", F, "", b""),
    ]);
    let store = tempfile::tempdir().unwrap();
    let mut layers = Vec::new();
    for (i, raw) in [&lower, &upper].into_iter().enumerate() {
        let bytes = compress(raw, Compression::Gzip);
        let blob = blob_of(&bytes, Compression::Gzip);
        let dir = store.path().join(i.to_string());
        let used = layer::store_layer(&bytes[..], &blob, &dir, &mut Budget::default()).unwrap();
        assert_eq!(used, layer::stored_bytes(&dir).unwrap());
        assert!(used >= raw.len() as u64);
        seal(&dir).unwrap();
        layers.push((dir, blob.digest));
    }
    let (_d, direct, _) = bed();
    for raw in [&lower, &upper] {
        apply_raw(raw, Compression::None, &direct, &mut Budget::default()).unwrap();
    }
    let mut roots = Vec::new();
    for name in ["one", "two"] {
        let root = store.path().join(name);
        let digests = layer::compose(&layers, &root, &keep_all).unwrap();
        assert_eq!(listing(&root), listing(&direct), "{name}");
        seal(&root).unwrap();
        let known = crate::install::manifest::hash_tree(&root, &digests).unwrap();
        let rehashed = crate::install::manifest::hash_tree(&root, &InodeDigests::new()).unwrap();
        assert_eq!(known, rehashed);
        for rel in known.keys() {
            let m = fs::metadata(root.join(rel)).unwrap();
            assert!(digests.contains_key(&(m.dev(), m.ino())), "{rel:?}");
        }
        roots.push(root);
    }
    for rel in ["d/a", "d/b", "d/hard", "d/via", "with space %20", "old/new"] {
        let one = fs::metadata(roots[0].join(rel)).unwrap();
        let two = fs::metadata(roots[1].join(rel)).unwrap();
        assert_eq!(one.ino(), two.ino(), "{rel}");
        assert_eq!(
            fs::read(roots[0].join(rel)).unwrap(),
            fs::read(direct.join(rel)).unwrap(),
            "{rel}"
        );
    }
    assert_eq!(
        fs::metadata(roots[0].join("d/hard")).unwrap().ino(),
        fs::metadata(roots[0].join("d/b")).unwrap().ino()
    );
    // Stored once: two roots, each file's bytes on disk once.
    let stored_b = fs::metadata(roots[0].join("d/b")).unwrap();
    assert_eq!(stored_b.nlink(), 5, "layer + 2 per root (d/b, d/hard)");
}

/// A stored layer whose `ops` was tampered with is refused, never followed.
#[test]
fn a_corrupt_stored_layer_is_an_integrity_error() {
    let raw = tar_bytes(&[e("f", F, "", b"f")]);
    let blob = blob_of(&raw, Compression::None);
    let store = tempfile::tempdir().unwrap();
    let dir = store.path().join("layer");
    layer::store_layer(&raw[..], &blob, &dir, &mut Budget::default()).unwrap();
    let ops = dir.join(layer::OPS);
    for bad in [
        "pgoci-layer 1 1024\nF 644 1 0 nothex f\n",
        "pgoci-layer 1 1024\nF 644 1 ../../x 0000000000000000000000000000000000000000000000000000000000000000 f\n",
        "pgoci-layer 1 1024\nF 644 1 .. 0000000000000000000000000000000000000000000000000000000000000000 f\n",
        "pgoci-layer 1 1024\nX f\n",
        "not a layer\n",
    ] {
        fs::write(&ops, bad).unwrap();
        let root = store.path().join("root");
        let msg = integrity(
            layer::compose(&[(dir.clone(), blob.digest.clone())], &root, &keep_all).map(drop),
            bad,
        );
        assert!(msg.contains("is corrupt"), "{bad}: {msg}");
    }
    // `..` in a stored name is cleaned the same way as in an archive.
    fs::write(&ops, "pgoci-layer 1 1024\nD 755 ../../up\n").unwrap();
    let msg = integrity(
        layer::compose(&[(dir, blob.digest)], &store.path().join("r2"), &keep_all).map(drop),
        "dotdot",
    );
    assert!(msg.contains("leaves the layer root"), "{msg}");
}

/// Hostile entries are told apart by variant, not by words: the layer's
/// digest put in front of the message leaves the variant reachable, and
/// what the kernel said stays at the end of the chain.
#[test]
fn hostile_entries_are_typed() {
    both_ways(hostile_entries_are_typed_with)
}

fn hostile_entries_are_typed_with() {
    let (_d, root, _) = bed();
    let err = apply(&[e("a/../../evil", F, "", b"x")], &root).unwrap_err();
    assert_eq!(err.kind, Kind::Integrity);
    assert!(
        matches!(err.typed::<UnpackError>(), Some(UnpackError::LeavesRoot { name }) if name == Path::new("a/../../evil")),
        "{err:?}"
    );
    let err = apply(&[e("h", H, "absent", b"")], &root).unwrap_err();
    assert_eq!(err.kind, Kind::Integrity);
    match err.typed::<UnpackError>() {
        Some(UnpackError::LinkNotRegular {
            rel,
            target,
            source: Some(source),
        }) => {
            assert_eq!(
                (rel.as_path(), target.as_path()),
                (Path::new("h"), Path::new("absent"))
            );
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
        }
        other => panic!("{other:?}: {err}"),
    }
    assert!(err.message.starts_with("layer sha256:"), "{}", err.message);
    assert!(err
        .causes()
        .last()
        .is_some_and(|c| c.to_string().contains("No such file")));
    let err = apply(&[e("a/.wh..", F, "", b"")], &root).unwrap_err();
    assert!(matches!(
        err.typed::<UnpackError>(),
        Some(UnpackError::BadWhiteout { .. })
    ));
    // A stored layer whose records were tampered with.
    if VIA_STORED_LAYER.with(std::cell::Cell::get) {
        return;
    }
    let layers = tempfile::tempdir().unwrap();
    let stored = layers.path().join("layer");
    let raw = tar_bytes(&[e("f", F, "", b"f")]);
    let blob = blob_of(&raw, Compression::None);
    layer::store_layer(&raw[..], &blob, &stored, &mut Budget::default()).unwrap();
    fs::write(stored.join(layer::OPS), "pgoci-layer 1 10\nX what\n").unwrap();
    let err = layer::compose(&[(stored.clone(), blob.digest)], &root, &keep_all).unwrap_err();
    assert_eq!(err.kind, Kind::Integrity);
    match err.typed::<UnpackError>() {
        Some(UnpackError::Corrupt { layer, line }) => {
            assert_eq!((layer, line.as_slice()), (&stored, &b"X what"[..]));
        }
        other => panic!("{other:?}: {err}"),
    }
    assert!(err.hint.is_some());
}

#[test]
fn a_refused_entry_kind_and_a_cap_are_typed() {
    let (_d, root, _) = bed();
    let odd = tar::EntryType::new(b'Q');
    let raw = tar_bytes(&[e("odd", odd, "", b"")]);
    let err = apply_raw(&raw, Compression::None, &root, &mut Budget::default()).unwrap_err();
    assert_eq!(err.kind, Kind::Integrity);
    assert!(
        matches!(
            err.typed::<UnpackError>(),
            Some(UnpackError::RefusedKind { rel, kind }) if rel == Path::new("odd") && *kind == odd
        ),
        "{err:?}"
    );
    // A sparse header the tar reader already refuses: the archive's fault.
    let raw = tar_bytes(&[e("sparse", tar::EntryType::GNUSparse, "", b"")]);
    let err = apply_raw(&raw, Compression::None, &root, &mut Budget::default()).unwrap_err();
    assert!(
        matches!(
            err.typed::<UnpackError>(),
            Some(UnpackError::Archive { .. })
        ),
        "{err:?}"
    );
    let raw = tar_bytes(&[e("f", F, "", &[7u8; 4096])]);
    let mut small = Budget::new(Limits {
        max_unpacked_bytes: 1024,
    });
    let err = apply_raw(&raw, Compression::Gzip, &root, &mut small).unwrap_err();
    assert_eq!(err.kind, Kind::Integrity);
    assert!(
        matches!(
            err.typed::<UnpackError>(),
            Some(UnpackError::TooBig { cap: 1024, .. })
        ),
        "{err:?}"
    );
    assert!(err.hint.is_some());
}
