//! Differential: any bytes as a layer (first byte picks the compression, as
//! in `unpack`) give the same image root whether unpacked directly
//! (`apply_layer`) or stored once and composed from the store
//! (`store_layer` + `compose`, what installs do): both refuse it, or both
//! accept it with the same names, types, modes, contents and link targets.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pgoci::digest::Digest;
use pgoci::lock::Blob;
use pgoci::unpack::layer::{compose, store_layer};
use pgoci::unpack::{apply_layer, keep_all, Budget, Limits};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq)]
enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Link(PathBuf),
}

fn tree(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let mode = meta.permissions().mode() & 0o7777;
            let node = if meta.file_type().is_symlink() {
                Node::Link(std::fs::read_link(&path).unwrap())
            } else if meta.is_dir() {
                walk(root, &path, out);
                Node::Dir(mode)
            } else {
                Node::File(mode, std::fs::read(&path).unwrap())
            };
            out.insert(rel, node);
        }
    }
    let mut out = BTreeMap::new();
    if root.is_dir() {
        walk(root, root, &mut out);
    }
    out
}

fn budget() -> Budget {
    Budget::new(Limits {
        max_unpacked_bytes: 64 << 20,
    })
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
    let blob = Blob {
        digest: Digest::of_bytes(layer),
        size: layer.len() as u64,
        media_type: media_type.into(),
    };
    let dir = tempfile::tempdir().unwrap();
    let direct = dir.path().join("direct");
    let stored = dir.path().join("stored");
    let composed = dir.path().join("composed");
    let a = apply_layer(layer, &blob, &direct, &keep_all, &mut budget());
    let b = store_layer(layer, &blob, &stored, &mut budget()).and_then(|_| {
        compose(&[(stored.clone(), blob.digest.clone())], &composed, &keep_all)
    });
    for e in [a.as_ref().err(), b.as_ref().err()].into_iter().flatten() {
        assert_ne!(e.kind, pgoci::Kind::Internal, "{}", e.message);
    }
    match (&a, &b) {
        (Ok(()), Ok(_)) => assert_eq!(tree(&direct), tree(&composed)),
        (Err(_), Err(_)) => {}
        _ => panic!(
            "direct {:?} but stored {:?}",
            a.as_ref().map_err(|e| &e.message),
            b.as_ref().map(drop).map_err(|e| &e.message)
        ),
    }
});
