//! The store by layer, through the real install path: the bed's PostgreSQL
//! 17 image and a second image built here on the same base layer (its
//! layer plus one more, a real manifest in the bundle's layout) installed
//! side by side. The shared layer is stored once, both artifact entries
//! share its files' inodes, and gc removes a layer only once the last
//! entry composed from it goes.

use crate::support::*;
use pgoci::digest::Digest;
use pgoci::lock::{Blob, Lock};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// An uncompressed layer from (name, kind, data).
fn layer(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_path(name).unwrap();
        h.set_cksum();
        builder.append(&h, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn put_blob(bundle: &Path, bytes: &[u8]) -> Digest {
    let digest = Digest::of_bytes(bytes);
    std::fs::write(bundle.join("blobs/sha256").join(digest.hex()), bytes).unwrap();
    digest
}

/// A bundle of the bed's PostgreSQL 17 server in `dir/bundle`, its lock,
/// and a second lock in `dir/derived.lock` naming a new image in the same
/// layout: 17's layers plus one that adds a file and whites one out.
fn bundle_and_derived(dir: &Path) -> (PathBuf, PathBuf, Lock, Lock) {
    let bed = bed();
    let bundle = dir.join("bundle");
    pgoci(&bed.profile, &bed.registry, &dir.join("cache"))
        .args(["bundle", "export", "--major", "17", "-o"])
        .arg(&bundle)
        .assert()
        .success();
    let base = pgoci::bundle::Bundle::open(&bundle).unwrap().lock;
    let base_file = dir.join("base.lock");
    std::fs::write(&base_file, base.to_yaml().unwrap()).unwrap();

    let extra = layer(&[
        (
            "share/postgresql/pgoci-derived.txt",
            tar::EntryType::Regular,
            b"derived",
        ),
        (
            "share/postgresql/timezonesets/.wh.Africa.txt",
            tar::EntryType::Regular,
            b"",
        ),
    ]);
    let extra = Blob {
        digest: put_blob(&bundle, &extra),
        size: extra.len() as u64,
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
    };
    let mut derived = base.clone();
    let pinned = &mut derived.server.pinned;
    pinned.layers.push(extra);
    let layers: Vec<serde_json::Value> = pinned
        .layers
        .iter()
        .map(|b| serde_json::json!({"mediaType": b.media_type, "digest": b.digest.to_string(), "size": b.size}))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": pinned.config.media_type,
            "digest": pinned.config.digest.to_string(),
            "size": pinned.config.size,
        },
        "layers": layers,
    }))
    .unwrap();
    pinned.digest = put_blob(&bundle, &manifest);
    pinned.size = manifest.len() as u64;
    pinned.media_type = "application/vnd.oci.image.manifest.v1+json".into();
    pinned.index = None;
    pinned.signature = None;
    let derived_file = dir.join("derived.lock");
    std::fs::write(&derived_file, derived.to_yaml().unwrap()).unwrap();
    (bundle, base_file, base, derived)
}

fn install(
    dir: &Path,
    root: &Path,
    bundle: &Path,
    lock: &Path,
    instance: &str,
) -> assert_cmd::Command {
    let bed = bed();
    let mut cmd = pgoci(&bed.profile, &bed.registry, &dir.join("cache"));
    cmd.args([
        "--json",
        "install",
        "--yes",
        "--no-start",
        "--service",
        "none",
    ])
    .args(["--instance", instance, "--port", &free_port().to_string()])
    .arg("--bundle")
    .arg(bundle)
    .arg("--lock")
    .arg(lock)
    .arg("--root")
    .arg(root);
    cmd
}

fn run(dir: &Path, root: &Path, args: &[&str]) -> serde_json::Value {
    let bed = bed();
    let out = pgoci(&bed.profile, &bed.registry, &dir.join("cache"))
        .arg("--json")
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", json(&out));
    json(&out)
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Bytes on disk under `path` as `du -sb` counts them (each hard-linked
/// inode once).
fn du(path: &Path) -> u64 {
    let out = std::process::Command::new("du")
        .arg("-sb")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn images_sharing_a_layer_store_it_once_and_gc_keeps_it_while_used() {
    let dir = scratch();
    let d = dir.path();
    let (bundle, base_file, base, derived) = bundle_and_derived(d);
    let derived_file = d.join("derived.lock");
    let root = d.join("root");
    let store = root.join("opt/pgoci/store");
    let shared = &base.server.pinned.layers[0].digest;
    let extra = &derived.server.pinned.layers[1].digest;

    // A killed first install (after its layers were stored, before the
    // artifact entry was composed) is completed by the re-run, which
    // reuses the stored layer.
    let out = install(d, &root, &bundle, &base_file, "a")
        .env("PGOCI_CRASH_AT", "after-layers")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None, "killed by a signal");
    assert_eq!(names(&store.join("layers")), [shared.hex()]);
    let stored = std::fs::metadata(store.join("layers").join(shared.hex()))
        .unwrap()
        .ino();
    install(d, &root, &bundle, &base_file, "a")
        .assert()
        .success();
    install(d, &root, &bundle, &derived_file, "b")
        .assert()
        .success();

    // One stored copy of the shared layer; both entries link its files.
    assert_eq!(
        std::fs::metadata(store.join("layers").join(shared.hex()))
            .unwrap()
            .ino(),
        stored,
        "the stored layer was reused, not unpacked again"
    );
    let mut want = vec![shared.hex().to_string(), extra.hex().to_string()];
    want.sort();
    assert_eq!(names(&store.join("layers")), want);
    assert!(!names(&store).iter().any(|n| n.starts_with(".tmp-")));
    let a = store.join(base.server.pinned.digest.hex());
    let b = store.join(derived.server.pinned.digest.hex());
    for rel in [
        "bin/postgres",
        "lib/libicudata.so.60.2",
        "share/postgresql/postgres.bki",
    ] {
        let (ma, mb) = (
            std::fs::metadata(a.join(rel)).unwrap(),
            std::fs::metadata(b.join(rel)).unwrap(),
        );
        assert_eq!(ma.ino(), mb.ino(), "{rel}: one inode for both images");
        assert!(ma.nlink() >= 3, "{rel}: layer + two images");
    }
    // Each entry is its image: the upper layer's file and whiteout only in b.
    let tz = "share/postgresql/timezonesets";
    assert!(a.join(tz).join("Africa.txt").is_file());
    assert!(!b.join(tz).join("Africa.txt").exists());
    assert!(b.join(tz).join("America.txt").is_file());
    assert_eq!(
        std::fs::read(b.join("share/postgresql/pgoci-derived.txt")).unwrap(),
        b"derived"
    );
    assert!(!a.join("share/postgresql/pgoci-derived.txt").exists());
    // Bytes: the whole store is about one image, not two.
    let (one, two, all) = (du(&a), du(&b), du(&store));
    assert!(one > 10_000_000, "{one}");
    assert!(
        all < (one + two) * 6 / 10,
        "store {all} bytes, entries {one} + {two} apart"
    );
    // Both generations verify against the digests recorded at unpack.
    let doc = run(d, &root, &["status", "--verify"]);
    assert_eq!(doc["instances"].as_array().unwrap().len(), 2, "{doc}");

    // gc after b goes: its entry and its own layer only; almost nothing
    // freed, since the shared bytes stay in use.
    run(d, &root, &["uninstall", "--yes", "--instance", "b"]);
    let doc = run(d, &root, &["gc", "--yes"]);
    assert!(!b.exists() && a.is_dir(), "{doc}");
    assert_eq!(names(&store.join("layers")), [shared.hex()], "{doc}");
    assert!(doc["bytes_freed"].as_u64().unwrap() < 1_000_000, "{doc}");
    let doc = run(d, &root, &["status", "--verify"]);
    assert_eq!(doc["instances"].as_array().unwrap().len(), 1, "{doc}");

    // gc after the last user goes: the shared layer with it.
    run(d, &root, &["uninstall", "--yes", "--instance", "a"]);
    let doc = run(d, &root, &["gc", "--yes"]);
    assert!(doc["bytes_freed"].as_u64().unwrap() > 10_000_000, "{doc}");
    let left: Vec<String> = names(&store)
        .into_iter()
        .filter(|n| n != "layers")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(names(&store.join("layers")).is_empty());
}
