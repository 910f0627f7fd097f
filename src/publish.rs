//! `bundle push`: re-publishing every artifact of a bundle into another
//! registry (an air-gapped site's own), byte for byte, so every digest
//! stays the same. Blobs the target already has are skipped; the others
//! stream from the bundle, verified as they are read.

use crate::blobs::BlobSource;
use crate::bundle::Bundle;
use crate::companions::Role;
use crate::error::{Error, Result};
use crate::lock::Pinned;
use crate::registry::{Registry, RegistryError};
use oci_client::errors::OciDistributionError;
use serde::Serialize;
use std::io::Read;
use std::sync::Arc;

/// One artifact as published.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub from: String,
    pub to: String,
    pub digest: String,
}

/// One manifest published beside the artifacts (index, referrer).
#[derive(Debug, Clone, Serialize)]
pub struct PublishedCompanion {
    pub role: &'static str,
    pub to: String,
    pub digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refers: Option<String>,
}

/// What a push did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReport {
    pub artifacts: Vec<Published>,
    /// Indexes, the manifests they list, signatures, attestations, SBOMs:
    /// published after the artifacts, each after what it lists.
    pub companions: Vec<PublishedCompanion>,
    pub blobs_pushed: usize,
    pub blobs_present: usize,
}

/// The new reference of `reference` under `target` (`host[:port][/namespace]`):
/// the repository path is kept, the registry host replaced.
pub fn retarget(reference: &str, target: &str) -> Result<String> {
    let parsed = Registry::parse_reference(reference)?;
    let base = format!("{}/{}", target.trim_end_matches('/'), parsed.repository());
    Ok(match (parsed.tag(), parsed.digest()) {
        (Some(tag), _) => format!("{base}:{tag}"),
        (None, Some(digest)) => format!("{base}@{digest}"),
        (None, None) => format!("{base}:latest"),
    })
}

/// Pushes every artifact of `bundle` to `target`, then what travels
/// beside them: the indexes their tags named (so the tags name them
/// again), and their signatures, attestations and SBOMs under the same
/// tags or as the same referrers. Every digest stays what it was.
pub async fn push(bundle: Arc<Bundle>, registry: &Registry, target: &str) -> Result<PushReport> {
    let mut report = PushReport::default();
    let companions = bundle.companions()?;
    let artifacts: Vec<Pinned> = bundle.artifacts();
    for pinned in artifacts {
        let to = retarget(&pinned.reference, target)?;
        let reference = Registry::parse_reference(&to)?;
        let mut blobs = vec![pinned.config.clone()];
        blobs.extend(pinned.layers.iter().cloned());
        push_blobs(&bundle, registry, &reference, &blobs, &mut report).await?;
        let manifest = bundle.read_small(&crate::lock::Blob {
            digest: pinned.digest.clone(),
            size: pinned.size,
            media_type: pinned.media_type.clone(),
        })?;
        // When the tag named an index that travels, the index takes the
        // tag (below) and the platform manifest goes in by digest.
        let tagged_index = pinned.index.as_ref().is_some_and(|i| {
            companions
                .iter()
                .any(|c| c.role == Role::Index && c.manifest.digest == *i && c.tag.is_some())
        });
        // A reference by digest may name the index: the manifest goes in
        // under its own digest then too.
        let at = match tagged_index || reference.tag().is_none() {
            true => reference.clone_with_digest(pinned.digest.to_string()),
            false => reference,
        };
        registry
            .push_manifest(&at, manifest, &pinned.media_type)
            .await?;
        report.artifacts.push(Published {
            from: pinned.reference.clone(),
            to,
            digest: pinned.digest.to_string(),
        });
    }
    for c in &companions {
        let to = retarget(&c.reference(), target)?;
        let reference = Registry::parse_reference(&to)?;
        push_blobs(&bundle, registry, &reference, &c.blobs, &mut report).await?;
        let manifest = bundle.read_small(&c.manifest)?;
        registry
            .push_manifest(&reference, manifest, &c.manifest.media_type)
            .await?;
        report.companions.push(PublishedCompanion {
            role: c.role.as_str(),
            to,
            digest: c.manifest.digest.to_string(),
            artifact_type: c.artifact_type.clone(),
            refers: c.subject.as_ref().map(|d| d.to_string()),
        });
    }
    index_referrers(&bundle, registry, target, &companions, &mut report).await?;
    Ok(report)
}

/// Referrers the bundle carries by digest only (the origin listed them
/// through the OCI 1.1 referrers API, not a tag): a target without that
/// API would hide them, so they are added to the `sha256-<hex>` tag index
/// OCI 1.1 defines for such registries (as oras and cosign write it),
/// keeping what that index already lists. A target that lists them
/// already is left alone.
async fn index_referrers(
    bundle: &Arc<Bundle>,
    registry: &Registry,
    target: &str,
    companions: &[crate::companions::Companion],
    report: &mut PushReport,
) -> Result<()> {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<(String, crate::digest::Digest), Vec<&crate::companions::Companion>> =
        BTreeMap::new();
    for c in companions {
        if let (Role::Referrer, None, Some(subject)) = (c.role, &c.tag, &c.subject) {
            if c.is_index() {
                continue;
            }
            groups
                .entry((c.repository.clone(), subject.clone()))
                .or_default()
                .push(c);
        }
    }
    for ((repository, subject), referrers) in groups {
        let to = retarget(&format!("{repository}@{subject}"), target)?;
        let subject_ref = Registry::parse_reference(&to)?;
        let listed: Vec<String> = registry
            .referrers(&subject_ref, None)
            .await?
            .into_iter()
            .map(|e| e.digest)
            .collect();
        let missing: Vec<_> = referrers
            .into_iter()
            .filter(|c| !listed.contains(&c.manifest.digest.to_string()))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let tag_ref = oci_client::Reference::with_tag(
            subject_ref.registry().to_string(),
            subject_ref.repository().to_string(),
            format!("sha256-{}", subject.hex()),
        );
        let mut entries: Vec<serde_json::Value> =
            match registry.manifest_if_exists(&tag_ref).await? {
                Some(m) if m.is_index() => serde_json::from_slice::<serde_json::Value>(&m.bytes)
                    .ok()
                    .and_then(|v| v.get("manifests").and_then(|m| m.as_array()).cloned())
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
        for c in missing {
            let bytes = bundle.read_small(&c.manifest)?;
            let annotations = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("annotations").cloned());
            let mut entry = serde_json::json!({
                "mediaType": c.manifest.media_type,
                "digest": c.manifest.digest.to_string(),
                "size": c.manifest.size,
            });
            if let Some(t) = &c.artifact_type {
                entry["artifactType"] = t.clone().into();
            }
            if let Some(a) = annotations {
                entry["annotations"] = a;
            }
            entries.push(entry);
        }
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::registry::OCI_INDEX,
            "manifests": entries,
        }))
        .map_err(|e| Error::internal("cannot serialize a referrers index").caused_by(e))?;
        let digest = crate::digest::Digest::of_bytes(&index);
        registry
            .push_manifest(&tag_ref, index, crate::registry::OCI_INDEX)
            .await?;
        report.companions.push(PublishedCompanion {
            role: "referrers-index",
            to: tag_ref.whole(),
            digest: digest.to_string(),
            artifact_type: None,
            refers: Some(subject.to_string()),
        });
    }
    Ok(())
}

/// Uploads the blobs the target lacks, streamed from the bundle.
async fn push_blobs(
    bundle: &Arc<Bundle>,
    registry: &Registry,
    reference: &oci_client::Reference,
    blobs: &[crate::lock::Blob],
    report: &mut PushReport,
) -> Result<()> {
    for blob in blobs {
        if registry.has_blob(reference, &blob.digest).await? {
            report.blobs_present += 1;
            continue;
        }
        let chunks = || stream_blob(bundle.clone(), blob.clone());
        registry
            .push_blob(reference, &blob.digest, blob.size, chunks)
            .await?;
        report.blobs_pushed += 1;
    }
    Ok(())
}

/// A blob of the bundle as a stream of 1 MiB chunks, read (and verified)
/// on a blocking thread; a digest mismatch ends the stream with an error.
fn stream_blob(
    bundle: Arc<Bundle>,
    blob: crate::lock::Blob,
) -> futures_util::stream::BoxStream<'static, std::result::Result<bytes::Bytes, OciDistributionError>>
{
    let (tx, rx) =
        tokio::sync::mpsc::channel::<std::result::Result<bytes::Bytes, OciDistributionError>>(4);
    tokio::task::spawn_blocking(move || {
        let send_err = |e: String| {
            let _ = tx.blocking_send(Err(OciDistributionError::GenericError(Some(e))));
        };
        let mut reader = match bundle.open(&blob) {
            Ok(r) => r,
            Err(e) => return send_err(e.message),
        };
        loop {
            let mut buf = vec![0u8; 1 << 20];
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(bytes::Bytes::from(buf))).is_err() {
                        return;
                    }
                }
                Err(e) => return send_err(e.to_string()),
            }
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Refuses a target that is not `host[:port][/namespace]`.
pub fn check_target(target: &str) -> Result<()> {
    if target.is_empty() || target.contains("://") || target.contains('@') {
        return Err(RegistryError::BadTarget {
            target: target.to_string(),
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retarget_keeps_the_repository_path() {
        assert_eq!(
            retarget("127.0.0.1:5000/pgoci/pg_cron:1.4.2-15", "10.0.0.1:443/site").unwrap(),
            "10.0.0.1:443/site/pgoci/pg_cron:1.4.2-15"
        );
        assert_eq!(
            retarget("ghcr.io/a/b:1", "reg.local").unwrap(),
            "reg.local/a/b:1"
        );
    }

    #[test]
    fn a_target_with_a_scheme_or_a_digest_is_a_usage_error() {
        assert!(check_target("reg.local:5000/site").is_ok());
        for bad in ["https://reg.local", "reg.local/a@sha256:00", ""] {
            let err = check_target(bad).unwrap_err();
            assert!(
                matches!(err.typed::<RegistryError>(), Some(RegistryError::BadTarget { target }) if target == bad),
                "{err:?}"
            );
            assert_eq!(
                err.message,
                format!("--to `{bad}` is not REGISTRY[/NAMESPACE]")
            );
            assert_eq!(err.kind.exit_code(), 2);
            assert_eq!(
                err.hint.as_deref(),
                Some("for example --to registry.example:5000/postgres")
            );
        }
    }
}
