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
pub(crate) mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    use std::process::Command;

    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A CA and a code-signing leaf with `extensions` (openssl x509v3
    /// config lines), made with openssl in a temp dir.
    pub(crate) struct Fixture {
        pub(crate) dir: tempfile::TempDir,
    }

    impl Fixture {
        pub(crate) fn new(leaf_extensions: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path();
            for ca in ["ca", "other-ca"] {
                openssl(
                    p,
                    &[
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-256",
                        "-nodes",
                        "-days",
                        "30",
                        "-subj",
                        &format!("/CN={ca}"),
                        "-keyout",
                        &format!("{ca}.key"),
                        "-out",
                        &format!("{ca}.pem"),
                        "-addext",
                        "basicConstraints=critical,CA:TRUE",
                        "-addext",
                        "keyUsage=critical,keyCertSign",
                    ],
                );
            }
            openssl(
                p,
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-subj",
                    "/",
                    "-keyout",
                    "leaf.key",
                    "-out",
                    "leaf.csr",
                ],
            );
            std::fs::write(
                p.join("leaf.cnf"),
                format!(
                    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n{leaf_extensions}\n"
                ),
            )
            .unwrap();
            openssl(
                p,
                &[
                    "x509",
                    "-req",
                    "-in",
                    "leaf.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "30",
                    "-extfile",
                    "leaf.cnf",
                    "-out",
                    "leaf.pem",
                ],
            );
            Fixture { dir }
        }

        pub(crate) fn read(&self, name: &str) -> String {
            std::fs::read_to_string(self.dir.path().join(name)).unwrap()
        }

        fn root(&self, name: &str) -> TrustRoot {
            TrustRoot::read(&self.dir.path().join(name)).unwrap()
        }

        fn check(
            &self,
            root: &str,
            subject: impl Into<SubjectMatch>,
            issuer: &str,
        ) -> std::result::Result<PublicKey, String> {
            self.check_typed(root, subject, issuer)
                .map_err(|e| e.to_string())
        }

        fn check_typed(
            &self,
            root: &str,
            subject: impl Into<SubjectMatch>,
            issuer: &str,
        ) -> std::result::Result<PublicKey, Rejection> {
            verify_certificate(
                &self.read("leaf.pem"),
                Some(&self.read("ca.pem")),
                &self.root(root),
                &Identity {
                    issuer: issuer.into(),
                    subject: subject.into(),
                },
                UnixTime::now(),
            )
        }
    }

    pub(crate) const FULCIO_LIKE: &str = "extendedKeyUsage=codeSigning\nsubjectAltName=critical,email:signer@pgoci.test\n1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:https://issuer.pgoci.test";

    #[test]
    fn the_required_identity_under_the_root_gives_the_leaf_key() {
        let f = Fixture::new(FULCIO_LIKE);
        let key = f
            .check("ca.pem", "signer@pgoci.test", "https://issuer.pgoci.test")
            .unwrap();
        // The key is the leaf's: what the leaf's private key signs verifies.
        let pem = f.read("leaf.key");
        let der = base64::engine::general_purpose::STANDARD
            .decode(
                pem.lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der, &rng).unwrap();
        let sig = pair.sign(&rng, b"payload").unwrap();
        assert!(key.verifies(b"payload", sig.as_ref()));
    }

    #[test]
    fn a_subject_pattern_must_match_the_whole_san() {
        let f = Fixture::new(FULCIO_LIKE);
        let issuer = "https://issuer.pgoci.test";
        let pattern = |p: &str| SubjectMatch::pattern(p).unwrap();
        f.check("ca.pem", pattern(r"signer@pgoci\.test"), issuer)
            .unwrap();
        f.check("ca.pem", pattern(r"[a-z]+@pgoci\.test"), issuer)
            .unwrap();
        // Anchored: a pattern matching only part of the SAN is refused.
        for partial in ["signer", r"pgoci\.test", "signer@pgoci.tes"] {
            let err = f.check("ca.pem", pattern(partial), issuer).unwrap_err();
            assert!(err.contains("subject matching"), "{partial}: {err}");
        }
        assert!(SubjectMatch::pattern("(").is_err());
    }

    #[test]
    fn another_subject_issuer_or_root_is_refused() {
        let f = Fixture::new(FULCIO_LIKE);
        let err = f
            .check("ca.pem", "mallory@pgoci.test", "https://issuer.pgoci.test")
            .unwrap_err();
        assert!(
            err.contains("signer@pgoci.test, not mallory@pgoci.test"),
            "{err}"
        );
        let err = f
            .check("ca.pem", "signer@pgoci.test", "https://other.example")
            .unwrap_err();
        assert!(err.contains("not https://other.example"), "{err}");
        let err = f
            .check(
                "other-ca.pem",
                "signer@pgoci.test",
                "https://issuer.pgoci.test",
            )
            .unwrap_err();
        assert!(err.contains("does not chain to trusted root"), "{err}");
    }

    #[test]
    fn refusals_of_a_certificate_are_typed() {
        let f = Fixture::new(FULCIO_LIKE);
        let issuer = "https://issuer.pgoci.test";
        match f.check_typed("ca.pem", "mallory@pgoci.test", issuer) {
            Err(Rejection::WrongSubject { found, wanted }) => {
                assert_eq!(found, ["signer@pgoci.test"]);
                assert_eq!(wanted, "mallory@pgoci.test");
            }
            other => panic!("{other:?}"),
        }
        match f.check_typed("ca.pem", "signer@pgoci.test", "https://other.example") {
            Err(Rejection::WrongIssuer { found, wanted }) => {
                assert_eq!(
                    (found.as_str(), wanted.as_str()),
                    (issuer, "https://other.example")
                );
            }
            other => panic!("{other:?}"),
        }
        match f.check_typed("other-ca.pem", "signer@pgoci.test", issuer) {
            Err(Rejection::Untrusted { root, .. }) => assert!(root.ends_with("other-ca.pem")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn legacy_issuer_and_uri_subjects_are_read() {
        // 1.3.6.1.4.1.57264.1.1 holds the raw issuer string, not DER.
        let raw = hex::encode("https://token.actions.githubusercontent.com");
        let f = Fixture::new(&format!(
            "extendedKeyUsage=codeSigning\nsubjectAltName=critical,URI:https://github.com/o/r/.github/workflows/w.yml@refs/heads/main\n1.3.6.1.4.1.57264.1.1=DER:{raw}"
        ));
        f.check(
            "ca.pem",
            "https://github.com/o/r/.github/workflows/w.yml@refs/heads/main",
            "https://token.actions.githubusercontent.com",
        )
        .unwrap();
    }

    #[test]
    fn a_certificate_not_for_code_signing_is_refused() {
        let f = Fixture::new(
            "extendedKeyUsage=serverAuth\nsubjectAltName=critical,email:signer@pgoci.test\n1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:https://issuer.pgoci.test",
        );
        let err = f
            .check("ca.pem", "signer@pgoci.test", "https://issuer.pgoci.test")
            .unwrap_err();
        assert!(err.contains("code signing"), "{err}");
    }

    #[test]
    fn a_trusted_root_json_is_read() {
        let f = Fixture::new(FULCIO_LIKE);
        let der = Certificate::load_pem_chain(f.read("ca.pem").as_bytes()).unwrap()[0]
            .to_der()
            .unwrap();
        let json = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "certificateAuthorities": [{
                "subject": {"organization": "t", "commonName": "ca"},
                "uri": "https://fulcio.example",
                "certChain": {"certificates": [
                    {"rawBytes": base64::engine::general_purpose::STANDARD.encode(&der)}
                ]},
                "validFor": {"start": "2020-01-01T00:00:00Z"}
            }]
        });
        let path = f.dir.path().join("trusted_root.json");
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        f.check(
            "trusted_root.json",
            "signer@pgoci.test",
            "https://issuer.pgoci.test",
        )
        .unwrap();
        let err = TrustRoot::parse(b"{\"certificateAuthorities\": []}", "empty.json").unwrap_err();
        assert_eq!(err.kind, crate::Kind::Usage);
    }
}
