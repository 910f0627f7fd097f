//! Rekor transparency-log bundles (`dev.sigstore.cosign/bundle`): the
//! log's signed promise (SET) that an entry holding this very signature
//! was logged at `integratedTime`. The SET is the log key's ECDSA
//! signature over the canonical JSON (sorted keys, no spaces) of the
//! entry's `body`, `integratedTime`, `logID` and `logIndex`; the body is a
//! `hashedrekord` naming the payload's hash, the signature and the signer's
//! key or certificate. A verified bundle dates the signature, so a
//! short-lived Fulcio certificate is checked at that time. Inclusion
//! proofs against a checkpoint are not checked.

use super::error::Rejection;
use super::key::PublicKey;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Bundle {
    #[serde(rename = "SignedEntryTimestamp")]
    set: String,
    #[serde(rename = "Payload")]
    payload: BundlePayload,
}

#[derive(Deserialize)]
struct BundlePayload {
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logIndex")]
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

#[derive(Deserialize)]
struct Body {
    kind: String,
    spec: Spec,
}

#[derive(Deserialize)]
struct Spec {
    data: Data,
    signature: BodySignature,
}

#[derive(Deserialize)]
struct Data {
    hash: Hash,
}

#[derive(Deserialize)]
struct Hash {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
struct BodySignature {
    content: String,
    #[serde(rename = "publicKey")]
    public_key: Content,
}

#[derive(Deserialize)]
struct Content {
    content: String,
}

/// Checks a bundle against the log keys for a signature `signature` over
/// `payload` by `signer_pem` (the certificate or public key, PEM, as the
/// entry records it). Returns the entry's integrated time (Unix seconds).
pub fn verify_bundle(
    bundle: &str,
    log_keys: &[PublicKey],
    payload: &[u8],
    signature: &[u8],
    signer_der: &[u8],
) -> Result<u64, Rejection> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let bundle: Bundle = serde_json::from_str(bundle).map_err(Rejection::BundleMalformed)?;
    let p = &bundle.payload;
    let key = log_keys
        .iter()
        .find(|k| k.fingerprint().hex() == p.log_id)
        .ok_or_else(|| Rejection::UntrustedLog(p.log_id.clone()))?;
    let canonical = serde_json::to_vec(&json!({
        "body": p.body,
        "integratedTime": p.integrated_time,
        "logID": p.log_id,
        "logIndex": p.log_index,
    }))
    .expect("JSON values serialize");
    let set = b64
        .decode(&bundle.set)
        .map_err(|_| Rejection::SetNotBase64)?;
    if !key.verifies(&canonical, &set) {
        return Err(Rejection::SetFails);
    }
    let body = b64.decode(&p.body).map_err(|_| Rejection::BodyNotBase64)?;
    let body: Body = serde_json::from_slice(&body).map_err(Rejection::BodyMalformed)?;
    if body.kind != "hashedrekord" || body.spec.data.hash.algorithm != "sha256" {
        return Err(Rejection::EntryKind {
            kind: body.kind,
            algorithm: body.spec.data.hash.algorithm,
        });
    }
    let payload_hash = crate::digest::Digest::of_bytes(payload);
    if body.spec.data.hash.value != payload_hash.hex() {
        return Err(Rejection::OtherPayload);
    }
    if b64.decode(&body.spec.signature.content).ok().as_deref() != Some(signature) {
        return Err(Rejection::OtherSignature);
    }
    let recorded = b64
        .decode(&body.spec.signature.public_key.content)
        .map_err(|_| Rejection::EntryKeyNotBase64)?;
    if pem_der(&recorded).as_deref() != Some(signer_der) {
        return Err(Rejection::OtherSigner);
    }
    u64::try_from(p.integrated_time).map_err(|_| Rejection::NegativeTime)
}

/// The DER inside one PEM block.
pub(crate) fn pem_der(pem: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(pem).ok()?;
    let body: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END "))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    /// A bundle as Rekor returns it, signed by `log`.
    fn bundle(
        log: &ring::signature::EcdsaKeyPair,
        log_key: &PublicKey,
        payload: &[u8],
        sig: &[u8],
        signer_pem: &str,
        time: i64,
    ) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = json!({
            "apiVersion": "0.0.1", "kind": "hashedrekord",
            "spec": {"data": {"hash": {"algorithm": "sha256",
                                       "value": crate::digest::Digest::of_bytes(payload).hex()}},
                     "signature": {"content": b64.encode(sig),
                                   "publicKey": {"content": b64.encode(signer_pem)}}}
        });
        let body = b64.encode(serde_json::to_vec(&body).unwrap());
        let log_id = log_key.fingerprint().hex().to_string();
        let canonical = format!(
            r#"{{"body":"{body}","integratedTime":{time},"logID":"{log_id}","logIndex":7}}"#
        );
        let set = log
            .sign(&SystemRandom::new(), canonical.as_bytes())
            .unwrap();
        json!({"SignedEntryTimestamp": b64.encode(set.as_ref()),
               "Payload": {"body": body, "integratedTime": time, "logIndex": 7, "logID": log_id}})
        .to_string()
    }

    #[test]
    fn a_logged_signature_verifies_and_gives_its_time() {
        let (log, log_pem) = super::super::key::tests::p256_pair();
        let log_key = PublicKey::from_pem(&log_pem, "rekor").unwrap();
        let keys = std::slice::from_ref(&log_key);
        let (signer, signer_pem) = super::super::key::tests::p256_pair();
        let payload = b"payload";
        let sig = signer.sign(&SystemRandom::new(), payload).unwrap();
        let der = pem_der(signer_pem.as_bytes()).unwrap();
        let good = bundle(
            &log,
            &log_key,
            payload,
            sig.as_ref(),
            &signer_pem,
            1_700_000_000,
        );
        let t = verify_bundle(&good, keys, payload, sig.as_ref(), &der).unwrap();
        assert_eq!(t, 1_700_000_000);

        // Another payload, signature or signer than the entry's.
        let err = verify_bundle(&good, keys, b"other", sig.as_ref(), &der);
        assert!(err.unwrap_err().to_string().contains("another payload"));
        let err = verify_bundle(&good, keys, payload, b"sig", &der);
        assert!(err.unwrap_err().to_string().contains("another signature"));
        let err = verify_bundle(&good, keys, payload, sig.as_ref(), b"x");
        assert!(err.unwrap_err().to_string().contains("another signer"));
        // A changed time breaks the SET.
        let forged = good.replace("1700000000", "1800000000");
        let err = verify_bundle(&forged, keys, payload, sig.as_ref(), &der);
        assert!(matches!(err, Err(Rejection::SetFails)));
        assert!(err.unwrap_err().to_string().contains("SET does not verify"));
        // An untrusted log.
        let (_, other_pem) = super::super::key::tests::p256_pair();
        let other = PublicKey::from_pem(&other_pem, "other").unwrap();
        let err = verify_bundle(&good, &[other], payload, sig.as_ref(), &der);
        assert!(
            matches!(&err, Err(Rejection::UntrustedLog(id)) if *id == log_key.fingerprint().hex())
        );
        assert!(err.unwrap_err().to_string().contains("not a trusted one"));
    }
}
