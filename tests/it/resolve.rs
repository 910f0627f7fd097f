//! Resolution against the loopback registry: tags to digests, indexes to
//! platform manifests, canonical locks, and the cache.

use crate::support::*;

#[test]
fn lock_is_canonical_and_picks_the_platform_manifest() {
    let bed = bed();
    let dir = scratch();
    let cache = dir.path().join("cache");
    let run = |out: &str| {
        pgoci(&bed.profile, &bed.registry, &cache)
            .args(["resolve", "--major", "17", "--ext", "hstore", "-o", out])
            .assert()
            .success();
        std::fs::read_to_string(out).unwrap()
    };
    let a = run(dir.path().join("a.lock").to_str().unwrap());
    let b = run(dir.path().join("b.lock").to_str().unwrap());
    assert_eq!(
        a, b,
        "same request, same registry state: byte-identical locks"
    );
    // `postgresql:17` is an image index with an attestation entry: the lock
    // pins the linux/amd64 manifest and records the index it came from.
    assert!(a.contains("index: sha256:"), "{a}");
    assert!(a.contains("platform: linux/amd64"), "{a}");
    assert!(a.contains("name: hstore"), "{a}");
    // The same extensions in another order give the same lock.
    let c = dir.path().join("c.lock");
    pgoci(&bed.profile, &bed.registry, &cache)
        .args(["resolve", "--ext", "hstore", "--major", "17", "-o"])
        .arg(&c)
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(c).unwrap(), a);
}

#[test]
fn second_pull_is_served_from_the_cache() {
    let bed = bed();
    let dir = scratch();
    let cache = dir.path().join("cache");
    let lock = dir.path().join("pg15.lock");
    pgoci(&bed.profile, &bed.registry, &cache)
        .args(["resolve", "--major", "15", "--ext", "pg_cron", "-o"])
        .arg(&lock)
        .assert()
        .success();
    let pull = || {
        let out = pgoci(&bed.profile, &bed.registry, &cache)
            .args(["--json", "pull", "--lock"])
            .arg(&lock)
            .output()
            .unwrap();
        assert_success(&out);
        json(&out)
    };
    let first = pull();
    assert!(first["fetched"].as_u64().unwrap() >= 6, "{first}");
    assert_eq!(first["changed"], true);
    let second = pull();
    assert_eq!(second["fetched"], 0, "{second}");
    assert_eq!(second["cached"], first["fetched"]);
    assert_eq!(second["changed"], false);
    // Every cached blob is stored under its own digest.
    for entry in std::fs::read_dir(cache.join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let hex = path.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(pgoci::digest::Digest::of_bytes(&bytes).hex(), hex);
    }
}

#[test]
fn catalog_lists_extensions_per_major() {
    let bed = bed();
    let dir = scratch();
    let out = pgoci(&bed.profile, &bed.registry, dir.path())
        .args(["--json", "catalog", "--major", "15"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc = json(&out);
    let names: Vec<&str> = doc["majors"][0]["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pg_cron"]);
}
