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
            let doc: crate::oci::ImageIndex =
                serde_json::from_slice(bytes).map_err(|source| SignatureError::IndexMalformed {
                    image: self.image.to_string(),
                    source,
                })?;
            if !doc
                .manifests()
                .iter()
                .any(|m| crate::oci::describes(m, self.digest))
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
    let manifest = match cosign::parse_manifest(&set.manifest, &set.digest.to_string()) {
        Ok(m) => m,
        Err(e) => {
            return vec![(
                set.digest.to_string(),
                Err(Rejection::Manifest(Box::new(e))),
            )]
        }
    };
    cosign::signatures(&manifest)
        .map(|layer| {
            (
                layer.digest().to_string(),
                check_layer(set, layer, signable, policy),
            )
        })
        .collect()
}

fn check_layer(
    set: &SignatureSet,
    layer: &crate::oci::Descriptor,
    signable: &[Digest],
    policy: &Policy,
) -> std::result::Result<Digest, Rejection> {
    let digest = crate::oci::digest_of(layer)
        .map_err(|_| Rejection::LayerDigest(layer.digest().to_string()))?;
    let payload = set.blobs.get(&digest).ok_or(Rejection::PayloadMissing)?;
    if Digest::of_bytes(payload) != digest || payload.len() as u64 != layer.size() {
        return Err(Rejection::PayloadDigest);
    }
    let signed = cosign::Payload::signed_digest(payload)?;
    if !signable.contains(&signed) {
        return Err(Rejection::SignsAnother(signed));
    }
    let annotation = |key| crate::oci::annotation(layer, key);
    let signature = annotation(cosign::SIGNATURE_ANNOTATION).ok_or(Rejection::NoSignature)?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| Rejection::SignatureNotBase64)?;
    let key = match policy {
        Policy::Key { key, .. } => key.clone(),
        Policy::Keyless { identity, root } => {
            let cert =
                annotation(cosign::CERTIFICATE_ANNOTATION).ok_or(Rejection::NoCertificate)?;
            // With log keys configured, the certificate must have been
            // valid when the log recorded the signature; without, now.
            let time = if root.log_keys.is_empty() {
                rustls_pki_types::UnixTime::now()
            } else {
                let bundle = annotation(cosign::BUNDLE_ANNOTATION).ok_or(Rejection::NoLogBundle)?;
                let der = rekor::pem_der(cert.as_bytes())
                    .ok_or(Rejection::CertificateAnnotationNotPem)?;
                let secs = rekor::verify_bundle(bundle, &root.log_keys, payload, &signature, &der)?;
                rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs))
            };
            keyless::verify_certificate(
                cert,
                annotation(cosign::CHAIN_ANNOTATION),
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
        let parsed = cosign::parse_manifest(&m.bytes, &digest.to_string())?;
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
fn payloads(manifest: &crate::oci::ImageManifest) -> Vec<(Digest, u64)> {
    let mut out: Vec<(Digest, u64)> = Vec::new();
    for layer in cosign::signatures(manifest) {
        let Ok(d) = crate::oci::digest_of(layer) else {
            continue;
        };
        if layer.size() <= MAX_PAYLOAD && !out.iter().any(|(seen, _)| *seen == d) {
            out.push((d, layer.size()));
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
mod tests;
