//! Bundles written from a cache and read back, and what a damaged one is
//! refused for, variant by variant.

use super::*;
use crate::cache::Cache;
use crate::digest::Digest;
use crate::error::{Error, Kind};
use crate::lock::{Blob, Lock, Pinned};
use std::path::Path;

/// Puts `bytes` in the cache and returns their blob.
fn put(cache: &Cache, bytes: &[u8], media_type: &str) -> Blob {
    let digest = Digest::of_bytes(bytes);
    let temp = cache.temp_path(&digest);
    std::fs::write(&temp, bytes).unwrap();
    cache.commit_verified(&temp, &digest).unwrap();
    Blob {
        digest,
        size: bytes.len() as u64,
        media_type: media_type.into(),
    }
}

/// An artifact whose manifest, config and layer are in the cache.
fn artifact(cache: &Cache, pinned: &mut Pinned, name: &str) {
    let config = put(
        cache,
        format!(r#"{{"name":"{name}"}}"#).as_bytes(),
        "application/vnd.oci.image.config.v1+json",
    );
    let layer = put(
        cache,
        format!("the files of {name}").as_bytes(),
        "application/vnd.oci.image.layer.v1.tar+gzip",
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{}","size":{}}}]}}"#,
        config.media_type, config.digest, config.size, layer.media_type, layer.digest, layer.size
    );
    let manifest = put(
        cache,
        manifest.as_bytes(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    pinned.digest = manifest.digest;
    pinned.size = manifest.size;
    pinned.config = config;
    pinned.layers = vec![layer];
}

/// A lock whose every blob is in a cache under `dir`.
fn cached_lock(dir: &Path) -> (Lock, Cache) {
    let cache = Cache::open(&dir.join("cache")).unwrap();
    let mut lock = crate::lock::tests::sample();
    artifact(&cache, &mut lock.server.pinned, "server");
    artifact(&cache, &mut lock.extensions[0].pinned, "pg_cron");
    (lock, cache)
}

/// The bundle error behind an error, which must be one.
fn bundle_error(err: &Error) -> &BundleError {
    err.typed::<BundleError>()
        .unwrap_or_else(|| panic!("not a bundle error: {}", err.message))
}

#[test]
fn a_bundle_reads_back_and_is_the_same_bytes_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let (lock, cache) = cached_lock(dir.path());
    let first = dir.path().join("b");
    let report = export(std::slice::from_ref(&lock), &cache, &first).unwrap();
    assert_eq!(report.blobs, 6);
    let bundle = Bundle::open(&first).unwrap();
    assert_eq!(bundle.lock, lock);
    assert_eq!(bundle.verify(&crate::progress::Silent).unwrap(), 6);
    bundle.verify_manifests().unwrap();
    // OCI-correct documents: oci-layout, and an index with its media type
    // and one of every descriptor.
    assert_eq!(
        std::fs::read(first.join("oci-layout")).unwrap(),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], crate::registry::OCI_INDEX);
    let manifests = index["manifests"].as_array().unwrap();
    assert!(!manifests.is_empty());
    for m in manifests {
        assert_eq!(m["mediaType"], crate::registry::OCI_MANIFEST, "{m}");
        assert!(m["annotations"][REF_NAME].is_string(), "{m}");
    }
    // Another export of the same lock: the same index.json, byte for byte
    // (oci-spec's annotations are a HashMap), and the same tar.
    let again = dir.path().join("again");
    export(std::slice::from_ref(&lock), &cache, &again).unwrap();
    assert_eq!(
        std::fs::read(first.join("index.json")).unwrap(),
        std::fs::read(again.join("index.json")).unwrap()
    );
    let tars: Vec<Vec<u8>> = ["one.tar", "two.tar"]
        .iter()
        .map(|name| {
            let path = dir.path().join(name);
            export(std::slice::from_ref(&lock), &cache, &path).unwrap();
            std::fs::read(path).unwrap()
        })
        .collect();
    assert_eq!(tars[0], tars[1]);
    let tar = Bundle::open(&dir.path().join("one.tar")).unwrap();
    assert_eq!(tar.verify(&crate::progress::Silent).unwrap(), 6);
}

#[test]
fn a_damaged_bundle_is_refused_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (lock, cache) = cached_lock(dir.path());
    let fresh = |name: &str| {
        let path = dir.path().join(name);
        export(std::slice::from_ref(&lock), &cache, &path).unwrap();
        path
    };
    let layer = lock.server.pinned.layers[0].digest.clone();

    // A blob gone: said once, with what to do.
    let b = fresh("missing");
    std::fs::remove_file(b.join("blobs/sha256").join(layer.hex())).unwrap();
    let err = Bundle::open(&b)
        .unwrap()
        .verify(&crate::progress::Silent)
        .unwrap_err();
    assert!(matches!(
        bundle_error(&err),
        BundleError::BlobMissing { digest, .. } if *digest == layer
    ));
    assert_eq!(err.kind, Kind::Integrity);
    assert_eq!(
        err.message,
        format!("bundle {}: blob {layer}: missing", b.display())
    );
    assert_eq!(
        err.hint.as_deref(),
        Some("export the bundle again from a good cache")
    );

    // A blob of the right size and the wrong bytes.
    let b = fresh("swapped");
    let path = b.join("blobs/sha256").join(layer.hex());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = Bundle::open(&b)
        .unwrap()
        .verify(&crate::progress::Silent)
        .unwrap_err();
    assert!(matches!(
        bundle_error(&err),
        BundleError::BlobMismatch { digest, .. } if *digest == layer
    ));
    assert!(
        err.message.contains("does not match its digest"),
        "{}",
        err.message
    );

    // pgoci.lock edited: index.json recorded another lock.
    let b = fresh("edited");
    let text = std::fs::read_to_string(b.join(LOCK_FILE)).unwrap();
    std::fs::write(b.join(LOCK_FILE), text.replace("15.18", "15.19")).unwrap();
    let err = Bundle::open(&b).err().unwrap();
    assert!(matches!(
        bundle_error(&err),
        BundleError::LockMismatch { .. }
    ));
    assert_eq!(err.kind, Kind::Integrity);
    assert!(
        err.message
            .contains("is not a valid pgoci bundle: pgoci.lock has digest"),
        "{}",
        err.message
    );

    // A descriptor oci-spec reads (any algorithm) but pgoci does not.
    let b = fresh("sha512");
    let index = std::fs::read_to_string(b.join("index.json")).unwrap();
    let other = format!("sha512:{}", "a".repeat(128));
    let index = index.replacen(&lock.server.pinned.digest.to_string(), &other, 1);
    std::fs::write(b.join("index.json"), index).unwrap();
    let err = Bundle::open(&b).err().unwrap();
    assert!(matches!(
        bundle_error(&err),
        BundleError::IndexDigest { .. }
    ));
    assert_eq!(
        err.message,
        format!(
            "{} is not a valid pgoci bundle: index.json: unsupported digest `{other}`: only sha256 is supported",
            b.display()
        )
    );

    // Another layout version.
    let b = fresh("layout");
    std::fs::write(b.join("oci-layout"), br#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
    let err = Bundle::open(&b).err().unwrap();
    assert!(matches!(
        bundle_error(&err),
        BundleError::LayoutVersion { version: Some(v), .. } if v == "2.0.0"
    ));

    // Not there at all: a usage error.
    let err = Bundle::open(&dir.path().join("nothing")).err().unwrap();
    assert!(matches!(bundle_error(&err), BundleError::Open { .. }));
    assert_eq!(err.kind, Kind::Usage);
}

#[test]
fn an_export_replaces_nothing_but_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep me").unwrap();
    let err = check_target(&mine).unwrap_err();
    assert!(matches!(
        bundle_error(&err),
        BundleError::WontOverwrite { why: Occupied::OtherDirectory(why), .. } if why == "it holds notes.txt"
    ));
    assert_eq!(err.kind, Kind::Usage);
    assert_eq!(
        err.message,
        format!(
            "bundle export will not write to {}: it is a directory that is not a pgoci bundle (it holds notes.txt)",
            mine.display()
        )
    );
    assert_eq!(
        err.hint.as_deref(),
        Some("pass -o a new name (or a previous pgoci bundle to replace it)")
    );
    let err = check_target(&dir.path().join("..")).unwrap_err();
    assert!(matches!(
        bundle_error(&err),
        BundleError::WontOverwrite {
            why: Occupied::Directory,
            ..
        }
    ));
    assert_eq!(
        check_target(&dir.path().join("new")).unwrap(),
        Target::Absent
    );
}
