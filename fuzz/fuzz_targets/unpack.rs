//! Any bytes as a layer: the first byte picks the compression (0 none,
//! 1 gzip, 2 zstd), the rest is the blob, its digest computed here so the
//! unpacker itself is what gets exercised. Whatever happens, nothing outside
//! the target changes, no error is an internal one, and nothing unpacked
//! keeps setuid, setgid, sticky or world-writable bits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pgoci::digest::Digest;
use pgoci::lock::Blob;
use pgoci::unpack::{apply_layer, keep_all, Budget, Limits};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn check_modes(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        assert_eq!(mode & 0o7002, 0, "{} has mode {mode:o}", path.display());
        if meta.is_dir() {
            check_modes(&path);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, layer)) = data.split_first() else {
        return;
    };
    let media_type = match kind % 3 {
        0 => "application/vnd.oci.image.layer.v1.tar",
        1 => "application/vnd.oci.image.layer.v1.tar+gzip",
        _ => "application/vnd.oci.image.layer.v1.tar+zstd",
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), "s").unwrap();
    let blob = Blob {
        digest: Digest::of_bytes(layer),
        size: layer.len() as u64,
        media_type: media_type.into(),
    };
    let mut budget = Budget::new(Limits {
        max_unpacked_bytes: 64 << 20,
    });
    if let Err(e) = apply_layer(layer, &blob, &root, &keep_all, &mut budget) {
        assert_ne!(e.kind, pgoci::Kind::Internal, "{}", e.message);
    }
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["outside", "root"]);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"s");
    check_modes(&root);
});
