//! Signatures that travel beside an image though its lock records none.
//!
//! A supplier may export with no signature policy of its own: the lock then
//! names no signer, but the cosign signature manifests found beside each
//! image (`sha256-<hex>.sig` tags, OCI 1.1 referrers) travel in the bundle
//! anyway (see [`crate::companions`]), and a pull keeps them in the cache.
//! The site that installs holds the key, so the site checks them against
//! its own policy. Where a manifest came from proves nothing: only the
//! verification counts, and a carrier cannot sign what it swapped.

use super::{cosign, SignatureSet, MAX_MANIFEST};
use crate::blobs::BlobSource;
use crate::companions::{Companion, Role};
use crate::digest::Digest;
use crate::lock::{Blob, Pinned};
use std::collections::BTreeMap;

/// What travels beside `pinned` that a signature check can use: every
/// carried signature manifest about its manifest or its index (with the
/// payloads it names), and the index's bytes when the index travels (a
/// signature over the tag's index covers the platform manifest only
/// through them). A manifest or payload that cannot be read, or is too
/// large to be a signature, is left out: it could never verify.
pub fn sets_for(
    pinned: &Pinned,
    carried: &[Companion],
    source: &dyn BlobSource,
) -> (Vec<SignatureSet>, Option<(Digest, Vec<u8>)>) {
    let index = pinned.index.as_ref().and_then(|digest| {
        carried
            .iter()
            .find(|c| c.role == Role::Index && c.manifest.digest == *digest)
            .and_then(|c| source.read_small(&c.manifest).ok())
            .map(|bytes| (digest.clone(), bytes))
    });
    let about: Vec<&Digest> = std::iter::once(&pinned.digest)
        .chain(pinned.index.as_ref())
        .collect();
    let names_one = |c: &Companion| {
        about.iter().any(|d| {
            c.subject.as_ref() == Some(*d)
                || c.tag.as_deref() == Some(cosign::signature_tag(d).as_str())
        })
    };
    let mut sets: Vec<SignatureSet> = Vec::new();
    for c in carried {
        if c.role != Role::Referrer
            || c.is_index()
            || c.manifest.size > MAX_MANIFEST
            || !names_one(c)
            || sets.iter().any(|s| s.digest == c.manifest.digest)
        {
            continue;
        }
        if let Some(set) = read_set(&c.manifest, source) {
            sets.push(set);
        }
    }
    (sets, index)
}

/// One signature manifest and its simple-signing payloads (chosen as
/// online, [`super::payloads`]), verified against their digests as they
/// are read; `None` if any is unreadable.
fn read_set(manifest: &Blob, source: &dyn BlobSource) -> Option<SignatureSet> {
    let bytes = source.read_small(manifest).ok()?;
    let parsed = cosign::parse_manifest(&bytes, &manifest.digest.to_string()).ok()?;
    let mut blobs = BTreeMap::new();
    for (digest, size) in super::payloads(&parsed) {
        let payload = Blob {
            digest: digest.clone(),
            size,
            media_type: cosign::SIMPLE_SIGNING.into(),
        };
        blobs.insert(digest, source.read_small(&payload).ok()?);
    }
    (!blobs.is_empty()).then(|| SignatureSet {
        digest: manifest.digest.clone(),
        media_type: manifest.media_type.clone(),
        manifest: bytes,
        blobs,
    })
}
