//! Signatures as a lock records them and a bundle carries them: the
//! signature manifest, its payloads and (for a signed index) the index,
//! all by digest, so an offline host can check the same signature again
//! from local blobs. The record is a pointer, never a proof: what counts
//! is the verification against the host's own policy.

use super::error::SignatureError;
use super::{verify, Policy, SignatureSet, Subject, Verified};
use crate::blobs::BlobSource;
use crate::companions::Companion;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::lock::{Blob, Pinned};
use std::collections::BTreeMap;

pub use crate::lock::SignatureRecord;

/// The record of a signature just verified online.
pub fn record(verified: &Verified, set: &SignatureSet, index: Option<Blob>) -> SignatureRecord {
    SignatureRecord {
        signer: verified.signer.clone(),
        signed: verified.signed.clone(),
        manifest: Blob {
            digest: set.digest.clone(),
            size: set.manifest.len() as u64,
            media_type: set.media_type.clone(),
        },
        payloads: set
            .blobs
            .iter()
            .map(|(d, b)| Blob {
                digest: d.clone(),
                size: b.len() as u64,
                media_type: super::cosign::SIMPLE_SIGNING.into(),
            })
            .collect(),
        // The index is only needed when it is what was signed.
        index: index.filter(|i| i.digest == verified.signed),
    }
}

/// Checks an artifact's signature offline, from the blobs `source` holds
/// (cache or bundle), against `policy`. The lock's record says which
/// signature to read; without one, the signatures `carried` beside the
/// image (a bundle's or the cache's companions) are tried, so a site's own
/// key checks what a supplier exported without a policy. None that
/// verifies is an integrity error naming the image and the required signer.
pub fn verify_local(
    pinned: &Pinned,
    carried: &[Companion],
    source: &dyn BlobSource,
    policy: &Policy,
) -> Result<Verified> {
    let (image, digest) = (pinned.reference.as_str(), &pinned.digest);
    let Some(record) = pinned.signature.as_ref() else {
        return verify_carried(
            pinned,
            super::carried::sets_for(pinned, carried, source),
            policy,
        );
    };
    let bad = |source: Error| SignatureError::Unreadable {
        image: image.to_string(),
        digest: digest.clone(),
        source: Box::new(source),
    };
    let manifest = source.read_small(&record.manifest).map_err(bad)?;
    let mut blobs = BTreeMap::new();
    for p in &record.payloads {
        blobs.insert(p.digest.clone(), source.read_small(p).map_err(bad)?);
    }
    let index = record
        .index
        .as_ref()
        .map(|i| source.read_small(i).map(|b| (i.digest.clone(), b)))
        .transpose()
        .map_err(bad)?;
    let set = SignatureSet {
        digest: record.manifest.digest.clone(),
        media_type: record.manifest.media_type.clone(),
        manifest,
        blobs,
    };
    verify(
        Subject {
            image,
            digest,
            index: index.as_ref().map(|(d, b)| (d, b.as_slice())),
        },
        &[set],
        policy,
    )
}

/// Checks the signature sets carried beside `pinned` (and the index they
/// may cover, [`super::carried::sets_for`]) against `policy`.
fn verify_carried(
    pinned: &Pinned,
    (sets, index): (Vec<SignatureSet>, Option<(Digest, Vec<u8>)>),
    policy: &Policy,
) -> Result<Verified> {
    let subject = Subject {
        image: &pinned.reference,
        digest: &pinned.digest,
        index: index.as_ref().map(|(d, b)| (d, b.as_slice())),
    };
    verify(subject, &sets, policy).map_err(|e| {
        if sets.is_empty() {
            e.hint("no signature of it travels with the lock or the bundle: have the supplier sign the image and export again")
        } else {
            e
        }
    })
}

/// Checks every artifact of `lock` that `policies` name, offline, from
/// `source`; returns (image, what verified) per checked artifact.
pub fn verify_lock(
    lock: &crate::lock::Lock,
    carried: &[Companion],
    source: &dyn BlobSource,
    policies: &super::policy::Policies,
) -> Result<Vec<(String, Verified)>> {
    let mut checked = Vec::new();
    let mut check = |pinned: &Pinned, policy: Option<&Policy>| -> Result<()> {
        if let Some(policy) = policy {
            let v = verify_local(pinned, carried, source, policy)?;
            checked.push((pinned.reference.clone(), v));
        }
        Ok(())
    };
    check(&lock.server.pinned, policies.for_server())?;
    for ext in &lock.extensions {
        check(&ext.pinned, policies.for_extension(&ext.name))?;
    }
    Ok(checked)
}

/// Where one image's signature stands, as `doctor` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignatureStatus {
    pub image: String,
    pub digest: Digest,
    /// `signed` (verified under the policy), `unsigned`, `bad` (recorded
    /// or required but it does not verify), or `recorded` (the lock names
    /// a signer, but no policy here says whose key to check it with).
    pub status: &'static str,
    /// Whether an install under the same policies would accept it.
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    pub detail: String,
}

/// The signature status of every artifact of `locks` (each once), checked
/// offline from `source` as `bundle verify` checks it: an image a policy
/// names must carry a signature that verifies under it; an image no
/// policy names is reported as the lock records it.
pub fn statuses(
    locks: &[&crate::lock::Lock],
    carried: &[Companion],
    source: &dyn BlobSource,
    policies: &super::policy::Policies,
) -> Vec<SignatureStatus> {
    let mut out: Vec<SignatureStatus> = Vec::new();
    let mut one = |pinned: &Pinned, policy: Option<&Policy>| {
        if out.iter().any(|s| s.digest == pinned.digest) {
            return;
        }
        let record = pinned.signature.as_ref();
        let checked = |result: Result<Verified>| match result {
            Ok(v) => (
                "signed",
                true,
                Some(v.signer),
                format!(
                    "signature {} over {}{}",
                    v.signature.short(),
                    v.signed.short(),
                    if record.is_none() {
                        " (carried beside the image; the lock records none)"
                    } else {
                        ""
                    }
                ),
            ),
            Err(e) => ("bad", false, record.map(|r| r.signer.clone()), e.message),
        };
        let (status, ok, signer, detail) = match (policy, record) {
            (Some(policy), Some(_)) => checked(verify_local(pinned, carried, source, policy)),
            // Without a record, what travels beside the image is all there
            // is: nothing is "unsigned", something that does not verify "bad".
            (Some(policy), None) => match super::carried::sets_for(pinned, carried, source) {
                (sets, _) if sets.is_empty() => (
                    "unsigned",
                    false,
                    None,
                    format!(
                        "required: {}; no signature of it travels with the lock or the bundle",
                        policy.describe()
                    ),
                ),
                found => checked(verify_carried(pinned, found, policy)),
            },
            (None, Some(r)) => (
                "recorded",
                true,
                Some(r.signer.clone()),
                "not checked: no policy here names the signer (--require-signature-key or the profile's signatures:)".into(),
            ),
            (None, None) => ("unsigned", true, None, "no signature required".into()),
        };
        out.push(SignatureStatus {
            image: pinned.reference.clone(),
            digest: pinned.digest.clone(),
            status,
            ok,
            signer,
            detail,
        });
    };
    for lock in locks {
        one(&lock.server.pinned, policies.for_server());
        for ext in &lock.extensions {
            one(&ext.pinned, policies.for_extension(&ext.name));
        }
    }
    out
}
