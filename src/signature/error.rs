//! What goes wrong with signatures: a key or trusted root that cannot be
//! used (exit 2), a policy that cannot be met (exit 3), an image that is
//! unsigned or whose signatures do not verify (exit 5).

use crate::digest::Digest;
use crate::error::{Classify, Error, Kind};
use spki::ObjectIdentifier;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// A public key file cannot be read.
    #[error("cannot read public key {}: {source}", path.display())]
    KeyUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not a PEM `PUBLIC KEY` block; `origin` names where it came from.
    #[error("{origin} is not a PEM public key (-----BEGIN PUBLIC KEY-----): {source}")]
    NotPem {
        origin: String,
        source: spki::der::Error,
    },
    /// A DER key (of a certificate, of a transparency log) that is none.
    #[error("{origin} holds no valid public key: {source}")]
    NotAKey {
        origin: String,
        source: spki::der::Error,
    },
    #[error("{origin}: cannot re-encode the key: {source}")]
    KeyEncoding {
        origin: String,
        source: spki::der::Error,
    },
    /// An elliptic-curve key on a curve cosign does not sign with.
    #[error(
        "{origin}: unsupported elliptic curve {}; pgoci verifies P-256, P-384, Ed25519 and RSA keys",
        curve.map_or("(none)".to_string(), |c| c.to_string())
    )]
    UnsupportedCurve {
        origin: String,
        curve: Option<ObjectIdentifier>,
    },
    #[error(
        "{origin}: unsupported key algorithm {algorithm}; pgoci verifies P-256, P-384, Ed25519 and RSA keys"
    )]
    UnsupportedAlgorithm {
        origin: String,
        algorithm: ObjectIdentifier,
    },
    /// A trusted root file cannot be read.
    #[error("cannot read trusted root {}: {source}", path.display())]
    TrustRootUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A trusted root that is neither form.
    #[error(
        "trusted root {origin} is neither a PEM CA bundle nor a Sigstore trusted_root.json: {defect}"
    )]
    BadTrustRoot {
        origin: String,
        #[source]
        defect: TrustRootDefect,
    },
    /// A keyless policy without an issuer or a subject.
    #[error("keyless signatures need both an issuer and a subject")]
    IncompleteIdentity,
    /// A profile's `keyless:` with both or neither of `subject` and
    /// `subject_regexp`.
    #[error("signatures.keyless needs exactly one of subject and subject_regexp")]
    AmbiguousSubject,
    /// A `subject_regexp` that is not one.
    #[error(
        "signature subject pattern {pattern:?} is not a regular expression: {}",
        source.to_string().lines().last().unwrap_or_default()
    )]
    BadSubjectPattern {
        pattern: String,
        source: regex::Error,
    },
    /// The directory relative paths of an embedded profile are read from.
    #[error("cannot read the current directory: {source}")]
    CurrentDir { source: std::io::Error },
    /// A signature manifest that is not JSON of the expected shape.
    #[error("signature manifest {origin} is malformed: {source}")]
    ManifestMalformed {
        origin: String,
        source: serde_json::Error,
    },
    /// The index a signature may cover is not the one named.
    #[error("image index of {image} does not match its digest {index}")]
    IndexDigest { image: String, index: Digest },
    #[error("image index of {image} is malformed: {source}")]
    IndexMalformed {
        image: String,
        source: serde_json::Error,
    },
    /// The index does not list the platform manifest, so a signature over
    /// it says nothing of it.
    #[error("image index {index} of {image} does not list {digest}")]
    IndexOmits {
        image: String,
        index: Digest,
        digest: Digest,
    },
    /// No cosign signature at all; `required` is the policy's signer.
    #[error("{image} ({digest}) is not signed: no cosign signature found; required: {required}")]
    Unsigned {
        image: String,
        digest: Digest,
        required: String,
    },
    /// Signatures, but none by the required signer over this image:
    /// why not, per signature layer (`signature <12 hex>: why`).
    #[error(
        "{image} ({digest}) has no valid signature by {required}: {}",
        reasons.join("; ")
    )]
    NoValidSignature {
        image: String,
        digest: Digest,
        required: String,
        reasons: Vec<String>,
    },
    /// The signature a lock records cannot be read from the cache or
    /// bundle.
    #[error("signature of {image} ({digest}) cannot be read: {}", source.message)]
    Unreadable {
        image: String,
        digest: Digest,
        source: Box<Error>,
    },
}

/// Why a trusted root file is neither a PEM CA bundle nor a Sigstore
/// `trusted_root.json`.
#[derive(Debug, thiserror::Error)]
pub enum TrustRootDefect {
    #[error("{0}")]
    Json(#[source] serde_json::Error),
    #[error("rawBytes is not base64: {0}")]
    RawBytes(#[source] base64::DecodeError),
    #[error("a tlog key is not base64: {0}")]
    TlogKey(#[source] base64::DecodeError),
    #[error("{0}")]
    Pem(#[source] spki::der::Error),
    #[error("it holds no certificate authority")]
    Empty,
    #[error("a certificate is not usable as a trust anchor: {0:?}")]
    Anchor(#[source] webpki::Error),
}

impl Classify for SignatureError {
    fn kind(&self) -> Kind {
        use SignatureError::*;
        match self {
            KeyUnreadable { .. }
            | NotPem { .. }
            | KeyEncoding { .. }
            | UnsupportedCurve { .. }
            | UnsupportedAlgorithm { .. }
            | TrustRootUnreadable { .. }
            | BadTrustRoot { .. }
            | IncompleteIdentity => Kind::Usage,
            AmbiguousSubject | BadSubjectPattern { .. } => Kind::Resolve,
            CurrentDir { .. } => Kind::Host,
            NotAKey { .. }
            | ManifestMalformed { .. }
            | IndexDigest { .. }
            | IndexMalformed { .. }
            | IndexOmits { .. }
            | Unsigned { .. }
            | NoValidSignature { .. }
            | Unreadable { .. } => Kind::Integrity,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            SignatureError::Unsigned { .. } => Some(
                "sign it with `cosign sign`, or drop the signature requirement for this image"
                    .into(),
            ),
            _ => None,
        }
    }
}
