//! Signature verification in cosign's formats: an image counts as signed
//! when a cosign signature manifest stored beside it (the
//! `sha256-<hex>.sig` tag, or an OCI 1.1 referrer) holds a signature layer
//! whose payload names the image's digest and whose signature verifies
//! under the [`Policy`]: a public key, or a keyless identity (certificate
//! chained to a trusted root, with the required subject and OIDC issuer).
//!
//! Fetching ([`fetch`]) and verifying ([`verify`]) are apart, so the same
//! check runs online at resolve time and offline on the signature
//! manifests a bundle carries. A signature over an image index counts for
//! a platform manifest only when the index's own bytes, checked against
//! its digest, list that manifest: that is what `cosign sign` of a
//! multi-platform tag signs.
//!
//! Keyless policies whose trusted root (a Sigstore `trusted_root.json`)
//! lists transparency logs require a Rekor bundle whose SET verifies
//! ([`rekor`]) and check the certificate at the logged time; with a plain
//! CA bundle, certificates are checked at the current time. Not verified:
//! Rekor inclusion proofs, RFC 3161 timestamps, the tlog for key policies;
//! signatures stored in another repository (`COSIGN_REPOSITORY`) are not
//! looked for.

pub mod carried;
pub mod cosign;
mod error;
pub mod key;
pub mod keyless;
pub mod policy;
pub mod record;
pub mod rekor;

use crate::digest::Digest;
use crate::error::Result;
use crate::registry::Registry;
use base64::Engine as _;
pub use error::{Rejected, Rejection, SignatureError, TrustRootDefect};
pub use key::PublicKey;
pub use keyless::{Identity, SubjectMatch, TrustRoot};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest signature layer (simple-signing payload) pgoci reads.
pub const MAX_PAYLOAD: u64 = 64 << 10;
/// The largest signature manifest pgoci reads.
pub const MAX_MANIFEST: u64 = 256 << 10;

/// Who must have signed an image.
#[derive(Debug, Clone)]
pub enum Policy {
    /// A cosign key pair's public half.
    Key { key: PublicKey, path: PathBuf },
    /// A certificate for `identity`, chained to `root`.
    Keyless { identity: Identity, root: TrustRoot },
}

impl Policy {
    /// Signed with the key in `path` (PEM, as `cosign generate-key-pair` writes).
    pub fn key_file(path: &Path) -> Result<Self> {
        Ok(Policy::Key {
            key: PublicKey::read(path)?,
            path: path.to_path_buf(),
        })
    }

    /// Signed keyless by `subject` as vouched for by `issuer`, with
    /// certificates chained to the CA bundle or `trusted_root.json` in `root`.
    pub fn keyless(issuer: &str, subject: impl Into<SubjectMatch>, root: &Path) -> Result<Self> {
        let subject = subject.into();
        if issuer.is_empty() || subject.is_empty() {
            return Err(SignatureError::IncompleteIdentity.into());
        }
        Ok(Policy::Keyless {
            identity: Identity {
                issuer: issuer.to_string(),
                subject,
            },
            root: TrustRoot::read(root)?,
        })
    }

    /// The signer as messages name it.
    pub fn describe(&self) -> String {
        match self {
            Policy::Key { key, path } => {
                format!("key {} ({})", path.display(), key.fingerprint())
            }
            Policy::Keyless { identity, root } => {
                format!("identity {identity} under trusted root {}", root.origin)
            }
        }
    }

    /// The signer as a lock records it: stable across machines (a key by
    /// fingerprint, not by path).
    pub fn signer(&self) -> String {
        match self {
            Policy::Key { key, .. } => format!("key {}", key.fingerprint()),
            Policy::Keyless { identity, .. } => {
                format!("keyless {} issuer {}", identity.subject, identity.issuer)
            }
        }
    }
}

/// A signature manifest with the signature-layer blobs it names, as
/// fetched from a registry or read from a bundle.
#[derive(Debug, Clone)]
pub struct SignatureSet {
    /// The signature manifest's digest.
    pub digest: Digest,
    pub media_type: String,
    pub manifest: Vec<u8>,
    /// Blobs by digest: the simple-signing payloads.
    pub blobs: BTreeMap<Digest, Vec<u8>>,
}

impl SignatureSet {
    /// The blobs of the set as they would be stored: manifest first.
    pub fn descriptors(&self) -> Vec<(Digest, u64)> {
        std::iter::once((self.digest.clone(), self.manifest.len() as u64))
            .chain(self.blobs.iter().map(|(d, b)| (d.clone(), b.len() as u64)))
            .collect()
    }
}

/// What a signature check proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The digest the signature covers: the platform manifest's, or the
    /// index's it was picked from.
    pub signed: Digest,
    /// The signature manifest holding the signature that verified.
    pub signature: Digest,
    /// [`Policy::signer`].
    pub signer: String,
}

/// The artifact whose signature is checked.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The reference it was resolved from, for messages.
    pub image: &'a str,
    /// The platform manifest's digest.
    pub digest: &'a Digest,
    /// The index it was picked from, with the index's bytes (which must
    /// hash to that digest and list `digest`).
    pub index: Option<(&'a Digest, &'a [u8])>,
}

impl Subject<'_> {
    /// The digests a signature may name to cover this artifact.
    fn signable(&self) -> Result<Vec<Digest>> {
        let mut digests = vec![self.digest.clone()];
        if let Some((index, bytes)) = self.index {
            if Digest::of_bytes(bytes) != *index {
                return Err(SignatureError::IndexDigest {
                    image: self.image.to_string(),
                    index: index.clone(),
                }
                .into());
            }
            #[derive(serde::Deserialize)]
            struct Index {
                manifests: Vec<Entry>,
            }
            #[derive(serde::Deserialize)]
            struct Entry {
                digest: String,
            }
            let doc: Index =
                serde_json::from_slice(bytes).map_err(|source| SignatureError::IndexMalformed {
                    image: self.image.to_string(),
                    source,
                })?;
            if !doc
                .manifests
                .iter()
                .any(|m| m.digest == self.digest.to_string())
            {
                return Err(SignatureError::IndexOmits {
                    image: self.image.to_string(),
                    index: index.clone(),
                    digest: self.digest.clone(),
                }
                .into());
            }
            digests.push(index.clone());
        }
        Ok(digests)
    }

    /// Every digest whose signatures should be fetched.
    pub fn digests(&self) -> Vec<Digest> {
        let mut all = vec![self.digest.clone()];
        all.extend(self.index.map(|(d, _)| d.clone()));
        all
    }
}

/// Checks that one of `sets` holds a signature by `policy` over `subject`.
/// An unsigned image, or one signed by someone else, is an integrity error
/// naming the image and the required signer.
pub fn verify(subject: Subject<'_>, sets: &[SignatureSet], policy: &Policy) -> Result<Verified> {
    let signable = subject.signable()?;
    let mut rejected: Vec<Rejected> = Vec::new();
    let mut seen = 0;
    for set in sets {
        for (layer, outcome) in check_set(set, &signable, policy) {
            seen += 1;
            match outcome {
                Ok(signed) => {
                    return Ok(Verified {
                        signed,
                        signature: set.digest.clone(),
                        signer: policy.signer(),
                    })
                }
                Err(why) => rejected.push(Rejected { layer, why }),
            }
        }
    }
    let required = policy.describe();
    if seen == 0 {
        return Err(SignatureError::Unsigned {
            image: subject.image.to_string(),
            digest: subject.digest.clone(),
            required,
        }
        .into());
    }
    // Each reason once, in the order of their text.
    rejected.sort_by_cached_key(ToString::to_string);
    rejected.dedup_by(|a, b| a.to_string() == b.to_string());
    Err(SignatureError::NoValidSignature {
        image: subject.image.to_string(),
        digest: subject.digest.clone(),
        required,
        rejected,
    }
    .into())
}

/// Every signature layer of a set with whether it verifies (and which of
/// the signable digests it covers) or why not.
fn check_set(
    set: &SignatureSet,
    signable: &[Digest],
    policy: &Policy,
) -> Vec<(String, std::result::Result<Digest, Rejection>)> {
    if Digest::of_bytes(&set.manifest) != set.digest {
        return vec![(set.digest.to_string(), Err(Rejection::ManifestDigest))];
    }
    let manifest = match cosign::SignatureManifest::parse(&set.manifest, &set.digest.to_string()) {
        Ok(m) => m,
        Err(e) => {
            return vec![(
                set.digest.to_string(),
                Err(Rejection::Manifest(Box::new(e))),
            )]
        }
    };
    manifest
        .signatures()
        .map(|layer| {
            (
                layer.digest.clone(),
                check_layer(set, layer, signable, policy),
            )
        })
        .collect()
}

fn check_layer(
    set: &SignatureSet,
    layer: &cosign::Layer,
    signable: &[Digest],
    policy: &Policy,
) -> std::result::Result<Digest, Rejection> {
    let digest: Digest = layer
        .digest
        .parse()
        .map_err(|_| Rejection::LayerDigest(layer.digest.clone()))?;
    let payload = set.blobs.get(&digest).ok_or(Rejection::PayloadMissing)?;
    if Digest::of_bytes(payload) != digest || payload.len() as u64 != layer.size {
        return Err(Rejection::PayloadDigest);
    }
    let signed = cosign::Payload::signed_digest(payload)?;
    if !signable.contains(&signed) {
        return Err(Rejection::SignsAnother(signed));
    }
    let signature = layer
        .annotations
        .get(cosign::SIGNATURE_ANNOTATION)
        .ok_or(Rejection::NoSignature)?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| Rejection::SignatureNotBase64)?;
    let key = match policy {
        Policy::Key { key, .. } => key.clone(),
        Policy::Keyless { identity, root } => {
            let cert = layer
                .annotations
                .get(cosign::CERTIFICATE_ANNOTATION)
                .ok_or(Rejection::NoCertificate)?;
            // With log keys configured, the certificate must have been
            // valid when the log recorded the signature; without, now.
            let time = if root.log_keys.is_empty() {
                rustls_pki_types::UnixTime::now()
            } else {
                let bundle = layer
                    .annotations
                    .get(cosign::BUNDLE_ANNOTATION)
                    .ok_or(Rejection::NoLogBundle)?;
                let der = rekor::pem_der(cert.as_bytes())
                    .ok_or(Rejection::CertificateAnnotationNotPem)?;
                let secs = rekor::verify_bundle(bundle, &root.log_keys, payload, &signature, &der)?;
                rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs))
            };
            keyless::verify_certificate(
                cert,
                layer
                    .annotations
                    .get(cosign::CHAIN_ANNOTATION)
                    .map(String::as_str),
                root,
                identity,
                time,
            )?
        }
    };
    if !key.verifies(payload, &signature) {
        return Err(match policy {
            Policy::Key { .. } => Rejection::WrongKey,
            Policy::Keyless { .. } => Rejection::CertificateKeyFails,
        });
    }
    Ok(signed)
}

/// Fetches every cosign signature manifest of `subject` from the image's
/// repository: the `sha256-<hex>.sig` tag and OCI 1.1 referrers of type
/// [`cosign::SIGNATURE_ARTIFACT`], for the manifest and for its index.
pub async fn fetch(registry: &Registry, subject: Subject<'_>) -> Result<Vec<SignatureSet>> {
    let reference = Registry::parse_reference(subject.image)?;
    let mut manifests: BTreeMap<Digest, crate::registry::RawManifest> = BTreeMap::new();
    for digest in subject.digests() {
        let tag = oci_client::Reference::with_tag(
            reference.registry().to_string(),
            reference.repository().to_string(),
            cosign::signature_tag(&digest),
        );
        if let Some(m) = registry.manifest_if_exists(&tag).await? {
            manifests.insert(m.digest.clone(), m);
        }
        let by_digest = reference.clone_with_digest(digest.to_string());
        for entry in registry
            .referrers(&by_digest, Some(cosign::SIGNATURE_ARTIFACT))
            .await?
        {
            let entry_digest: Digest = entry.digest.parse()?;
            if manifests.contains_key(&entry_digest) || entry.size as u64 > MAX_MANIFEST {
                continue;
            }
            let m = registry
                .manifest(&reference.clone_with_digest(entry.digest.clone()))
                .await?;
            manifests.insert(m.digest.clone(), m);
        }
    }
    let mut sets = Vec::new();
    for (digest, m) in manifests {
        if m.bytes.len() as u64 > MAX_MANIFEST {
            continue;
        }
        let parsed = cosign::SignatureManifest::parse(&m.bytes, &digest.to_string())?;
        let mut blobs = BTreeMap::new();
        for (d, _) in payloads(&parsed) {
            let bytes = registry.small_blob(&reference, &d, MAX_PAYLOAD).await?;
            blobs.insert(d, bytes);
        }
        sets.push(SignatureSet {
            digest,
            media_type: m.media_type,
            manifest: m.bytes,
            blobs,
        });
    }
    Ok(sets)
}

/// The payload blobs a signature manifest names, each once, with their
/// declared sizes: its signature layers whose digest parses and whose
/// size is within [`MAX_PAYLOAD`] (no other could be read, let alone
/// verify). The same choice online ([`fetch`]) and offline ([`carried`]).
fn payloads(manifest: &cosign::SignatureManifest) -> Vec<(Digest, u64)> {
    let mut out: Vec<(Digest, u64)> = Vec::new();
    for layer in manifest.signatures() {
        let Ok(d) = layer.digest.parse::<Digest>() else {
            continue;
        };
        if layer.size <= MAX_PAYLOAD && !out.iter().any(|(seen, _)| *seen == d) {
            out.push((d, layer.size));
        }
    }
    out
}

/// Fetches and verifies: the online check of one artifact. Returns what
/// verified and the signature manifest that holds it (to record and carry).
pub async fn verify_remote(
    registry: &Registry,
    subject: Subject<'_>,
    policy: &Policy,
) -> Result<(Verified, SignatureSet)> {
    let sets = fetch(registry, subject).await?;
    let verified = verify(subject, &sets, policy)?;
    let set = sets
        .into_iter()
        .find(|s| s.digest == verified.signature)
        .expect("verify returns one of the sets");
    Ok((verified, set))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::EcdsaKeyPair;

    /// A signature set as cosign writes it: one simple-signing layer per
    /// (payload digest, signature) pair.
    fn signed_set(pair: &EcdsaKeyPair, signs: &Digest) -> SignatureSet {
        let payload = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"r/x"}},"image":{{"docker-manifest-digest":"{signs}"}},"type":"{}"}},"optional":null}}"#,
            cosign::PAYLOAD_TYPE
        )
        .into_bytes();
        let sig = pair.sign(&SystemRandom::new(), &payload).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(sig.as_ref());
        let pd = Digest::of_bytes(&payload);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::registry::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": Digest::of_bytes(b"{}").to_string(), "size": 2},
            "layers": [{"mediaType": cosign::SIMPLE_SIGNING, "digest": pd.to_string(),
                        "size": payload.len(),
                        "annotations": {cosign::SIGNATURE_ANNOTATION: b64}}]
        }))
        .unwrap();
        SignatureSet {
            digest: Digest::of_bytes(&manifest),
            media_type: crate::registry::OCI_MANIFEST.into(),
            manifest,
            blobs: [(pd, payload)].into(),
        }
    }

    fn key_policy(pem: &str) -> Policy {
        Policy::Key {
            key: PublicKey::from_pem(pem, "test key").unwrap(),
            path: "cosign.pub".into(),
        }
    }

    fn subject(digest: &Digest) -> Subject<'_> {
        Subject {
            image: "reg/pgoci/x:1",
            digest,
            index: None,
        }
    }

    #[test]
    fn a_signature_by_the_key_over_the_digest_verifies() {
        let (pair, pem) = key::tests::p256_pair();
        let d = Digest::of_bytes(b"manifest");
        let set = signed_set(&pair, &d);
        let v = verify(subject(&d), std::slice::from_ref(&set), &key_policy(&pem)).unwrap();
        assert_eq!(v.signed, d);
        assert_eq!(v.signature, set.digest);
        assert!(v.signer.starts_with("key sha256:"), "{}", v.signer);
    }

    #[test]
    fn unsigned_wrong_key_and_wrong_digest_are_integrity_errors() {
        let (pair, pem) = key::tests::p256_pair();
        let (_, other_pem) = key::tests::p256_pair();
        let d = Digest::of_bytes(b"manifest");
        let err = verify(subject(&d), &[], &key_policy(&pem)).unwrap_err();
        assert_eq!(err.kind, crate::Kind::Integrity);
        assert!(err.message.contains("reg/pgoci/x:1") && err.message.contains("not signed"));
        assert!(err.message.contains("cosign.pub"), "{}", err.message);

        let set = signed_set(&pair, &d);
        let err = verify(subject(&d), &[set], &key_policy(&other_pem)).unwrap_err();
        assert_eq!(err.kind, crate::Kind::Integrity);
        assert!(
            err.message.contains("signed with another key"),
            "{}",
            err.message
        );

        let other = Digest::of_bytes(b"another manifest");
        let set = signed_set(&pair, &other);
        let err = verify(subject(&d), &[set], &key_policy(&pem)).unwrap_err();
        assert!(err.message.contains("another image"), "{}", err.message);
    }

    #[test]
    fn a_tampered_payload_or_manifest_does_not_verify() {
        let (pair, pem) = key::tests::p256_pair();
        let d = Digest::of_bytes(b"manifest");
        let mut set = signed_set(&pair, &d);
        let (pd, payload) = set.blobs.pop_first().unwrap();
        let mut evil = payload.clone();
        evil[0] = b' ';
        set.blobs.insert(pd, evil);
        let err = verify(subject(&d), &[set], &key_policy(&pem)).unwrap_err();
        assert!(err.message.contains("does not match"), "{}", err.message);

        let mut set = signed_set(&pair, &d);
        set.manifest.push(b'\n');
        let err = verify(subject(&d), &[set], &key_policy(&pem)).unwrap_err();
        assert!(err.message.contains("does not match"), "{}", err.message);
    }

    #[test]
    fn an_index_signature_covers_only_manifests_the_index_lists() {
        let (pair, pem) = key::tests::p256_pair();
        let m = Digest::of_bytes(b"platform manifest");
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": crate::registry::OCI_MANIFEST,
                           "digest": m.to_string(), "size": 17}]
        }))
        .unwrap();
        let id = Digest::of_bytes(&index);
        let set = signed_set(&pair, &id);
        let s = Subject {
            image: "reg/pgoci/x:1",
            digest: &m,
            index: Some((&id, &index)),
        };
        let v = verify(s, std::slice::from_ref(&set), &key_policy(&pem)).unwrap();
        assert_eq!(v.signed, id);
        // Without the index's bytes, an index signature says nothing of m.
        assert!(verify(subject(&m), std::slice::from_ref(&set), &key_policy(&pem)).is_err());
        // A manifest the index does not list is refused even with the index.
        let stranger = Digest::of_bytes(b"stranger");
        let s = Subject {
            image: "reg/pgoci/x:1",
            digest: &stranger,
            index: Some((&id, &index)),
        };
        let err = verify(s, &[set], &key_policy(&pem)).unwrap_err();
        assert!(err.message.contains("does not list"), "{}", err.message);
    }

    #[test]
    fn a_trusted_root_with_a_log_requires_a_rekor_bundle() {
        let f = keyless::tests::Fixture::new(keyless::tests::FULCIO_LIKE);
        let ca = f.read("ca.pem");
        let ca_der = rekor::pem_der(ca.as_bytes()).unwrap();
        let (_, log_pem) = key::tests::p256_pair();
        let log_der = rekor::pem_der(log_pem.as_bytes()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let json = serde_json::json!({
            "certificateAuthorities": [{"certChain": {"certificates": [{"rawBytes": b64.encode(&ca_der)}]}}],
            "tlogs": [{"baseUrl": "https://rekor.example", "hashAlgorithm": "SHA2_256",
                       "publicKey": {"rawBytes": b64.encode(&log_der), "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}]
        });
        let root = TrustRoot::parse(json.to_string().as_bytes(), "trusted_root.json").unwrap();
        assert_eq!(root.log_keys.len(), 1);
        let policy = Policy::Keyless {
            identity: Identity {
                issuer: "https://issuer.pgoci.test".into(),
                subject: "signer@pgoci.test".into(),
            },
            root,
        };
        // A certificate-carrying signature without a bundle.
        let (pair, _) = key::tests::p256_pair();
        let d = Digest::of_bytes(b"manifest");
        let mut set = signed_set(&pair, &d);
        let mut manifest: serde_json::Value = serde_json::from_slice(&set.manifest).unwrap();
        manifest["layers"][0]["annotations"][cosign::CERTIFICATE_ANNOTATION] =
            f.read("leaf.pem").into();
        set.manifest = serde_json::to_vec(&manifest).unwrap();
        set.digest = Digest::of_bytes(&set.manifest);
        let err = verify(subject(&d), &[set], &policy).unwrap_err();
        assert!(
            err.message.contains("no transparency-log bundle"),
            "{}",
            err.message
        );
    }
    #[test]
    fn verification_failures_are_typed() {
        let (pair, pem) = key::tests::p256_pair();
        let (_, other_pem) = key::tests::p256_pair();
        let d = Digest::of_bytes(b"manifest");
        let err = verify(subject(&d), &[], &key_policy(&pem)).unwrap_err();
        match err.typed::<SignatureError>() {
            Some(SignatureError::Unsigned {
                image,
                digest,
                required,
            }) => {
                assert_eq!((image.as_str(), digest), ("reg/pgoci/x:1", &d));
                assert!(required.starts_with("key cosign.pub"), "{required}");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.hint.as_deref().unwrap().contains("cosign sign"));
        let set = signed_set(&pair, &d);
        let err = verify(subject(&d), &[set], &key_policy(&other_pem)).unwrap_err();
        match err.typed::<SignatureError>() {
            Some(SignatureError::NoValidSignature { rejected, .. }) => {
                assert_eq!(rejected.len(), 1);
                assert!(matches!(rejected[0].why, Rejection::WrongKey));
                assert!(
                    rejected[0]
                        .to_string()
                        .ends_with(": signed with another key"),
                    "{rejected:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(err.hint.is_none());
        let err = PublicKey::from_pem("not a key", "k.pub").unwrap_err();
        assert!(matches!(
            err.typed::<SignatureError>(),
            Some(SignatureError::NotPem { .. })
        ));
        let err = TrustRoot::parse(b"{}", "empty.json").unwrap_err();
        assert!(matches!(
            err.typed::<SignatureError>(),
            Some(SignatureError::BadTrustRoot {
                defect: TrustRootDefect::Empty,
                ..
            })
        ));
        let err = SubjectMatch::pattern("(").unwrap_err();
        assert_eq!(err.kind, crate::Kind::Resolve);
        assert!(matches!(
            err.typed::<SignatureError>(),
            Some(SignatureError::BadSubjectPattern { .. })
        ));
    }
}
