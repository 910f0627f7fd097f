//! Images as registries serve them: Docker v2 and OCI media types, gzip,
//! zstd and uncompressed layers, multi-platform indexes with attestation
//! entries, references by digest, and an explicit `--platform`.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Pushes the variants of hstore-17 once; returns the amd64/arm64 digests of `-multi`.
fn variants() -> &'static serde_json::Value {
    static DONE: OnceLock<serde_json::Value> = OnceLock::new();
    DONE.get_or_init(|| {
        let bed = bed();
        let out = std::process::Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bed/variants.py"))
            .args([&bed.registry, "pgoci/hstore", "1.8-17"])
            .output()
            .unwrap();
        assert_success(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    })
}

/// The bed profile with hstore's image tag suffixed (`1.8-17-<suffix>`).
fn profile_with_hstore(dir: &Path, suffix: &str) -> PathBuf {
    let text = std::fs::read_to_string(&bed().profile).unwrap();
    let path = dir.join(format!("hstore-{suffix}.yaml"));
    std::fs::write(
        &path,
        text.replace(
            "hstore:{version}-{major}\"",
            &format!("hstore:{{version}}-{{major}}-{suffix}\""),
        ),
    )
    .unwrap();
    path
}

#[test]
fn docker_zstd_uncompressed_and_indexed_extensions_all_install() {
    variants();
    let bed = bed();
    let dir = scratch();
    let root = dir.path().join("root");
    let cache = dir.path().join("cache");
    let port = free_port();
    let _servers = Servers::of(&root, "v");
    let mut seen_types = Vec::new();
    for (n, suffix) in ["docker", "zstd", "plain", "multi"].into_iter().enumerate() {
        let profile = profile_with_hstore(dir.path(), suffix);
        let lock = dir.path().join(format!("{suffix}.lock"));
        pgoci(&profile, &bed.registry, &cache)
            .args(["resolve", "--major", "17", "--ext", "hstore", "-o"])
            .arg(&lock)
            .assert()
            .success();
        let parsed = pgoci::lock::Lock::read(&lock).unwrap();
        let ext = &parsed.extensions[0].pinned;
        seen_types.push(ext.layers[0].media_type.clone());
        if suffix == "multi" {
            assert!(ext.index.is_some(), "picked from the index");
            assert_eq!(
                ext.digest.to_string(),
                variants()["amd64"].as_str().unwrap()
            );
        }
        let verb: &[&str] = if n == 0 {
            &["install", "--yes", "--instance", "v", "--port"]
        } else {
            &["upgrade", "--yes", "--instance", "v", "--lock"]
        };
        let mut cmd = pgoci(&profile, &bed.registry, &cache);
        cmd.arg("--json").arg("--root").arg(&root).args(verb);
        if n == 0 {
            cmd.arg(port.to_string()).arg("--lock").arg(&lock);
        } else {
            cmd.arg(&lock);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{suffix}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let socket = root.join("run/pgoci/v");
        psql(&socket, port, "CREATE EXTENSION IF NOT EXISTS hstore").unwrap();
        assert_eq!(
            psql(&socket, port, "SELECT ('k=>' || 'v')::hstore -> 'k'").unwrap(),
            "v",
            "{suffix}"
        );
    }
    assert_eq!(
        seen_types,
        [
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ]
    );
}

#[test]
fn platform_is_picked_from_the_index_or_refused_with_what_is_offered() {
    let digests = variants();
    let bed = bed();
    let dir = scratch();
    // A profile whose "server" is the multi-platform index, offered for both platforms.
    let profile = dir.path().join("multi.yaml");
    std::fs::write(
        &profile,
        format!(
            "name: multi\nplatforms: [linux/amd64, linux/arm64, linux/s390x]\nserver:\n  majors: [17]\n  layout: tree\n  image: \"{}/pgoci/hstore:1.8-17-multi\"\n",
            bed.registry
        ),
    )
    .unwrap();
    let resolve = |platform: &str| {
        pgoci(&profile, &bed.registry, dir.path())
            .args([
                "--json",
                "--platform",
                platform,
                "resolve",
                "--major",
                "17",
                "-o",
                "-",
            ])
            .output()
            .unwrap()
    };
    let out = resolve("linux/arm64");
    assert_success(&out);
    assert_eq!(json(&out)["lock"]["server"]["digest"], digests["arm64"]);
    assert_eq!(json(&out)["lock"]["platform"], "linux/arm64");
    let out = resolve("linux/amd64");
    assert_eq!(json(&out)["lock"]["server"]["digest"], digests["amd64"]);
    let out = resolve("linux/s390x");
    assert_eq!(out.status.code(), Some(3));
    let msg = json(&out)["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("linux/arm64/v8, linux/amd64"),
        "lists what is offered, not attestations: {msg}"
    );
    assert!(!msg.contains("unknown"), "{msg}");

    // A reference by digest resolves to exactly that manifest.
    let by_digest = dir.path().join("digest.yaml");
    std::fs::write(
        &by_digest,
        format!(
            "name: d\nplatforms: [linux/amd64]\nserver:\n  majors: [17]\n  layout: tree\n  image: \"{}/pgoci/hstore@{}\"\n",
            bed.registry,
            digests["amd64"].as_str().unwrap()
        ),
    )
    .unwrap();
    let out = pgoci(&by_digest, &bed.registry, dir.path())
        .args(["--json", "resolve", "--major", "17", "-o", "-"])
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(json(&out)["lock"]["server"]["digest"], digests["amd64"]);
}
