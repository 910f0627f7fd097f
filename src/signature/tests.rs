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
