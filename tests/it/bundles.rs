//! Bundles: export as directory and tar, verify, inspect, corruption,
//! determinism, and readability by skopeo (bytes pgoci wrote, read by
//! another tool).

use crate::support::*;
use std::path::Path;

/// Exports the PG 15 + pg_cron bundle to `out`.
fn export(dir: &Path, out: &Path) {
    let bed = bed();
    pgoci(&bed.profile, &bed.registry, &dir.join("cache"))
        .args([
            "bundle", "export", "--major", "15", "--ext", "pg_cron", "-o",
        ])
        .arg(out)
        .assert()
        .success();
}

/// The biggest layer blob of a bundle directory.
fn biggest_blob(bundle: &Path) -> std::path::PathBuf {
    std::fs::read_dir(bundle.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
}

#[test]
fn tar_bundle_is_byte_identical_when_exported_twice() {
    let dir = scratch();
    let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
    export(dir.path(), &a);
    export(dir.path(), &b);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn verify_and_inspect_read_both_forms() {
    let dir = scratch();
    let bed = bed();
    for name in ["dir-bundle", "bundle.tar"] {
        let path = dir.path().join(name);
        export(dir.path(), &path);
        let out = pgoci(&bed.profile, &bed.registry, dir.path())
            .args(["--json", "bundle", "verify"])
            .arg(&path)
            .output()
            .unwrap();
        assert_success(&out);
        assert!(json(&out)["blobs"].as_u64().unwrap() >= 6);
        let out = pgoci(&bed.profile, &bed.registry, dir.path())
            .args(["--json", "bundle", "inspect"])
            .arg(&path)
            .output()
            .unwrap();
        let doc = json(&out);
        assert_eq!(doc["server"]["major"], 15);
        assert_eq!(doc["extensions"][0]["name"], "pg_cron");
    }
}

#[test]
fn a_flipped_byte_is_refused_by_verify_and_install_and_nothing_is_written() {
    let dir = scratch();
    let bed = bed();
    let bundle = dir.path().join("bundle");
    export(dir.path(), &bundle);
    let victim = biggest_blob(&bundle);
    let mut bytes = std::fs::read(&victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&victim, bytes).unwrap();
    let hex = victim.file_name().unwrap().to_str().unwrap();

    let out = pgoci(&bed.profile, &bed.registry, dir.path())
        .args(["bundle", "verify"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(hex), "the error names the blob: {err}");

    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let out = pgoci(&bed.profile, &bed.registry, dir.path())
        .args(["install", "--yes", "--bundle"])
        .arg(&bundle)
        .arg("--root")
        .arg(&root)
        .args(["--port", &free_port().to_string()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tree(&root).is_empty(), "install wrote {:?}", tree(&root));
}

#[test]
fn skopeo_reads_every_artifact_of_a_bundle() {
    let dir = scratch();
    let bundle = dir.path().join("bundle");
    let tar = dir.path().join("bundle.tar");
    export(dir.path(), &bundle);
    export(dir.path(), &tar);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("index.json")).unwrap()).unwrap();
    for m in index["manifests"].as_array().unwrap() {
        // A manifest reached only through an index has no name of its own.
        let Some(name) = m["annotations"]["org.opencontainers.image.ref.name"].as_str() else {
            continue;
        };
        for transport in [
            format!("oci:{}:{name}", bundle.display()),
            format!("oci-archive:{}:{name}", tar.display()),
        ] {
            let out = std::process::Command::new("skopeo")
                .args(["inspect", "--raw", &transport])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "skopeo {transport}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let raw = out.stdout;
            assert_eq!(
                pgoci::digest::Digest::of_bytes(&raw).to_string(),
                m["digest"].as_str().unwrap(),
                "skopeo sees the same manifest"
            );
        }
    }
}

#[test]
fn skopeo_copies_a_bundle_into_a_registry_and_pgoci_installs_from_a_layout_skopeo_wrote() {
    let dir = scratch();
    let bed = bed();
    let d = dir.path();
    let bundle = d.join("bundle.tar");
    export(d, &bundle);
    let lock = d.join("pg15.lock");
    pgoci(&bed.profile, &bed.registry, &d.join("cache"))
        .args(["resolve", "--major", "15", "--ext", "pg_cron", "-o"])
        .arg(&lock)
        .assert()
        .success();
    let parsed = pgoci::lock::Lock::read(&lock).unwrap();

    // skopeo: out of the pgoci bundle, back into a registry, digests kept.
    let reg = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bed-skopeo-target");
    let target = bed_sh(&["registry-only", reg.to_str().unwrap()])
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("REGISTRY=").map(str::to_string))
        .unwrap();
    for pinned in parsed.artifacts() {
        let repo = pinned.reference.split_once('/').unwrap().1;
        let status = std::process::Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
            ])
            .arg(format!(
                "oci-archive:{}:{}",
                bundle.display(),
                pinned.reference
            ))
            .arg(format!("docker://{target}/{repo}"))
            .status()
            .unwrap();
        assert!(status.success());
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{target}/{repo}"))
            .output()
            .unwrap();
        assert_eq!(
            pgoci::digest::Digest::of_bytes(&out.stdout),
            pinned.digest,
            "{repo}"
        );
    }
    bed_sh(&["down", reg.to_str().unwrap()]);

    // skopeo writes a layout straight from the registry; pgoci installs from it with the lock.
    let layout = d.join("skopeo-layout");
    for (i, pinned) in parsed.artifacts().enumerate() {
        let status = std::process::Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--src-tls-verify=false",
            ])
            .arg(format!("docker://{}", pinned.reference))
            .arg(format!("oci:{}:a{i}", layout.display()))
            .status()
            .unwrap();
        assert!(status.success());
    }
    assert!(
        !layout.join("pgoci.lock").exists(),
        "a layout pgoci did not write"
    );
    let root = d.join("root");
    let port = free_port();
    let out = pgoci(&bed.profile, &bed.registry, &d.join("cache2"))
        .args([
            "--json",
            "install",
            "--yes",
            "--instance",
            "sk",
            "--port",
            &port.to_string(),
            "--root",
        ])
        .arg(&root)
        .arg("--bundle")
        .arg(&layout)
        .arg("--lock")
        .arg(&lock)
        .output()
        .unwrap();
    assert_success(&out);
    let _servers = Servers::of(&root, "sk");
    psql(&root.join("run/pgoci/sk"), port, "CREATE EXTENSION pg_cron").unwrap();
}

#[test]
fn one_bundle_holds_a_whole_site_each_blob_once() {
    let dir = scratch();
    let bed = bed();
    let cache = dir.path().join("cache");
    let run = |args: &[&str]| {
        pgoci(&bed.profile, &bed.registry, &cache)
            .args(args)
            .output()
            .unwrap()
    };
    let mut locks = Vec::new();
    for (major, ext) in [("17", "hstore"), ("18", "pg_trgm")] {
        let lock = dir.path().join(format!("{major}.lock"));
        let out = run(&[
            "resolve",
            "--major",
            major,
            "--ext",
            ext,
            "-o",
            lock.to_str().unwrap(),
        ]);
        assert_success(&out);
        locks.push(lock);
    }
    let (l17, l18) = (locks[0].to_str().unwrap(), locks[1].to_str().unwrap());
    let site = dir.path().join("site.tar");
    let out = run(&[
        "--json",
        "bundle",
        "export",
        "--lock",
        l17,
        "--lock",
        l18,
        "-o",
        site.to_str().unwrap(),
    ]);
    assert_success(&out);
    assert_eq!(json(&out)["locks"].as_array().unwrap().len(), 2);
    // Each blob once: the site bundle is no bigger than the two bundles apart.
    let mut apart = 0;
    for (i, lock) in [l17, l18].iter().enumerate() {
        let one = dir.path().join(format!("one{i}.tar"));
        assert_success(&run(&[
            "bundle",
            "export",
            "--lock",
            lock,
            "-o",
            one.to_str().unwrap(),
        ]));
        apart += std::fs::metadata(&one).unwrap().len();
    }
    assert!(std::fs::metadata(&site).unwrap().len() <= apart);

    let out = run(&["--json", "bundle", "inspect", site.to_str().unwrap()]);
    assert_success(&out);
    let majors: Vec<_> = json(&out)["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["server"]["major"].as_u64().unwrap())
        .collect();
    assert_eq!(majors, [17, 18]);
    assert_success(&run(&["bundle", "verify", site.to_str().unwrap()]));

    // Installing needs a choice; --major picks one, offline.
    let root = dir.path().join("root");
    let install = |extra: &[&str]| {
        pgoci(&bed.profile, "127.0.0.1:9", &dir.path().join("empty-cache"))
            .arg("--json")
            .arg("--root")
            .arg(&root)
            .args([
                "install",
                "--yes",
                "--no-start",
                "--bundle",
                site.to_str().unwrap(),
            ])
            .args(["--port", &free_port().to_string()])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = install(&[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("several locks"));
    for (major, ext) in [(17, "hstore"), (18, "pg_trgm")] {
        let out = install(&[
            "--major",
            &major.to_string(),
            "--instance",
            &format!("pg{major}"),
        ]);
        assert_success(&out);
        let doc = json(&out);
        assert_eq!(doc["server"]["major"], major);
        assert_eq!(doc["extensions"][0]["name"], ext);
    }
    // skopeo reads an artifact of the second lock out of it.
    let lock18 = std::fs::read_to_string(l18).unwrap();
    let reference = lock18
        .lines()
        .find_map(|l| l.trim().strip_prefix("reference: "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci-archive:{}:{reference}", site.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn without_the_registry_only_an_images_only_export_works() {
    let dir = scratch();
    let d = dir.path();
    let bed = bed();
    export(d, &d.join("warm"));
    // A cache holding every blob but no record of what travels beside
    // them (blobs copied from the warm one, as another tool could); the
    // registry answers only over plain HTTP, which this run is not
    // allowed to use.
    let blobs_only = d.join("blobs-only");
    std::fs::create_dir_all(blobs_only.join("blobs/sha256")).unwrap();
    for e in std::fs::read_dir(d.join("cache/blobs/sha256")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(
            e.path(),
            blobs_only.join("blobs/sha256").join(e.file_name()),
        )
        .unwrap();
    }
    let offline = |cache: &std::path::Path| {
        let mut cmd = assert_cmd::Command::cargo_bin("pgoci").unwrap();
        cmd.env_remove("PGOCI_PROFILE")
            .env("PGOCI_CACHE_DIR", cache)
            .arg("--profile")
            .arg(&bed.profile)
            .args(["bundle", "export"]);
        cmd
    };
    let lock = d.join("15.lock");
    pgoci(&bed.profile, &bed.registry, &d.join("cache"))
        .args(["resolve", "--major", "15", "--ext", "pg_cron", "-o"])
        .arg(&lock)
        .assert()
        .success();
    let out = offline(&blobs_only)
        .args(["--lock"])
        .arg(&lock)
        .arg("-o")
        .arg(d.join("no"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--images-only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!d.join("no").exists());
    offline(&blobs_only)
        .args(["--images-only", "--lock"])
        .arg(&lock)
        .arg("-o")
        .arg(d.join("yes"))
        .assert()
        .success();
    assert_eq!(
        std::fs::read(d.join("yes/index.json")).unwrap(),
        std::fs::read(d.join("warm/index.json")).unwrap(),
        "the bed's pg15 images have nothing beside them"
    );
    // The cache the first export filled records what it found beside the
    // images (nothing, here): exporting from it needs no registry.
    offline(&d.join("cache"))
        .args(["--lock"])
        .arg(&lock)
        .arg("-o")
        .arg(d.join("again"))
        .assert()
        .success();
    assert_eq!(
        std::fs::read(d.join("again/index.json")).unwrap(),
        std::fs::read(d.join("warm/index.json")).unwrap()
    );
}

#[test]
fn what_travels_beside_the_images_is_verified_like_the_rest() {
    let dir = scratch();
    let d = dir.path();
    let bed = bed();
    let bundle = d.join("17");
    pgoci(&bed.profile, &bed.registry, &d.join("cache"))
        .args(["bundle", "export", "--major", "17", "--ext", "hstore", "-o"])
        .arg(&bundle)
        .assert()
        .success();
    let index_path = bundle.join("index.json");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let role = |r: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["io.pgoci.role"] == r)
            .unwrap_or_else(|| panic!("no {r} in {index}"))
            .clone()
    };
    // The tag names the index; the attestation manifest it lists travels.
    let tagged = role("index");
    assert!(tagged["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .unwrap()
        .ends_with("/pgoci/postgresql:17"));
    let listed = role("manifest");
    let verify = || {
        pgoci(&bed.profile, &bed.registry, d)
            .args(["bundle", "verify"])
            .arg(&bundle)
            .output()
            .unwrap()
    };
    assert_success(&verify());

    // The attestation manifest's layer goes missing: exit 5 naming it.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            bundle.join("blobs/sha256").join(
                listed["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:"),
            ),
        )
        .unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let layer_path = bundle
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let kept = std::fs::read(&layer_path).unwrap();
    std::fs::remove_file(&layer_path).unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&layer), "{err}");
    std::fs::write(&layer_path, kept).unwrap();
    assert_success(&verify());

    // A carrier renames the index into another repository: refused.
    let text = std::fs::read_to_string(&index_path).unwrap();
    let name = tagged["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .unwrap();
    std::fs::write(
        &index_path,
        text.replace(&format!("\"{name}\""), "\"elsewhere/x:17\""),
    )
    .unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(5));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("elsewhere/x:17"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
