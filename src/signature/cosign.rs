//! cosign's on-registry formats: where signatures live (`sha256-<hex>.sig`
//! tags, OCI 1.1 referrers), what a signature manifest looks like, and the
//! "simple signing" payload a signature covers. Pure parsing: no crypto and
//! no network here.

use super::error::{Rejection, SignatureError};
use crate::digest::Digest;
use crate::oci::{Descriptor, ImageManifest};
use serde::Deserialize;

/// Media type of a cosign signature layer (its blob is the payload).
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Artifact type of a signature manifest pushed as an OCI 1.1 referrer.
pub const SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// Layer annotation: base64 signature over the layer's blob.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Layer annotations of keyless signatures: the signing certificate and
/// its chain, PEM.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// Layer annotation: the Rekor bundle (transparency-log entry and SET).
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// The payload's `critical.type`.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

/// The tag cosign pushes the signatures of `digest` under.
pub fn signature_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// Reads a signature manifest: an image manifest (oci-spec's
/// [`ImageManifest`]) whose layers include the signatures.
pub fn parse_manifest(bytes: &[u8], origin: &str) -> Result<ImageManifest, SignatureError> {
    serde_json::from_slice(bytes).map_err(|source| SignatureError::ManifestMalformed {
        origin: origin.to_string(),
        source,
    })
}

/// The layers of a signature manifest that are cosign signatures.
pub fn signatures(manifest: &ImageManifest) -> impl Iterator<Item = &Descriptor> {
    manifest
        .layers()
        .iter()
        .filter(|l| l.media_type().as_ref() == SIMPLE_SIGNING)
}

/// The simple-signing payload: what a cosign signature says.
#[derive(Debug, Deserialize)]
pub struct Payload {
    pub critical: Critical,
}

#[derive(Debug, Deserialize)]
pub struct Critical {
    pub image: PayloadImage,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Deserialize)]
pub struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl Payload {
    /// Parses a payload and returns the digest it signs.
    pub fn signed_digest(bytes: &[u8]) -> Result<Digest, Rejection> {
        let payload: Payload =
            serde_json::from_slice(bytes).map_err(Rejection::PayloadMalformed)?;
        if payload.critical.kind != PAYLOAD_TYPE {
            return Err(Rejection::PayloadType {
                found: payload.critical.kind,
                wanted: PAYLOAD_TYPE,
            });
        }
        let named = payload.critical.image.docker_manifest_digest;
        named.parse().map_err(|_| Rejection::PayloadSubject(named))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_names_its_digest() {
        let d = Digest::of_bytes(b"m");
        let p = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"r/x"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"{PAYLOAD_TYPE}"}},"optional":null}}"#
        );
        assert_eq!(Payload::signed_digest(p.as_bytes()).unwrap(), d);
        let wrong = p.replace(PAYLOAD_TYPE, "something else");
        assert!(Payload::signed_digest(wrong.as_bytes()).is_err());
        assert!(Payload::signed_digest(b"{}").is_err());
        match Payload::signed_digest(wrong.as_bytes()) {
            Err(Rejection::PayloadType { found, .. }) => assert_eq!(found, "something else"),
            other => panic!("{other:?}"),
        }
        let unnamed = p.replace(&d.to_string(), "latest");
        let err = Payload::signed_digest(unnamed.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload names `latest`, not a sha256 digest"
        );
    }

    #[test]
    fn tag_scheme() {
        let d = Digest::of_bytes(b"m");
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", d.hex()));
    }
}
