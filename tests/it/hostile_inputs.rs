//! Hostile documents: locks, profiles and bundles crafted to escape a
//! directory, inject lines into pgoci.conf or the unit, or exhaust memory.
//! Each is refused with its exit code (never 1 or 101), a message naming
//! the field, and nothing written under the install root.

use crate::support::*;
use pgoci::digest::Digest;
use std::path::Path;

fn digest(n: u8) -> String {
    format!("sha256:{}", hex_of(n))
}

fn hex_of(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// A well-formed lock (no registry behind it: every case below must fail
/// while parsing, before anything is fetched).
fn good_lock() -> String {
    let pinned = |n: u8| {
        format!(
            "reference: 127.0.0.1:1/x/{n}:1\n  digest: {}\n  size: 500\n  media_type: application/vnd.oci.image.manifest.v1+json\n  config:\n    digest: {}\n    size: 10\n    media_type: application/vnd.oci.image.config.v1+json\n  layers:\n  - digest: {}\n    size: 1000\n    media_type: application/vnd.oci.image.layer.v1.tar+gzip\n",
            digest(n),
            digest(n + 100),
            digest(n + 50)
        )
    };
    format!(
        "version: 1\nplatform: linux/amd64\nprofile:\n  name: t\n  digest: {}\nrequest:\n  major: 15\n  extensions:\n  - pg_cron\nserver:\n  {}  version: '15.18'\n  layout: rootfs\n  paths:\n    bin: /usr/lib/postgresql/15/bin\n    lib: /usr/lib/postgresql/15/lib\n    share: /usr/share/postgresql/15\nextensions:\n- name: pg_cron\n  version: 1.4.2\n  {}  preload: pg_cron\n  settings:\n    cron.database_name: postgres\n",
        digest(9),
        pinned(1),
        pinned(2)
    )
}

/// Runs `install --lock` on `text` under a fresh root; returns the output
/// and whether the root stayed empty.
fn install_lock(text: &str) -> (std::process::Output, bool) {
    let dir = scratch();
    let lock = dir.path().join("hostile.lock");
    std::fs::write(&lock, text).unwrap();
    let profile = dir.path().join("profile.yaml");
    std::fs::write(&profile, PROFILE).unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let out = pgoci(&profile, "127.0.0.1:1", &dir.path().join("cache"))
        .args(["install", "--yes", "--no-start", "--lock"])
        .arg(&lock)
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    let empty = tree(&root).is_empty();
    (out, empty)
}

#[test]
fn the_good_lock_parses() {
    pgoci::lock::Lock::parse(&good_lock(), "good").unwrap();
}

#[test]
fn hostile_locks_are_exit_5_naming_the_field_and_write_nothing() {
    let good = good_lock();
    let cases: &[(&str, &str, &str)] = &[
        ("- name: pg_cron", "- name: ../../x", "extension name"),
        ("- name: pg_cron", "- name: /etc/x", "extension name"),
        (
            "  settings:\n",
            "  env:\n    \"A\\\"\\nUser=root\\nExecStartPre=+/bin/sh\": x\n  settings:\n",
            "environment variable name",
        ),
        (
            "  settings:\n",
            "  env:\n    A: \"x\\\"\\nUser=root\"\n  settings:\n",
            "env.A",
        ),
        (
            "    cron.database_name: postgres",
            "    \"a = 1\\narchive_command\": x",
            "settings key",
        ),
        (
            "    cron.database_name: postgres",
            "    cron.database_name: \"x'\\narchive_command = 'sh'\"",
            "settings.cron.database_name",
        ),
        (
            "  preload: pg_cron\n",
            "  preload: pg_cron\n  ld_library_path: [\"../..\"]\n",
            "image path",
        ),
        (
            "    lib: /usr/lib/postgresql/15/lib",
            "    lib: /usr/lib/../../../../etc",
            "image path",
        ),
        (
            "  preload: pg_cron\n",
            "  preload: pg_cron\n  bin_path: [/bin/../..]\n",
            "image path",
        ),
        ("  - pg_cron\n", "  - ../x\n", "extension name"),
    ];
    for (from, to, names) in cases {
        assert!(good.contains(from), "{from:?}");
        let (out, empty) = install_lock(&good.replacen(from, to, 1));
        assert_eq!(out.status.code(), Some(5), "{to:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(names), "{to:?}: {}", stderr(&out));
        assert!(empty, "{to:?}: the root was written");
    }
}

#[test]
fn an_oversized_lock_is_refused_before_it_is_parsed() {
    let mut text = good_lock();
    text.push_str(&format!("# {}\n", "x".repeat(5 << 20)));
    let (out, empty) = install_lock(&text);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("limit"), "{}", stderr(&out));
    assert!(empty);
}

const PROFILE: &str = r#"name: hostile
platforms: [linux/amd64]
server:
  majors: [15]
  image: "127.0.0.1:1/pg:{major}"
  paths:
    bin: /usr/lib/postgresql/{major}/bin
    lib: /usr/lib/postgresql/{major}/lib
    share: /usr/share/postgresql/{major}
extensions:
  pg_cron:
    image: "127.0.0.1:1/pg_cron:{version}"
    versions: ["1.4.2"]
    majors: [15]
    preload: pg_cron
    settings: {cron.database_name: postgres}
"#;

/// Runs `resolve` with `text` as the profile (no registry: parsing must fail first).
fn resolve_with(text: &str) -> std::process::Output {
    let dir = scratch();
    let profile = dir.path().join("hostile.yaml");
    std::fs::write(&profile, text).unwrap();
    pgoci(&profile, "127.0.0.1:1", &dir.path().join("cache"))
        .args(["resolve", "--major", "15", "-o", "-"])
        .output()
        .unwrap()
}

#[test]
fn hostile_profiles_are_exit_3_naming_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("  pg_cron:\n", "  ../../x:\n", "extension name"),
        (
            "settings: {cron.database_name: postgres}",
            "env: {\"A\\\"\\nUser=root\": x}",
            "environment variable name",
        ),
        (
            "settings: {cron.database_name: postgres}",
            "settings: {\"a\\narchive_command\": x}",
            "settings key",
        ),
        (
            "settings: {cron.database_name: postgres}",
            "settings: {cron.database_name: \"a\\nb\"}",
            "settings.cron.database_name",
        ),
        (
            "settings: {cron.database_name: postgres}",
            "ld_library_path: [\"../..\"]",
            "image path",
        ),
        (
            "    lib: /usr/lib/postgresql/{major}/lib",
            "    lib: /usr/lib/../../etc",
            "image path",
        ),
    ];
    for (from, to, names) in cases {
        assert!(PROFILE.contains(from), "{from:?}");
        let out = resolve_with(&PROFILE.replacen(from, to, 1));
        assert_eq!(out.status.code(), Some(3), "{to:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(names), "{to:?}: {}", stderr(&out));
    }
    let mut big = PROFILE.to_string();
    big.push_str(&format!("# {}\n", "x".repeat(5 << 20)));
    let out = resolve_with(&big);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("limit"), "{}", stderr(&out));
}

#[test]
fn a_cloudnativepg_catalog_with_a_bad_name_is_exit_3() {
    let catalog = r#"apiVersion: postgresql.cnpg.io/v1
kind: ClusterImageCatalog
metadata:
  name: hostile
spec:
  images:
    - major: 18
      image: 127.0.0.1:1/postgresql:18
      extensions:
        - name: ../../etc
          image:
            reference: 127.0.0.1:1/x:1-18-trixie
"#;
    let out = resolve_with(catalog);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("extension name"), "{}", stderr(&out));
    let out = resolve_with(&catalog.replace(
        "name: ../../etc",
        "name: postgis\n          env:\n            - name: \"A\\\"\\nUser=root\"\n              value: x",
    ));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("environment variable name"),
        "{}",
        stderr(&out)
    );
}

/// Exports the PG 15 + pg_cron bundle directory to `out`.
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

/// `bundle verify` and `install --bundle` both refuse with exit 5 and a
/// message holding `names`; the root stays empty.
fn assert_bundle_refused(dir: &Path, bundle: &Path, names: &str, install_too: bool) {
    let bed = bed();
    let out = pgoci(&bed.profile, &bed.registry, &dir.join("cache2"))
        .args(["bundle", "verify"])
        .arg(bundle)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains(names), "{}", stderr(&out));
    if !install_too {
        return;
    }
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let out = pgoci(&bed.profile, &bed.registry, &dir.join("cache2"))
        .args(["install", "--yes", "--no-start", "--bundle"])
        .arg(bundle)
        .arg("--root")
        .arg(&root)
        .args(["--port", &free_port().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(tree(&root).is_empty(), "install wrote {:?}", tree(&root));
}

#[test]
fn an_oversized_index_json_is_refused() {
    let dir = scratch();
    let bundle = dir.path().join("b");
    export(dir.path(), &bundle);
    let index = bundle.join("index.json");
    let mut text = std::fs::read(&index).unwrap();
    text.extend(std::iter::repeat_n(b' ', 5 << 20));
    std::fs::write(&index, text).unwrap();
    assert_bundle_refused(dir.path(), &bundle, "index.json", true);
}

#[test]
fn a_blob_symlinked_out_of_the_bundle_is_refused() {
    let dir = scratch();
    let bundle = dir.path().join("b");
    export(dir.path(), &bundle);
    let lock = pgoci::lock::Lock::read(&bundle.join("pgoci.lock")).unwrap();
    let blob = bundle
        .join("blobs/sha256")
        .join(lock.server.pinned.layers[0].digest.hex());
    std::fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &blob).unwrap();
    assert_bundle_refused(dir.path(), &bundle, "symlink", true);
}

#[test]
fn a_manifest_that_hashes_right_but_is_not_json_is_refused() {
    let dir = scratch();
    let bundle = dir.path().join("b");
    export(dir.path(), &bundle);
    let lock_path = bundle.join("pgoci.lock");
    let lock_text = std::fs::read_to_string(&lock_path).unwrap();
    let lock = pgoci::lock::Lock::parse(&lock_text, "t").unwrap();
    let old = lock.server.pinned.digest.clone();
    let old_size = lock.server.pinned.size;
    // A new manifest blob, consistent everywhere but not a manifest.
    let junk = b"this is not a manifest".to_vec();
    let new = Digest::of_bytes(&junk);
    let blobs = bundle.join("blobs/sha256");
    std::fs::write(blobs.join(new.hex()), &junk).unwrap();
    let mut lock = lock;
    lock.server.pinned.digest = new.clone();
    lock.server.pinned.size = junk.len() as u64;
    let new_lock = lock.to_yaml().unwrap();
    std::fs::write(&lock_path, &new_lock).unwrap();
    let index_path = bundle.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    for m in index["manifests"].as_array_mut().unwrap() {
        if m["digest"] == old.to_string() {
            m["digest"] = new.to_string().into();
            m["size"] = junk.len().into();
        }
    }
    index["annotations"]["io.pgoci.lock.digest"] =
        Digest::of_bytes(new_lock.as_bytes()).to_string().into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    assert_ne!(old_size, junk.len() as u64);
    // install does not read manifests yet (the lock carries what it
    // needs): the lead wires Bundle::verify_manifests into install.
    assert_bundle_refused(dir.path(), &bundle, "not an image manifest", false);
}
