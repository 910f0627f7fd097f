//! A faithful re-publish: images that carry what real publishers attach
//! (cosign signatures, a cosign attestation, an SBOM by `cosign attach
//! sbom` and one by `oras attach` as an OCI 1.1 referrer, an image index
//! with an attestation manifest) are exported from registry A, pushed into
//! an empty registry B that answers at A's address, and resolved there:
//! the locks are byte-identical, and exporting again from B gives a
//! byte-identical bundle. And oras, another tool, copies a bundle into a
//! registry and back out; pgoci installs what it wrote.

use crate::support::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A registry copied from the bed's, signed (`bed.sh cosign-sign`) and
/// with SBOMs and an attestation attached (`bed.sh attach`), on its own.
pub(crate) struct Attached {
    state: PathBuf,
    pub(crate) registry: String,
    pub(crate) profile: PathBuf,
    env: BTreeMap<String, String>,
}

impl Attached {
    pub(crate) fn start(name: &str) -> Self {
        let state = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bed-{name}"));
        let out = bed_sh(&[
            "attach",
            bed().state_dir.to_str().unwrap(),
            state.to_str().unwrap(),
        ]);
        let registry = out
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("REGISTRY="))
            .unwrap()
            .trim()
            .to_string();
        let env = std::fs::read_to_string(state.join("signed.env"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Attached {
            profile: state.join("profile.yaml"),
            state,
            registry,
            env,
        }
    }

    fn port(&self) -> u16 {
        self.registry.rsplit_once(':').unwrap().1.parse().unwrap()
    }

    /// Stops the registry (its data is kept).
    pub(crate) fn stop(&self) {
        bed_sh(&["down", self.state.to_str().unwrap()]);
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bed/bed.sh"))
            .arg("down")
            .arg(&self.state)
            .output();
    }
}

/// An empty bed registry in `state`, on `port` when given (and free).
fn empty_registry(state: &Path, port: Option<u16>) -> String {
    let _ = std::fs::remove_dir_all(state);
    std::fs::create_dir_all(state).unwrap();
    if let Some(port) = port {
        std::fs::write(state.join("registry.port"), port.to_string()).unwrap();
    }
    bed_sh(&["registry-only", state.to_str().unwrap()])
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("REGISTRY=").map(str::to_string))
        .unwrap()
}

struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bed/bed.sh"))
            .arg("down")
            .arg(&self.0)
            .output();
    }
}

/// Resolves the bed's two requests against `registry`: 17 + hstore with
/// the signatures required (recorded in the lock), 15 + pg_cron without.
fn resolve_both(a: &Attached, registry: &str, cache: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let (l17, l15) = (dir.join("17.lock"), dir.join("15.lock"));
    pgoci(&a.profile, registry, cache)
        .arg("--require-signature-key")
        .arg(&a.env["KEY"])
        .args(["resolve", "--major", "17", "--ext", "hstore", "-o"])
        .arg(&l17)
        .assert()
        .success();
    pgoci(&a.profile, registry, cache)
        .args(["resolve", "--major", "15", "--ext", "pg_cron", "-o"])
        .arg(&l15)
        .assert()
        .success();
    (l17, l15)
}

fn export(a: &Attached, registry: &str, cache: &Path, locks: (&Path, &Path), out: &Path) {
    pgoci(&a.profile, registry, cache)
        .args(["bundle", "export", "--lock"])
        .arg(locks.0)
        .arg("--lock")
        .arg(locks.1)
        .arg("-o")
        .arg(out)
        .assert()
        .success();
}

#[test]
fn a_bundle_pushed_to_a_site_registry_resolves_to_the_same_locks_and_bundle() {
    let a = Attached::start("republish-a");
    let dir = scratch();
    let d = dir.path();
    let from_a = d.join("a");
    std::fs::create_dir(&from_a).unwrap();
    let (l17, l15) = resolve_both(&a, &a.registry, &d.join("cache-a"), &from_a);
    let bundle = d.join("site.tar");
    export(&a, &a.registry, &d.join("cache-a"), (&l17, &l15), &bundle);

    // What travels beside the images, as inspect lists it.
    let out = pgoci(&a.profile, &a.registry, &d.join("cache-a"))
        .args(["--json", "bundle", "inspect"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_success(&out);
    let companions = json(&out)["companions"].as_array().unwrap().clone();
    let has = |role: &str, suffix: &str, kind: &str| {
        companions.iter().any(|c| {
            c["role"] == role
                && c["reference"].as_str().unwrap().ends_with(suffix)
                && c["artifact_type"].as_str().unwrap_or("").contains(kind)
        })
    };
    assert!(has("index", "/pgoci/postgresql:17", ""), "{companions:#?}");
    assert!(has("manifest", "", "in-toto"), "{companions:#?}");
    assert!(has("referrer", ".sig", "simplesigning"), "{companions:#?}");
    assert!(has("referrer", ".sbom", "spdx"), "{companions:#?}");
    assert!(has("referrer", ".att", "dsse"), "{companions:#?}");
    assert!(
        has("referrer", "", "application/spdx+json"),
        "the SBOM oras attached as an OCI 1.1 referrer: {companions:#?}"
    );
    let text = pgoci(&a.profile, &a.registry, &d.join("cache-a"))
        .args(["bundle", "inspect"])
        .arg(&bundle)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.lines().any(
            |l| l.trim_start().starts_with("referrer") && l.contains("(application/spdx+json)")
        ),
        "{text}"
    );

    // Registry A goes away; B, empty, answers at A's address (the site's
    // name for it). The bundle goes in; the far side has no other source.
    let port = a.port();
    bed_sh(&["down", a.state.to_str().unwrap()]);
    let b_state = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bed-republish-b");
    let _b = Down(b_state.clone());
    let b = empty_registry(&b_state, Some(port));
    assert_eq!(b, a.registry, "B answers at A's address");
    let out = pgoci(&a.profile, &b, &d.join("cache-far"))
        .args(["--json", "bundle", "push", "--to", &b])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_success(&out);
    let pushed = json(&out);
    assert_eq!(pushed["artifacts"].as_array().unwrap().len(), 4, "{pushed}");
    assert_eq!(
        pushed["companions"].as_array().unwrap().len(),
        companions.len(),
        "{pushed}"
    );

    // Resolved at B: the same bytes, so the same lock digests.
    let from_b = d.join("b");
    std::fs::create_dir(&from_b).unwrap();
    let (b17, b15) = resolve_both(&a, &b, &d.join("cache-b"), &from_b);
    for (x, y) in [(&l17, &b17), (&l15, &b15)] {
        let (x, y) = (std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
        assert_eq!(
            String::from_utf8_lossy(&x),
            String::from_utf8_lossy(&y),
            "the lock resolved at the site differs"
        );
        assert_eq!(
            pgoci::digest::Digest::of_bytes(&x),
            pgoci::digest::Digest::of_bytes(&y)
        );
    }
    // And exported again from B: the same bundle, byte for byte (same
    // index, same signatures, attestation and SBOMs, same tags).
    let again = d.join("again.tar");
    export(&a, &b, &d.join("cache-b"), (&b17, &b15), &again);
    assert!(
        std::fs::read(&bundle).unwrap() == std::fs::read(&again).unwrap(),
        "the bundle exported from the site registry differs"
    );
}

/// Runs trixie's oras (fetched once by the bed), its config kept inside
/// `home`; returns its stdout.
fn oras(home: &Path, args: &[&str]) -> String {
    let bin = bed_sh(&["oras"]).trim().to_string();
    let out = std::process::Command::new(bin)
        .args(args)
        .env("HOME", home)
        .env("DOCKER_CONFIG", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oras {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn oras_copies_a_bundle_into_a_registry_and_back_and_pgoci_installs_what_it_wrote() {
    let bed = bed();
    let dir = scratch();
    let d = dir.path();
    let cache = d.join("cache");
    let lock = d.join("17.lock");
    let bundle = d.join("17.tar");
    pgoci(&bed.profile, &bed.registry, &cache)
        .args(["resolve", "--major", "17", "--ext", "hstore", "-o"])
        .arg(&lock)
        .assert()
        .success();
    pgoci(&bed.profile, &bed.registry, &cache)
        .args(["bundle", "export", "--lock"])
        .arg(&lock)
        .arg("-o")
        .arg(&bundle)
        .assert()
        .success();

    // oras: the bundle's short names into an empty registry C.
    let c_state = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bed-oras-c");
    let _c = Down(c_state.clone());
    let c = empty_registry(&c_state, None);
    let home = d.join("oras-home");
    std::fs::create_dir(&home).unwrap();
    let b = bundle.display().to_string();
    for (alias, repo) in [
        ("postgresql-17", "pgoci/postgresql:17"),
        ("hstore-1.8-17", "pgoci/hstore:1.8-17"),
    ] {
        oras(
            &home,
            &[
                "cp",
                "--from-oci-layout",
                &format!("{b}:{alias}"),
                "--to-plain-http",
                &format!("{c}/{repo}"),
            ],
        );
    }

    // Resolved at C: the lock is the origin's but for C's name.
    let profile_c = d.join("c.yaml");
    let text = std::fs::read_to_string(&bed.profile)
        .unwrap()
        .replace(&bed.registry, &c);
    std::fs::write(&profile_c, &text).unwrap();
    let lock_c = d.join("c.lock");
    pgoci(&profile_c, &c, &d.join("cache-c"))
        .args(["resolve", "--major", "17", "--ext", "hstore", "-o"])
        .arg(&lock_c)
        .assert()
        .success();
    let digest_of = |p: &Path| pgoci::digest::Digest::of_bytes(&std::fs::read(p).unwrap());
    let renamed = std::fs::read_to_string(&lock)
        .unwrap()
        .replace(&bed.registry, &c)
        .replace(
            &digest_of(&bed.profile).to_string(),
            &digest_of(&profile_c).to_string(),
        );
    assert!(renamed.contains("\n  index: sha256:"), "{renamed}");
    assert_eq!(renamed, std::fs::read_to_string(&lock_c).unwrap());

    // oras: back out of C into a layout of its own; pgoci installs from it.
    let layout = d.join("oras-layout");
    let l = layout.display().to_string();
    for (tag, repo) in [
        ("pg17", "pgoci/postgresql:17"),
        ("hstore", "pgoci/hstore:1.8-17"),
    ] {
        oras(
            &home,
            &[
                "cp",
                "--from-plain-http",
                &format!("{c}/{repo}"),
                "--to-oci-layout",
                &format!("{l}:{tag}"),
            ],
        );
    }
    let root = d.join("root");
    let port = free_port();
    let out = pgoci(&profile_c, &c, &d.join("cache-install"))
        .args(["--json", "install", "--yes", "--instance", "oras", "--port"])
        .arg(port.to_string())
        .arg("--root")
        .arg(&root)
        .arg("--bundle")
        .arg(&layout)
        .arg("--lock")
        .arg(&lock_c)
        .output()
        .unwrap();
    assert_success(&out);
    let _servers = Servers::of(&root, "oras");
    psql(
        &root.join("run/pgoci/oras"),
        port,
        "CREATE EXTENSION hstore",
    )
    .unwrap();
}

#[test]
fn referrers_an_origin_lists_only_through_the_api_are_indexed_at_a_site_without_it() {
    let a = Attached::start("republish-api");
    let dir = scratch();
    let d = dir.path();
    let lock = d.join("15.lock");
    let bundle = d.join("15");
    pgoci(&a.profile, &a.registry, &d.join("cache"))
        .args(["resolve", "--major", "15", "--ext", "pg_cron", "-o"])
        .arg(&lock)
        .assert()
        .success();
    pgoci(&a.profile, &a.registry, &d.join("cache"))
        .args(["bundle", "export", "--lock"])
        .arg(&lock)
        .arg("-o")
        .arg(&bundle)
        .assert()
        .success();
    // As an origin with the referrers API would have it: the SBOM oras
    // attached travels by digest, without the tag index beside it.
    let index_path = bundle.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let cron = pgoci::lock::Lock::read(&lock).unwrap().extensions[0]
        .pinned
        .digest
        .clone();
    let tag_index = format!("pg_cron:sha256-{}", cron.hex());
    let manifests = index["manifests"].as_array_mut().unwrap();
    let before = manifests.len();
    manifests.retain(|m| {
        !m["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .is_some_and(|n| n.ends_with(&tag_index))
    });
    assert_eq!(manifests.len(), before - 1, "{index}");
    let sbom = manifests
        .iter()
        .find(|m| m["artifactType"] == "application/spdx+json")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    pgoci(&a.profile, &a.registry, d)
        .args(["bundle", "verify"])
        .arg(&bundle)
        .assert()
        .success();

    let b_state = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bed-republish-api-b");
    let _b = Down(b_state.clone());
    let b = empty_registry(&b_state, None);
    let out = pgoci(&a.profile, &b, &d.join("cache"))
        .args(["--json", "bundle", "push", "--to", &b])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_success(&out);
    let pushed = json(&out);
    assert!(
        pushed["companions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["role"] == "referrers-index" && c["refers"] == cron.to_string()),
        "{pushed}"
    );
    // Another tool finds the SBOM at the site (a registry without the API).
    let home = d.join("oras-home");
    std::fs::create_dir(&home).unwrap();
    let found = oras(
        &home,
        &[
            "discover",
            "--plain-http",
            "--distribution-spec",
            "v1.1-referrers-tag",
            "--format",
            "json",
            &format!("{b}/pgoci/pg_cron@{cron}"),
        ],
    );
    assert!(
        found.contains(&sbom) && found.contains("application/spdx+json"),
        "{found}"
    );
    // Pushed again: the index already lists it, nothing is added.
    let out = pgoci(&a.profile, &b, &d.join("cache"))
        .args(["--json", "bundle", "push", "--to", &b])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_success(&out);
    assert!(
        !json(&out)["companions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["role"] == "referrers-index"),
        "{}",
        json(&out)
    );
}
