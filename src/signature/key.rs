//! Public keys as cosign writes them (`cosign.pub`: a PEM
//! `SubjectPublicKeyInfo`) and signature checks with them. Parsing is
//! `spki`'s, the arithmetic `ring`'s; this module only maps one onto the
//! other, the way cosign pairs keys with hashes.

use super::error::SignatureError;
use crate::digest::Digest;
use crate::error::Result;
use ring::signature::{self as rs, UnparsedPublicKey, VerificationAlgorithm};
use spki::der::{Decode, DecodePem, Encode};
use spki::{ObjectIdentifier, SubjectPublicKeyInfoOwned};
use std::path::Path;

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// The key types cosign signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa,
}

/// A verification key.
#[derive(Clone)]
pub struct PublicKey {
    algorithm: Algorithm,
    /// What ring wants: the EC point, the Ed25519 key, or PKCS#1 RSAPublicKey.
    raw: Vec<u8>,
    /// sha256 of the DER SubjectPublicKeyInfo: the key's name in locks and messages.
    fingerprint: Digest,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({:?}, {})", self.algorithm, self.fingerprint)
    }
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` block (cosign.pub); `origin` names it in errors.
    pub fn from_pem(pem: &str, origin: &str) -> Result<Self> {
        let spki =
            SubjectPublicKeyInfoOwned::from_pem(pem.trim().as_bytes()).map_err(|source| {
                SignatureError::NotPem {
                    origin: origin.to_string(),
                    source,
                }
            })?;
        Ok(Self::from_spki(&spki, origin)?)
    }

    /// Parses a DER SubjectPublicKeyInfo (the key of a certificate).
    pub fn from_spki_der(der: &[u8], origin: &str) -> Result<Self, SignatureError> {
        let spki =
            SubjectPublicKeyInfoOwned::from_der(der).map_err(|source| SignatureError::NotAKey {
                origin: origin.to_string(),
                source,
            })?;
        Self::from_spki(&spki, origin)
    }

    /// Reads a key file.
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SignatureError::KeyUnreadable {
                path: path.to_path_buf(),
                source,
            })?;
        Self::from_pem(&text, &format!("public key {}", path.display()))
    }

    fn from_spki(spki: &SubjectPublicKeyInfoOwned, origin: &str) -> Result<Self, SignatureError> {
        let der = spki
            .to_der()
            .map_err(|source| SignatureError::KeyEncoding {
                origin: origin.to_string(),
                source,
            })?;
        let oid = spki.algorithm.oid;
        let algorithm = if oid == EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            match curve {
                Some(c) if c == P256 => Algorithm::EcdsaP256,
                Some(c) if c == P384 => Algorithm::EcdsaP384,
                curve => {
                    return Err(SignatureError::UnsupportedCurve {
                        origin: origin.to_string(),
                        curve,
                    })
                }
            }
        } else if oid == ED25519 {
            Algorithm::Ed25519
        } else if oid == RSA {
            Algorithm::Rsa
        } else {
            return Err(SignatureError::UnsupportedAlgorithm {
                origin: origin.to_string(),
                algorithm: oid,
            });
        };
        let raw = spki.subject_public_key.raw_bytes().to_vec();
        Ok(PublicKey {
            algorithm,
            raw,
            fingerprint: Digest::of_bytes(&der),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// `sha256:<hex>` of the key's DER SubjectPublicKeyInfo.
    pub fn fingerprint(&self) -> &Digest {
        &self.fingerprint
    }

    /// Whether `signature` signs `message` with this key. cosign hashes
    /// with SHA-256 whatever the key (a P-384 key included); a P-384
    /// signature over SHA-384 and RSA-PSS are accepted too, as other
    /// Sigstore clients make them.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let algorithms: &[&'static dyn VerificationAlgorithm] = match self.algorithm {
            Algorithm::EcdsaP256 => &[&rs::ECDSA_P256_SHA256_ASN1],
            Algorithm::EcdsaP384 => &[&rs::ECDSA_P384_SHA256_ASN1, &rs::ECDSA_P384_SHA384_ASN1],
            Algorithm::Ed25519 => &[&rs::ED25519],
            Algorithm::Rsa => &[
                &rs::RSA_PKCS1_2048_8192_SHA256,
                &rs::RSA_PSS_2048_8192_SHA256,
            ],
        };
        algorithms.iter().any(|alg| {
            UnparsedPublicKey::new(*alg, &self.raw)
                .verify(message, signature)
                .is_ok()
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    /// Wraps a raw key into a PEM SubjectPublicKeyInfo, as cosign.pub is.
    pub(crate) fn spki_pem(algorithm: spki::AlgorithmIdentifierOwned, raw: &[u8]) -> String {
        use spki::der::EncodePem;
        let spki = SubjectPublicKeyInfoOwned {
            algorithm,
            subject_public_key: spki::der::asn1::BitString::from_bytes(raw).unwrap(),
        };
        spki.to_pem(spki::der::pem::LineEnding::LF).unwrap()
    }

    pub(crate) fn p256_pair() -> (EcdsaKeyPair, String) {
        let rng = SystemRandom::new();
        let alg = &rs::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let pem = spki_pem(
            spki::AlgorithmIdentifierOwned {
                oid: EC_PUBLIC_KEY,
                parameters: Some(spki::der::Any::encode_from(&P256).unwrap()),
            },
            pair.public_key().as_ref(),
        );
        (pair, pem)
    }

    #[test]
    fn p256_signatures_verify_and_others_do_not() {
        let (pair, pem) = p256_pair();
        let key = PublicKey::from_pem(&pem, "test key").unwrap();
        assert_eq!(key.algorithm(), Algorithm::EcdsaP256);
        let sig = pair.sign(&SystemRandom::new(), b"payload").unwrap();
        assert!(key.verifies(b"payload", sig.as_ref()));
        assert!(!key.verifies(b"payloae", sig.as_ref()));
        let (_, other) = p256_pair();
        let other = PublicKey::from_pem(&other, "other").unwrap();
        assert!(!other.verifies(b"payload", sig.as_ref()));
        assert_ne!(key.fingerprint(), other.fingerprint());
    }

    #[test]
    fn ed25519_signatures_verify() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let pem = spki_pem(
            spki::AlgorithmIdentifierOwned {
                oid: ED25519,
                parameters: None,
            },
            pair.public_key().as_ref(),
        );
        let key = PublicKey::from_pem(&pem, "test key").unwrap();
        assert_eq!(key.algorithm(), Algorithm::Ed25519);
        let sig = pair.sign(b"payload");
        assert!(key.verifies(b"payload", sig.as_ref()));
        assert!(!key.verifies(b"other", sig.as_ref()));
    }

    #[test]
    fn garbage_and_unknown_keys_are_usage_errors() {
        let err = PublicKey::from_pem("not a key", "k.pub").unwrap_err();
        assert_eq!(err.kind, crate::Kind::Usage);
        assert!(err.message.contains("k.pub"), "{}", err.message);
        // An X25519 key (1.3.101.110) is a valid SPKI of a type cosign never signs with.
        let pem = spki_pem(
            spki::AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap("1.3.101.110"),
                parameters: None,
            },
            &[7; 32],
        );
        let err = PublicKey::from_pem(&pem, "x.pub").unwrap_err();
        assert!(
            err.message.contains("unsupported key algorithm"),
            "{}",
            err.message
        );
    }
}
