//! The bundle's `index.json`: what it lists (locks, images under short
//! tags, the manifests that travel beside them) and how each is annotated.

use super::{ALIAS, LOCKS, LOCK_DIGEST, LOCK_MEDIA_TYPE, REFERS, REF_NAME, REPOSITORY};
use crate::companions::{Companion, Role};
use crate::digest::Digest;
use crate::lock::{Blob, Lock};
use crate::oci::{annotation, describes, Descriptor, ImageIndex, MediaType};
use std::collections::{BTreeMap, HashMap};

/// A descriptor of `index.json` (oci-spec's, with pgoci's digest).
fn descriptor(
    media_type: &str,
    digest: &Digest,
    size: u64,
    artifact_type: Option<&str>,
    annotations: BTreeMap<String, String>,
) -> Descriptor {
    let mut d = crate::oci::descriptor(media_type, digest, size);
    d.set_artifact_type(artifact_type.map(MediaType::from));
    d.set_annotations(Some(annotations.into_iter().collect()));
    d
}

/// Builds the `index.json` for locks: one descriptor per artifact (each
/// once, described by the first lock that uses it), then one per
/// companion (see [`crate::companions`]). A reference whose tag named an
/// index that travels names that index; the platform manifest is then
/// listed without a name.
pub(super) fn index_for(locks: &[(Lock, Digest)], companions: &[Companion]) -> ImageIndex {
    let tagged_index = |pinned: &crate::lock::Pinned| {
        pinned.index.as_ref().is_some_and(|i| {
            companions
                .iter()
                .any(|c| c.role == Role::Index && c.manifest.digest == *i && c.tag.is_some())
        })
    };
    let describe =
        |lock: &Lock, pinned: &crate::lock::Pinned, role: &str, ext: Option<(&str, &str)>| {
            let mut annotations = BTreeMap::from([
                ("io.pgoci.role".to_string(), role.to_string()),
                ("io.pgoci.major".to_string(), lock.major().to_string()),
            ]);
            if !tagged_index(pinned) {
                annotations.insert(REF_NAME.to_string(), pinned.reference.clone());
            }
            if let Some((name, version)) = ext {
                annotations.insert("io.pgoci.extension".into(), name.into());
                annotations.insert("io.pgoci.version".into(), version.into());
            }
            descriptor(
                &pinned.media_type,
                &pinned.digest,
                pinned.size,
                None,
                annotations,
            )
        };
    let mut manifests: Vec<Descriptor> = Vec::new();
    for (lock, _) in locks {
        let mut add = |d: Descriptor| {
            if !manifests.iter().any(|m| m.digest() == d.digest()) {
                manifests.push(d);
            }
        };
        add(describe(lock, &lock.server.pinned, "server", None));
        for ext in &lock.extensions {
            add(describe(
                lock,
                &ext.pinned,
                "extension",
                Some((&ext.name, &ext.version)),
            ));
        }
        for pinned in lock.artifacts() {
            if let Some(d) = signature_descriptor(pinned) {
                add(d);
            }
        }
    }
    for c in companions {
        if let Some(known) = manifests
            .iter_mut()
            .find(|m| describes(m, &c.manifest.digest))
        {
            // A signature the lock records: also where it is published.
            let mut annotations = known.annotations().clone().unwrap_or_default();
            annotations.insert(REPOSITORY.to_string(), c.repository.clone());
            known.set_annotations(Some(annotations));
            continue;
        }
        let mut annotations = BTreeMap::from([
            ("io.pgoci.role".to_string(), c.role.as_str().to_string()),
            (REPOSITORY.to_string(), c.repository.clone()),
        ]);
        if c.tag.is_some() {
            annotations.insert(REF_NAME.to_string(), c.reference());
        }
        if let Some(subject) = &c.subject {
            annotations.insert(REFERS.to_string(), subject.to_string());
        }
        manifests.push(descriptor(
            &c.manifest.media_type,
            &c.manifest.digest,
            c.manifest.size,
            c.artifact_type.as_deref(),
            annotations,
        ));
    }
    // Short names for tools that take `LAYOUT:TAG` and split it at the last
    // colon (oras): `postgresql-17` for `reg/pgoci/postgresql:17`, naming
    // what the tag names (the index, when it travels).
    let mut aliases: Vec<Descriptor> = Vec::new();
    for (lock, _) in locks {
        for pinned in lock.artifacts() {
            let Some(alias) = alias_of(&pinned.reference) else {
                continue;
            };
            let target = manifests.iter().find(|m| {
                annotation(m, REF_NAME) == Some(pinned.reference.as_str())
                    && annotation(m, "io.pgoci.role") != Some(ALIAS)
            });
            let taken = aliases
                .iter()
                .any(|a| annotation(a, REF_NAME) == Some(alias.as_str()));
            if let (Some(target), false) = (target, taken) {
                let mut d = Descriptor::new(
                    target.media_type().clone(),
                    target.size(),
                    target.digest().clone(),
                );
                d.set_annotations(Some(HashMap::from([
                    (REF_NAME.to_string(), alias),
                    ("io.pgoci.role".to_string(), ALIAS.to_string()),
                ])));
                aliases.push(d);
            }
        }
    }
    manifests.extend(aliases);
    let mut annotations = HashMap::from([(LOCK_DIGEST.to_string(), locks[0].1.to_string())]);
    if locks.len() > 1 {
        let all: Vec<String> = locks.iter().map(|(_, d)| d.to_string()).collect();
        annotations.insert(LOCKS.to_string(), all.join(","));
    }
    let mut index = ImageIndex::default();
    index.set_media_type(Some(MediaType::ImageIndex));
    index.set_manifests(manifests);
    index.set_annotations(Some(annotations));
    index
}

/// The short name of a reference in a bundle: the repository's last
/// component and the tag, as a valid tag (`pg_cron-1.4.2-15`).
fn alias_of(reference: &str) -> Option<String> {
    let parsed = crate::registry::Registry::parse_reference(reference).ok()?;
    let tag = parsed.tag()?;
    let name = parsed.repository().rsplit('/').next()?;
    let alias: String = format!("{name}-{tag}")
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' | '-' => c,
            _ => '_',
        })
        .take(128)
        .collect();
    Some(alias)
}

/// The cosign signature manifest of an artifact, named as cosign tags it
/// (`REPO:sha256-<hex>.sig`), with what it signs and who signed.
fn signature_descriptor(pinned: &crate::lock::Pinned) -> Option<Descriptor> {
    let sig = pinned.signature.as_ref()?;
    let repo = pinned
        .reference
        .rsplit_once('@')
        .map(|(r, _)| r)
        .unwrap_or(&pinned.reference);
    let repo = match repo.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => repo,
    };
    Some(descriptor(
        &sig.manifest.media_type,
        &sig.manifest.digest,
        sig.manifest.size,
        None,
        BTreeMap::from([
            (
                REF_NAME.to_string(),
                format!(
                    "{repo}:{}",
                    crate::signature::cosign::signature_tag(&sig.signed)
                ),
            ),
            ("io.pgoci.role".to_string(), "signature".to_string()),
            ("io.pgoci.signs".to_string(), sig.signed.to_string()),
            ("io.pgoci.signer".to_string(), sig.signer.clone()),
        ]),
    ))
}

/// A lock as it is stored in a bundle: a blob of its canonical text.
pub(super) fn lock_blob(text: &str, digest: &Digest) -> Blob {
    Blob {
        digest: digest.clone(),
        size: text.len() as u64,
        media_type: LOCK_MEDIA_TYPE.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_valid_tags() {
        assert_eq!(
            alias_of("127.0.0.1:5000/pgoci/postgresql:17").as_deref(),
            Some("postgresql-17")
        );
        assert_eq!(
            alias_of("ghcr.io/cloudnative-pg/pgvector:0.8.1-17-trixie").as_deref(),
            Some("pgvector-0.8.1-17-trixie")
        );
        // A digest reference has no tag to shorten.
        let d = Digest::of_bytes(b"m");
        assert_eq!(alias_of(&format!("reg.example/a/b@{d}")), None);
    }
}
