//! Signatures made by the real cosign (trixie's 2.5, `bed.sh cosign-sign`)
//! on a copy of the bed's registry, checked by pgoci: by key and keyless
//! (a test CA standing in for Fulcio), found by `.sig` tag and as an OCI
//! 1.1 referrer, and refused when missing or made by someone else.

use crate::support::{bed, bed_sh};
use pgoci::registry::{Registry, RegistryOptions};
use pgoci::signature::{self, Policy, Subject};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The signed registry, set up once per test run.
pub struct Signed {
    pub registry: String,
    pub profile: PathBuf,
    /// signed.env: KEY, WRONG_KEY, CA, OTHER_CA, SUBJECT, ISSUER.
    pub env: BTreeMap<String, String>,
}

impl Signed {
    pub fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(&self.env[name])
    }
}

pub fn signed() -> &'static Signed {
    static SIGNED: OnceLock<Signed> = OnceLock::new();
    SIGNED.get_or_init(|| {
        let bed = bed();
        let state_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bed-signed");
        let out = bed_sh(&[
            "cosign-sign",
            bed.state_dir.to_str().unwrap(),
            state_dir.to_str().unwrap(),
        ]);
        let registry = out
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("REGISTRY="))
            .expect("bed.sh prints REGISTRY=")
            .trim()
            .to_string();
        let env = std::fs::read_to_string(state_dir.join("signed.env"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Signed {
            profile: state_dir.join("profile.yaml"),
            registry,
            env,
        }
    })
}

/// Pins `repo:tag` as resolve does (index → linux/amd64 manifest) and
/// checks its signature under `policy` through the library.
fn check(repo_tag: &str, policy: &Policy) -> pgoci::Result<signature::Verified> {
    let s = signed();
    let image = format!("{}/{repo_tag}", s.registry);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let registry = Registry::new(RegistryOptions {
            insecure: vec![s.registry.clone()],
            ..Default::default()
        })?;
        let reference = Registry::parse_reference(&image)?;
        let top = registry.manifest(&reference).await?;
        let (digest, index) = if top.is_index() {
            let doc: serde_json::Value = serde_json::from_slice(&top.bytes).unwrap();
            let entry = doc["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["platform"]["architecture"] == "amd64")
                .expect("an amd64 entry");
            let d: pgoci::digest::Digest = entry["digest"].as_str().unwrap().parse()?;
            (d, Some((top.digest.clone(), top.bytes.clone())))
        } else {
            (top.digest.clone(), None)
        };
        let subject = Subject {
            image: &image,
            digest: &digest,
            index: index.as_ref().map(|(d, b)| (d, b.as_slice())),
        };
        Ok(signature::verify_remote(&registry, subject, policy)
            .await?
            .0)
    })
}

fn key(name: &str) -> Policy {
    Policy::key_file(&signed().path(name)).unwrap()
}

fn keyless(root: &str) -> Policy {
    let s = signed();
    Policy::keyless(&s.env["ISSUER"], s.env["SUBJECT"].as_str(), &s.path(root)).unwrap()
}

#[test]
fn a_key_signed_index_covers_its_platform_manifest() {
    // `cosign sign reg/pgoci/postgresql:17` signs the index the tag names.
    let v = check("pgoci/postgresql:17", &key("KEY")).unwrap();
    assert!(v.signer.starts_with("key sha256:"), "{}", v.signer);
    let v = check("pgoci/hstore:1.8-17", &key("KEY")).unwrap();
    assert_ne!(v.signed, v.signature);
}

#[test]
fn a_signature_pushed_as_an_oci_referrer_is_found() {
    check("pgoci/pg_trgm:1.6-18", &key("KEY")).unwrap();
}

#[test]
fn keyless_signatures_verify_against_the_ca_and_identity() {
    let v = check("pgoci/pg_stat_statements:1.12-18", &keyless("CA")).unwrap();
    assert!(v.signer.contains("signer@pgoci.test"), "{}", v.signer);
    // postgresql:18 has a key and a keyless signature: either policy passes.
    check("pgoci/postgresql:18", &keyless("CA")).unwrap();
    check("pgoci/postgresql:18", &key("KEY")).unwrap();
}

#[test]
fn unsigned_and_wrong_key_images_are_integrity_errors_naming_image_and_key() {
    let err = check("pgoci/pg_cron:1.4.2-15", &key("KEY")).unwrap_err();
    assert_eq!(err.kind, pgoci::Kind::Integrity, "{}", err.message);
    assert!(
        err.message.contains("pgoci/pg_cron:1.4.2-15"),
        "{}",
        err.message
    );
    assert!(err.message.contains("not signed"), "{}", err.message);
    assert!(err.message.contains("cosign.pub"), "{}", err.message);

    let err = check("pgoci/postgresql-debian:15", &key("KEY")).unwrap_err();
    assert_eq!(err.kind, pgoci::Kind::Integrity);
    assert!(
        err.message.contains("pgoci/postgresql-debian:15"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("signed with another key"),
        "{}",
        err.message
    );
    // ... and it does verify with the key that signed it.
    check("pgoci/postgresql-debian:15", &key("WRONG_KEY")).unwrap();
}

#[test]
fn keyless_with_another_root_or_a_key_only_image_is_refused() {
    let err = check("pgoci/pg_stat_statements:1.12-18", &keyless("OTHER_CA")).unwrap_err();
    assert_eq!(err.kind, pgoci::Kind::Integrity);
    assert!(err.message.contains("does not chain"), "{}", err.message);
    let err = check("pgoci/hstore:1.8-17", &keyless("CA")).unwrap_err();
    assert!(err.message.contains("not a certificate"), "{}", err.message);
    // A key policy does not accept a certificate-only signature.
    let err = check("pgoci/pg_stat_statements:1.12-18", &key("KEY")).unwrap_err();
    assert!(err.message.contains("another key"), "{}", err.message);
}

// ---- through the command line: resolve, export, verify, install ----------

use crate::support::{
    assert_success, free_port, install_from_bundle, json, pgoci, psql, scratch, stderr, Servers,
};

/// `pgoci` against the signed registry with `--require-signature-key KEY`.
fn with_key(cache: &Path, key: &str) -> assert_cmd::Command {
    let s = signed();
    let mut cmd = pgoci(&s.profile, &s.registry, cache);
    cmd.arg("--require-signature-key").arg(s.path(key));
    cmd
}

/// `pgoci` on the far side of an air gap: a registry address nothing
/// answers at, a cache of its own in `dir/cache`, and
/// `--require-signature-key` with the bed's key named `key`, if any.
fn offline(dir: &Path, cache: &str, key: Option<&str>) -> assert_cmd::Command {
    let s = signed();
    let dead = format!("127.0.0.1:{}", free_port());
    let mut cmd = pgoci(&s.profile, &dead, &dir.join(cache));
    if let Some(key) = key {
        cmd.arg("--require-signature-key").arg(s.path(key));
    }
    cmd
}

/// Offline, `bundle` verifies with the bed's key (both images' signatures)
/// and not with the wrong one (exit 5 naming it).
fn verifies_with_the_key_only(dir: &Path, cache: &str, bundle: &Path) {
    let out = offline(dir, cache, Some("KEY"))
        .args(["--json", "bundle", "verify"])
        .arg(bundle)
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(json(&out)["signatures"], 2);
    let out = offline(dir, cache, Some("WRONG_KEY"))
        .args(["bundle", "verify"])
        .arg(bundle)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong.pub"), "{}", stderr(&out));
}

#[test]
fn a_signed_image_resolves_exports_verifies_and_installs_offline() {
    let s = signed();
    let dir = scratch();
    let d = dir.path();
    let lock = d.join("17.lock");
    let bundle = d.join("17.tar");
    with_key(&d.join("cache"), "KEY")
        .args(["resolve", "--major", "17", "--ext", "hstore", "-o"])
        .arg(&lock)
        .assert()
        .success();
    let text = std::fs::read_to_string(&lock).unwrap();
    assert_eq!(text.matches("  signature:").count(), 2, "{text}");
    // The server's tag names an index: the index travels with its signature.
    assert!(text.contains("    index:"), "{text}");
    with_key(&d.join("cache"), "KEY")
        .args(["bundle", "export", "--lock"])
        .arg(&lock)
        .arg("-o")
        .arg(&bundle)
        .assert()
        .success();
    let out = pgoci(&s.profile, &s.registry, &d.join("cache"))
        .args(["--json", "bundle", "inspect"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_success(&out);
    let sigs = json(&out)["signatures"].clone();
    assert_eq!(sigs.as_array().unwrap().len(), 2, "{sigs}");

    // The far side: no registry, another cache; the key is all it trusts.
    verifies_with_the_key_only(d, "cache-far", &bundle);
    let root = d.join("root");
    let port = free_port();
    let out = install_from_bundle(
        offline(d, "cache-far", Some("KEY")),
        "signed",
        port,
        &root,
        &bundle,
    );
    assert_success(&out);
    let _servers = Servers::of(&root, "signed");
    psql(
        &root.join("run/pgoci/signed"),
        port,
        "CREATE EXTENSION hstore",
    )
    .unwrap();
}

#[test]
fn unsigned_and_wrong_key_images_are_refused_naming_image_and_key() {
    let dir = scratch();
    let d = dir.path();
    // postgresql-debian:15 carries only a signature by the wrong key.
    let out = with_key(&d.join("cache"), "KEY")
        .args(["resolve", "--major", "15", "-o"])
        .arg(d.join("15.lock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("pgoci/postgresql-debian:15"), "{err}");
    assert!(
        err.contains("cosign.pub") && err.contains("another key"),
        "{err}"
    );
    assert!(!d.join("15.lock").exists());

    // A profile requiring a signature on pg_cron only: the server passes,
    // the unsigned extension does not.
    let s = signed();
    let profile = d.join("cron-signed.yaml");
    let text = std::fs::read_to_string(&s.profile).unwrap().replacen(
        "  pg_cron:\n",
        &format!("  pg_cron:\n    signatures: {{key: {}}}\n", s.env["KEY"]),
        1,
    );
    std::fs::write(&profile, text).unwrap();
    let out = pgoci(&profile, &s.registry, &d.join("cache"))
        .args(["resolve", "--major", "15", "--ext", "pg_cron", "-o"])
        .arg(d.join("cron.lock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("pgoci/pg_cron:1.4.2-15") && err.contains("not signed"),
        "{err}"
    );
    assert!(err.contains("cosign.pub"), "{err}");
    // Without any requirement the same request resolves, and the lock
    // is as before signatures existed.
    let plain = d.join("plain.lock");
    pgoci(&s.profile, &s.registry, &d.join("cache"))
        .args(["resolve", "--major", "15", "--ext", "pg_cron", "-o"])
        .arg(&plain)
        .assert()
        .success();
    assert!(!std::fs::read_to_string(&plain)
        .unwrap()
        .contains("signature"));
}

#[test]
fn a_profile_can_require_keyless_signatures() {
    let s = signed();
    let dir = scratch();
    let d = dir.path();
    let profile = d.join("keyless.yaml");
    // Relative to the profile's directory.
    std::fs::copy(s.path("CA"), d.join("ca.pem")).unwrap();
    let mut text = std::fs::read_to_string(&s.profile).unwrap();
    text.push_str(&format!(
        "signatures:\n  keyless: {{issuer: \"{}\", subject: \"{}\", trusted_root: ca.pem}}\n",
        s.env["ISSUER"], s.env["SUBJECT"]
    ));
    std::fs::write(&profile, &text).unwrap();
    let lock = d.join("18.lock");
    pgoci(&profile, &s.registry, &d.join("cache"))
        .args([
            "resolve",
            "--major",
            "18",
            "--ext",
            "pg_stat_statements",
            "-o",
        ])
        .arg(&lock)
        .assert()
        .success();
    let written = std::fs::read_to_string(&lock).unwrap();
    assert_eq!(
        written.matches("signer: keyless signer@pgoci.test").count(),
        2,
        "{written}"
    );
    // Another subject is refused.
    std::fs::write(
        &profile,
        text.replace(&s.env["SUBJECT"], "mallory@pgoci.test"),
    )
    .unwrap();
    let out = pgoci(&profile, &s.registry, &d.join("cache"))
        .args([
            "resolve",
            "--major",
            "18",
            "--ext",
            "pg_stat_statements",
            "-o",
        ])
        .arg(d.join("bad.lock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("mallory@pgoci.test"),
        "{}",
        stderr(&out)
    );
}

/// Rewrites the bundle directory as a carrier would who swapped a layer:
/// new layer, new manifest, new lock, new index.json, every digest
/// recomputed, so that the blobs alone look intact.
fn swap_layer_and_rehash(bundle: &Path, extension: &str) {
    use pgoci::digest::Digest;
    let blob_path = |d: &Digest| bundle.join("blobs/sha256").join(d.hex());
    let lock_path = bundle.join("pgoci.lock");
    let mut lock =
        pgoci::lock::Lock::parse(&std::fs::read_to_string(&lock_path).unwrap(), "t").unwrap();
    let ext = lock
        .extensions
        .iter_mut()
        .find(|e| e.name == extension)
        .unwrap();
    let old = ext.pinned.digest.clone();
    let evil = b"not what was signed".to_vec();
    let evil_digest = Digest::of_bytes(&evil);
    std::fs::write(blob_path(&evil_digest), &evil).unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob_path(&old)).unwrap()).unwrap();
    manifest["layers"][0]["digest"] = evil_digest.to_string().into();
    manifest["layers"][0]["size"] = evil.len().into();
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let new = Digest::of_bytes(&bytes);
    std::fs::write(blob_path(&new), &bytes).unwrap();
    ext.pinned.digest = new.clone();
    ext.pinned.size = bytes.len() as u64;
    ext.pinned.layers[0].digest = evil_digest;
    ext.pinned.layers[0].size = evil.len() as u64;
    let text = lock.to_yaml().unwrap();
    std::fs::write(&lock_path, &text).unwrap();
    let index_path = bundle.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    for m in index["manifests"].as_array_mut().unwrap() {
        if m["digest"] == old.to_string() {
            m["digest"] = new.to_string().into();
            m["size"] = bytes.len().into();
        }
    }
    index["annotations"]["io.pgoci.lock.digest"] =
        Digest::of_bytes(text.as_bytes()).to_string().into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn a_carrier_tampered_bundle_is_refused_offline() {
    let dir = scratch();
    let d = dir.path();
    let lock = d.join("17.lock");
    let bundle = d.join("17");
    with_key(&d.join("cache"), "KEY")
        .args(["resolve", "--major", "17", "--ext", "hstore", "-o"])
        .arg(&lock)
        .assert()
        .success();
    with_key(&d.join("cache"), "KEY")
        .args(["bundle", "export", "--lock"])
        .arg(&lock)
        .arg("-o")
        .arg(&bundle)
        .assert()
        .success();
    swap_layer_and_rehash(&bundle, "hstore");

    // Digests alone cannot tell: the carrier recomputed them all.
    offline(d, "cache-far", None)
        .args(["bundle", "verify"])
        .arg(&bundle)
        .assert()
        .success();
    // The signature can: it names the manifest the publisher signed.
    let far = || offline(d, "cache-far", Some("KEY"));
    let out = far()
        .args(["bundle", "verify"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("pgoci/hstore:1.8-17") && err.contains("cosign.pub"),
        "{err}"
    );
    assert!(err.contains("another image"), "{err}");

    let root = d.join("root");
    let out = install_from_bundle(far(), "tampered", free_port(), &root, &bundle);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pgoci/hstore:1.8-17"),
        "{}",
        stderr(&out)
    );
    assert!(!root.join("var/lib/pgoci/tampered").exists());
}

#[test]
fn doctor_reports_each_images_signature_offline() {
    let dir = scratch();
    let d = dir.path();
    let lock = d.join("17.lock");
    let bundle = d.join("17");
    with_key(&d.join("cache"), "KEY")
        .args(["resolve", "--major", "17", "--ext", "hstore", "-o"])
        .arg(&lock)
        .assert()
        .success();
    with_key(&d.join("cache"), "KEY")
        .args(["bundle", "export", "--lock"])
        .arg(&lock)
        .arg("-o")
        .arg(&bundle)
        .assert()
        .success();
    let far = |key: Option<&str>| offline(d, "cache-far", key);
    let statuses = |out: &std::process::Output| -> Vec<(String, String)> {
        json(out)["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["image"].as_str().unwrap().to_string(),
                    r["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let out = far(Some("KEY"))
        .args(["--json", "doctor", "--bundle"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_success(&out);
    let rows = statuses(&out);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|(_, st)| st == "signed"), "{rows:?}");
    let doc = json(&out);
    assert!(doc["signatures"][0]["signer"]
        .as_str()
        .unwrap()
        .starts_with("key sha256:"));
    // No policy here: the recorded signer is shown, not vouched for.
    let out = far(None)
        .args(["--json", "doctor", "--bundle"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_success(&out);
    assert!(
        statuses(&out).iter().all(|(_, st)| st == "recorded"),
        "{:?}",
        statuses(&out)
    );
    // Another key: both are bad, the table says so and doctor fails
    // (a tampered bundle is refused before: its layers do not unpack).
    let out = far(Some("WRONG_KEY"))
        .args(["doctor", "--bundle"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("FAIL signatures"), "{err}");
    assert!(
        err.lines()
            .any(|l| l.trim_start().starts_with("bad") && l.contains("pgoci/hstore:1.8-17")),
        "{err}"
    );
}

/// The supplier exports with no policy of its own: the lock records no
/// signer, but the cosign manifests travel beside the images. The site's
/// own key checks them offline (`bundle verify`, `doctor --bundle`,
/// `install --bundle`), and still refuses a swapped, unsigned or
/// foreign-signed image.
#[test]
fn a_site_checks_an_unpoliced_export_with_its_own_key() {
    let s = signed();
    let dir = scratch();
    let d = dir.path();
    let supplier = |cache: &str| pgoci(&s.profile, &s.registry, &d.join(cache));
    let export = |major: &str, ext: &str, bundle: &Path| {
        let lock = d.join(format!("{major}.lock"));
        supplier("cache")
            .args(["resolve", "--major", major, "--ext", ext, "-o"])
            .arg(&lock)
            .assert()
            .success();
        assert!(!std::fs::read_to_string(&lock)
            .unwrap()
            .contains("signature"));
        supplier("cache")
            .args(["bundle", "export", "--lock"])
            .arg(&lock)
            .arg("-o")
            .arg(bundle)
            .assert()
            .success();
    };
    let bundle = d.join("17");
    export("17", "hstore", &bundle);

    let site = |key: &str| offline(d, "cache-site", Some(key));
    // The server's tag names an index signed by cosign: the index travels
    // too, so its signature covers the platform manifest offline.
    verifies_with_the_key_only(d, "cache-site", &bundle);

    let out = site("KEY")
        .args(["--json", "doctor", "--bundle"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_success(&out);
    let rows = json(&out)["signatures"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["status"] == "signed" && r["detail"].as_str().unwrap().contains("carried")),
        "{rows:?}"
    );

    let root = d.join("root");
    let port = free_port();
    let out = install_from_bundle(site("KEY"), "site", port, &root, &bundle);
    assert_success(&out);
    drop(Servers::of(&root, "site"));

    // A carrier who swaps a layer and rehashes everything cannot sign it.
    swap_layer_and_rehash(&bundle, "hstore");
    let out = site("KEY")
        .args(["bundle", "verify"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pgoci/hstore:1.8-17"),
        "{}",
        stderr(&out)
    );
    let swapped_root = d.join("root-swapped");
    let out = install_from_bundle(site("KEY"), "swapped", free_port(), &swapped_root, &bundle);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(!swapped_root.join("var/lib/pgoci/swapped").exists());

    // 15 is signed by another key and pg_cron by nobody: both refused,
    // each by name, the unsigned one saying nothing travelled with it.
    let bundle15 = d.join("15");
    export("15", "pg_cron", &bundle15);
    let out = site("KEY")
        .args(["bundle", "verify"])
        .arg(&bundle15)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("pgoci/postgresql-debian:15") && err.contains("another key"),
        "{err}"
    );
    let out = site("KEY")
        .args(["--json", "doctor", "--bundle"])
        .arg(&bundle15)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let rows = json(&out)["signatures"].as_array().unwrap().clone();
    let status = |image: &str| {
        rows.iter()
            .find(|r| r["image"].as_str().unwrap().contains(image))
            .map(|r| r["status"].as_str().unwrap().to_string())
    };
    assert_eq!(
        status("postgresql-debian:15").as_deref(),
        Some("bad"),
        "{rows:?}"
    );
    assert_eq!(status("pg_cron").as_deref(), Some("unsigned"), "{rows:?}");
}
