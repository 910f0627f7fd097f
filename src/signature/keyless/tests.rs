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
