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
    /// why not, per signature layer (each once, in the order of their
    /// text).
    #[error(
        "{image} ({digest}) has no valid signature by {required}: {}",
        rejected.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    NoValidSignature {
        image: String,
        digest: Digest,
        required: String,
        rejected: Vec<Rejected>,
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

/// One signature layer that does not count, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {why}", short(layer))]
pub struct Rejected {
    /// The layer's digest as the signature manifest names it (or the
    /// signature manifest's, when the whole manifest is refused).
    pub layer: String,
    #[source]
    pub why: Rejection,
}

/// `signature <12 hex>` for a sha256 digest, else the text as it is.
fn short(layer: &str) -> String {
    layer
        .strip_prefix("sha256:")
        .map_or(layer.to_string(), |h| {
            format!("signature {}", &h[..12.min(h.len())])
        })
}

/// Why a signature does not count for an image under a policy.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    // The signature manifest and layer.
    #[error("signature manifest does not match its digest")]
    ManifestDigest,
    #[error(transparent)]
    Manifest(Box<SignatureError>),
    #[error("layer digest `{0}` is malformed")]
    LayerDigest(String),
    #[error("payload blob is missing")]
    PayloadMissing,
    #[error("payload does not match its digest")]
    PayloadDigest,
    #[error("no signature annotation")]
    NoSignature,
    #[error("signature annotation is not base64")]
    SignatureNotBase64,

    // The simple-signing payload.
    #[error("payload is malformed: {0}")]
    PayloadMalformed(#[source] serde_json::Error),
    #[error("payload type is `{found}`, not `{wanted}`")]
    PayloadType { found: String, wanted: &'static str },
    #[error("payload names `{0}`, not a sha256 digest")]
    PayloadSubject(String),
    /// The payload signs another digest than the image's (or its index's).
    #[error("signs {0}, another image")]
    SignsAnother(Digest),

    // The signature itself.
    #[error("signed with another key")]
    WrongKey,
    #[error("signature does not verify with its certificate")]
    CertificateKeyFails,

    // Keyless: the certificate and the identity in it.
    #[error("signed with a key, not a certificate")]
    NoCertificate,
    #[error("certificate annotation is not PEM")]
    CertificateAnnotationNotPem,
    #[error("certificate is not PEM: {0}")]
    CertificateNotPem(#[source] spki::der::Error),
    #[error("certificate does not re-encode: {0}")]
    CertificateEncoding(#[source] spki::der::Error),
    #[error("certificate chain is not PEM: {0}")]
    ChainNotPem(#[source] spki::der::Error),
    #[error("chain certificate does not re-encode: {0}")]
    ChainEncoding(#[source] spki::der::Error),
    #[error("certificate is not a valid end-entity certificate: {0:?}")]
    NotEndEntity(#[source] webpki::Error),
    /// The certificate does not chain to the policy's root, or not for
    /// code signing, or not at the time checked.
    #[error("certificate does not chain to trusted root {root} for code signing: {source:?}")]
    Untrusted { root: String, source: webpki::Error },
    /// The certificate is someone else's: `found` its email and URI SANs.
    #[error(
        "certificate is for {}, not {wanted}",
        if found.is_empty() { "no email or URI".to_string() } else { found.join(", ") }
    )]
    WrongSubject { found: Vec<String>, wanted: String },
    /// The certificate vouches through another OIDC issuer.
    #[error("certificate was issued for OIDC issuer {found}, not {wanted}")]
    WrongIssuer { found: String, wanted: String },
    #[error("certificate names no OIDC issuer (Fulcio extension)")]
    NoIssuer,
    #[error("certificate SAN is malformed: {0}")]
    SanMalformed(#[source] spki::der::Error),
    #[error("certificate OIDC issuer extension is malformed: {0}")]
    IssuerMalformed(#[source] spki::der::Error),
    #[error("certificate OIDC issuer (legacy) is not UTF-8")]
    LegacyIssuerNotUtf8,
    #[error("certificate key does not re-encode: {0}")]
    KeyEncoding(#[source] spki::der::Error),
    #[error(transparent)]
    CertificateKey(Box<SignatureError>),

    // Keyless with a transparency log: the Rekor bundle.
    #[error("no transparency-log bundle, and the trusted root has a log")]
    NoLogBundle,
    #[error("Rekor bundle is malformed: {0}")]
    BundleMalformed(#[source] serde_json::Error),
    #[error("Rekor bundle is from log {0}, not a trusted one")]
    UntrustedLog(String),
    #[error("Rekor SET is not base64")]
    SetNotBase64,
    #[error("Rekor SET does not verify with the log's key")]
    SetFails,
    #[error("Rekor entry body is not base64")]
    BodyNotBase64,
    #[error("Rekor entry body is malformed: {0}")]
    BodyMalformed(#[source] serde_json::Error),
    #[error("Rekor entry is a {kind} over {algorithm}, not a hashedrekord over sha256")]
    EntryKind { kind: String, algorithm: String },
    #[error("Rekor entry is for another payload")]
    OtherPayload,
    #[error("Rekor entry is for another signature")]
    OtherSignature,
    #[error("Rekor entry's key is not base64")]
    EntryKeyNotBase64,
    #[error("Rekor entry is for another signer")]
    OtherSigner,
    #[error("Rekor integrated time is negative")]
    NegativeTime,
}
