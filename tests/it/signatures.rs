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
    pub state_dir: PathBuf,
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
            state_dir,
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
    Policy::keyless(&s.env["ISSUER"], &s.env["SUBJECT"], &s.path(root)).unwrap()
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
