//! Keyless (Fulcio-style) signatures: the signature layer carries the
//! signing certificate and its chain. A signature counts when that
//! certificate chains to a configured trusted root (path building and
//! certificate signatures by `rustls-webpki`), is for code signing, names
//! the required subject (email or URI SAN) and issuer (Fulcio's OIDC
//! issuer extension), and its key verifies the signature.

use super::error::{Rejection, SignatureError, TrustRootDefect};
use super::key::PublicKey;
use crate::error::Result;
use base64::Engine as _;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::Deserialize;
use spki::der::{Decode, Encode};
use spki::ObjectIdentifier;
use std::path::Path;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

const SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
/// Fulcio's OIDC issuer, legacy form: the extension value is the raw string.
const ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio's OIDC issuer, current form: a DER UTF8String.
const ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER value bytes, as webpki wants it.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// Who must have signed: the certificate's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The OIDC issuer, e.g. `https://accounts.google.com`.
    pub issuer: String,
    /// The SAN: an email address or a URI (a CI workflow).
    pub subject: SubjectMatch,
}

/// The SAN a certificate must carry: exactly this one, or any the pattern
/// matches whole (a CI workflow at any ref, as cosign's
/// `--certificate-identity-regexp`, but anchored at both ends so a
/// pattern cannot match a prefix of someone else's workflow by accident).
#[derive(Debug, Clone)]
pub enum SubjectMatch {
    Exact(String),
    Pattern(regex::Regex),
}

impl SubjectMatch {
    /// A pattern (Rust `regex` syntax), anchored; a bad one is exit 3.
    pub fn pattern(text: &str) -> crate::error::Result<Self> {
        regex::Regex::new(&format!("^(?:{text})$"))
            .map(SubjectMatch::Pattern)
            .map_err(|source| {
                SignatureError::BadSubjectPattern {
                    pattern: text.to_string(),
                    source,
                }
                .into()
            })
    }

    pub fn matches(&self, san: &str) -> bool {
        match self {
            SubjectMatch::Exact(s) => s == san,
            SubjectMatch::Pattern(re) => re.is_match(san),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, SubjectMatch::Exact(s) if s.is_empty())
    }
}

impl From<&str> for SubjectMatch {
    fn from(s: &str) -> Self {
        SubjectMatch::Exact(s.to_string())
    }
}

impl PartialEq for SubjectMatch {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for SubjectMatch {}

impl std::fmt::Display for SubjectMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubjectMatch::Exact(s) => f.write_str(s),
            SubjectMatch::Pattern(re) => write!(f, "subject matching {}", re.as_str()),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (issuer {})", self.subject, self.issuer)
    }
}

/// The certificate authorities keyless signatures must chain to.
#[derive(Debug, Clone)]
pub struct TrustRoot {
    /// Where it was read from, for messages.
    pub origin: String,
    anchors: Vec<Vec<u8>>,
    intermediates: Vec<Vec<u8>>,
    /// Transparency-log (Rekor) keys from a `trusted_root.json`: when
    /// there are any, a keyless signature needs a bundle signed by one.
    pub log_keys: Vec<PublicKey>,
}

/// The parts of a Sigstore `trusted_root.json` pgoci reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrustedRootJson {
    #[serde(default)]
    certificate_authorities: Vec<CertificateAuthority>,
    #[serde(default)]
    tlogs: Vec<Tlog>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tlog {
    public_key: RawCert,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CertificateAuthority {
    cert_chain: CertChain,
}

#[derive(Deserialize)]
struct CertChain {
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

impl TrustRoot {
    /// Reads a PEM CA bundle (every certificate is trusted) or a Sigstore
    /// `trusted_root.json` (each authority's last certificate is the
    /// anchor, the ones before it intermediates).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| SignatureError::TrustRootUnreadable {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes, &path.display().to_string())
    }

    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self> {
        let bad = |defect: TrustRootDefect| SignatureError::BadTrustRoot {
            origin: origin.to_string(),
            defect,
        };
        let mut root = TrustRoot {
            origin: origin.to_string(),
            anchors: Vec::new(),
            intermediates: Vec::new(),
            log_keys: Vec::new(),
        };
        if bytes.trim_ascii_start().starts_with(b"{") {
            let doc: TrustedRootJson =
                serde_json::from_slice(bytes).map_err(|e| bad(TrustRootDefect::Json(e)))?;
            for ca in doc.certificate_authorities {
                let mut ders = ca
                    .cert_chain
                    .certificates
                    .iter()
                    .map(|c| {
                        base64::engine::general_purpose::STANDARD
                            .decode(&c.raw_bytes)
                            .map_err(|e| bad(TrustRootDefect::RawBytes(e)).into())
                    })
                    .collect::<Result<Vec<_>>>()?;
                if let Some(anchor) = ders.pop() {
                    root.anchors.push(anchor);
                    root.intermediates.extend(ders);
                }
            }
            for tlog in doc.tlogs {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(&tlog.public_key.raw_bytes)
                    .map_err(|e| bad(TrustRootDefect::TlogKey(e)))?;
                root.log_keys.push(PublicKey::from_spki_der(
                    &der,
                    &format!("a tlog key of {origin}"),
                )?);
            }
        } else {
            let certs =
                Certificate::load_pem_chain(bytes).map_err(|e| bad(TrustRootDefect::Pem(e)))?;
            for cert in certs {
                root.anchors
                    .push(cert.to_der().map_err(|e| bad(TrustRootDefect::Pem(e)))?);
            }
        }
        if root.anchors.is_empty() {
            return Err(bad(TrustRootDefect::Empty).into());
        }
        // Fail now, not at the first signature, on an anchor webpki rejects.
        for der in &root.anchors {
            webpki::anchor_from_trusted_cert(&CertificateDer::from(der.as_slice()))
                .map_err(|e| bad(TrustRootDefect::Anchor(e)))?;
        }
        Ok(root)
    }
}

/// Checks a signing certificate (PEM, with its PEM chain as the signature
/// layer carries them) against the root and the required identity, at
/// `time`; returns its key. Errors say why, for the caller's message.
pub fn verify_certificate(
    cert_pem: &str,
    chain_pem: Option<&str>,
    root: &TrustRoot,
    identity: &Identity,
    time: UnixTime,
) -> std::result::Result<PublicKey, Rejection> {
    use spki::der::DecodePem;
    let cert =
        Certificate::from_pem(cert_pem.trim().as_bytes()).map_err(Rejection::CertificateNotPem)?;
    let leaf_der = cert.to_der().map_err(Rejection::CertificateEncoding)?;
    let mut intermediates: Vec<CertificateDer<'_>> = root
        .intermediates
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    // The chain annotation is untrusted: only path building uses it.
    if let Some(chain) = chain_pem {
        for c in Certificate::load_pem_chain(chain.as_bytes()).map_err(Rejection::ChainNotPem)? {
            let der = c.to_der().map_err(Rejection::ChainEncoding)?;
            intermediates.push(CertificateDer::from(der));
        }
    }
    let anchors: Vec<TrustAnchor<'_>> = root
        .anchors
        .iter()
        .map(|d| {
            webpki::anchor_from_trusted_cert(&CertificateDer::from(d.as_slice()))
                .expect("checked when the root was read")
                .to_owned()
        })
        .collect();
    let leaf = CertificateDer::from(leaf_der.as_slice());
    let end_entity = webpki::EndEntityCert::try_from(&leaf).map_err(Rejection::NotEndEntity)?;
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            time,
            webpki::KeyUsage::required(CODE_SIGNING),
            None,
            None,
        )
        .map_err(|source| Rejection::Untrusted {
            root: root.origin.clone(),
            source,
        })?;
    let (subjects, issuer) = identity_of(&cert)?;
    if !subjects.iter().any(|s| identity.subject.matches(s)) {
        return Err(Rejection::WrongSubject {
            found: subjects,
            wanted: identity.subject.to_string(),
        });
    }
    match issuer {
        Some(i) if i == identity.issuer => {}
        Some(found) => {
            return Err(Rejection::WrongIssuer {
                found,
                wanted: identity.issuer.clone(),
            })
        }
        None => return Err(Rejection::NoIssuer),
    }
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(Rejection::KeyEncoding)?;
    PublicKey::from_spki_der(&spki, "the signing certificate")
        .map_err(|e| Rejection::CertificateKey(Box::new(e)))
}

/// The email and URI SANs and the Fulcio OIDC issuer of a certificate.
fn identity_of(
    cert: &Certificate,
) -> std::result::Result<(Vec<String>, Option<String>), Rejection> {
    let mut subjects = Vec::new();
    let mut issuer_v1 = None;
    let mut issuer_v2 = None;
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let value = ext.extn_value.as_bytes();
        if ext.extn_id == SAN {
            let san = SubjectAltName::from_der(value).map_err(Rejection::SanMalformed)?;
            for name in san.0 {
                match name {
                    GeneralName::Rfc822Name(s) | GeneralName::UniformResourceIdentifier(s) => {
                        subjects.push(s.to_string())
                    }
                    _ => {}
                }
            }
        } else if ext.extn_id == ISSUER_V2 {
            let s = spki::der::asn1::Utf8StringRef::from_der(value)
                .map_err(Rejection::IssuerMalformed)?;
            issuer_v2 = Some(s.as_str().to_string());
        } else if ext.extn_id == ISSUER_V1 {
            issuer_v1 = Some(
                String::from_utf8(value.to_vec()).map_err(|_| Rejection::LegacyIssuerNotUtf8)?,
            );
        }
    }
    Ok((subjects, issuer_v2.or(issuer_v1)))
}

#[cfg(test)]
pub(crate) mod tests;
