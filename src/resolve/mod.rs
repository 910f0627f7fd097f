//! Resolution: a request (major + extensions) against a profile and the
//! registry becomes a [`Lock`] with every artifact pinned to the digest of
//! its platform manifest. Tags are read once, here; everything after works
//! from digests.

mod error;
pub use error::ResolveError;

use crate::digest::Digest;
use crate::error::{Classify, Kind, Result};
use crate::lock::{
    Blob, ExtensionLock, Lock, Pinned, ProfileRef, Request, ServerLock, LOCK_VERSION,
};
use crate::names::ExtensionName;
use crate::oci::{self, Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use crate::platform::{self, Platform};
use crate::profile::{substitute, Layout, Profile};
use crate::registry::Registry;
use crate::signature::{self, policy::Policies, Policy};
use crate::suggest::nearest;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::fmt::Display;

/// One requested extension: `name` or `name@version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtRequest {
    pub name: String,
    pub version: Option<String>,
}

impl ExtRequest {
    /// Parses `--ext` values; each may hold a comma-separated list.
    pub fn parse_list(values: &[String]) -> Vec<ExtRequest> {
        values
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.split_once('@') {
                Some((n, v)) => ExtRequest {
                    name: n.into(),
                    version: Some(v.into()),
                },
                None => ExtRequest {
                    name: s.into(),
                    version: None,
                },
            })
            .collect()
    }
}

/// What resolution decided before asking the registry: references and
/// extension facts, checked against the profile (exit 3 on anything unknown).
pub struct Plan {
    pub major: u32,
    pub server_reference: String,
    pub layout: Layout,
    pub extensions: Vec<(String, String, String)>, // name, version, reference
}

/// Checks a request against the profile and computes the references.
pub fn plan(
    profile: &Profile,
    major: u32,
    exts: &[ExtRequest],
    platform: &Platform,
) -> Result<Plan> {
    if !profile.server.majors.contains(&major) {
        return Err(ResolveError::UnknownMajor {
            major,
            profile: profile.name.clone(),
            offered: profile.server.majors.clone(),
        }
        .into());
    }
    if !profile.platforms.contains(&platform.to_string()) {
        return Err(ResolveError::PlatformNotInProfile {
            platform: platform.clone(),
            profile: profile.name.clone(),
            offered: profile.platforms.clone(),
        }
        .into());
    }
    // Requested names, plus what they require, deduplicated and sorted so
    // the same set in any order gives the same lock.
    let mut wanted: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut queue: Vec<ExtRequest> = exts.to_vec();
    while let Some(req) = queue.pop() {
        let Some((known, spec)) = profile.extensions.get_key_value(req.name.as_str()) else {
            let names: Vec<&str> = profile
                .extensions_for(major)
                .map(|(n, _)| n.as_str())
                .collect();
            return Err(ResolveError::UnknownExtension {
                nearest: nearest(&req.name, names.iter().copied())
                    .into_iter()
                    .map(String::from)
                    .collect(),
                name: req.name,
                major,
            }
            .into());
        };
        if !spec.majors.contains(&major) {
            return Err(ResolveError::NotBuiltFor {
                extension: known.clone(),
                major,
                built_for: spec.majors.clone(),
            }
            .into());
        }
        if let Some(v) = &req.version {
            if !spec.versions(major).contains(v) {
                return Err(ResolveError::UnknownVersion {
                    version: v.clone(),
                    extension: known.clone(),
                    major,
                    versions: spec.versions(major).to_vec(),
                }
                .into());
            }
        }
        let entry = wanted.entry(req.name.clone()).or_insert(None);
        if req.version.is_some() {
            *entry = req.version.clone();
        }
        for dep in &spec.requires {
            if !wanted.contains_key(dep.as_str()) {
                queue.push(ExtRequest {
                    name: dep.to_string(),
                    version: None,
                });
            }
        }
    }
    let server_reference = substitute(
        profile.server.image.get(major).expect("validated"),
        major,
        "",
    );
    let extensions = wanted
        .into_iter()
        .map(|(name, version)| {
            let (known, spec) = profile
                .extensions
                .get_key_value(name.as_str())
                .expect("planned from the profile");
            let version = version.unwrap_or_else(|| spec.versions(major)[0].clone());
            let template = spec.image.get(major).ok_or_else(|| ResolveError::NoImage {
                extension: known.clone(),
                major,
            })?;
            let reference = substitute(template, major, &version);
            Ok((name, version, reference))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan {
        major,
        server_reference,
        layout: profile.server_layout(major),
        extensions,
    })
}

/// Resolves a request into a lock, asking the registry for digests.
pub async fn resolve(
    profile: &Profile,
    major: u32,
    exts: &[ExtRequest],
    platform: &Platform,
    registry: &Registry,
) -> Result<Lock> {
    resolve_signed(
        profile,
        major,
        exts,
        platform,
        registry,
        &Policies::default(),
    )
    .await
}

/// Resolves a request into a lock, requiring each artifact's signature
/// where `policies` say so (checked against the digest pinned, recorded
/// in the lock).
pub async fn resolve_signed(
    profile: &Profile,
    major: u32,
    exts: &[ExtRequest],
    platform: &Platform,
    registry: &Registry,
    policies: &Policies,
) -> Result<Lock> {
    let plan = plan(profile, major, exts, platform)?;
    let server_pin = pin(
        registry,
        &plan.server_reference,
        platform,
        policies.for_server(),
    );
    let ext_pins =
        futures_util::future::try_join_all(plan.extensions.iter().map(|(name, _, reference)| {
            pin(registry, reference, platform, policies.for_extension(name))
        }));
    let ((server, labels), ext_pins) = futures_util::try_join!(server_pin, ext_pins)?;
    let version = labels
        .get("org.opencontainers.image.version")
        .or_else(|| labels.get("io.pgoci.pg.version"))
        .cloned()
        .unwrap_or_else(|| "unknown".into());
    let extensions = plan
        .extensions
        .iter()
        .zip(ext_pins)
        .map(|((name, version, _), (pinned, _))| {
            let (name, spec) = profile
                .extensions
                .get_key_value(name.as_str())
                .expect("planned from the profile");
            ExtensionLock {
                name: name.clone(),
                version: version.clone(),
                pinned,
                preload: spec.preload.clone(),
                settings: spec.settings.clone(),
                ld_library_path: spec.ld_library_path(major),
                env: spec.env(major),
                bin_path: spec.bin_path(major),
            }
        })
        .collect();
    Ok(Lock {
        version: LOCK_VERSION,
        platform: platform.to_string(),
        profile: ProfileRef {
            name: profile.name.clone(),
            digest: profile
                .digest
                .clone()
                .expect("parsed profiles have a digest"),
        },
        request: Request {
            major,
            extensions: plan
                .extensions
                .iter()
                .map(|(n, _, _)| {
                    profile
                        .extensions
                        .get_key_value(n.as_str())
                        .expect("planned from the profile")
                        .0
                        .clone()
                })
                .collect(),
        },
        server: ServerLock {
            pinned: server,
            version,
            layout: plan.layout,
            paths: match plan.layout {
                Layout::Rootfs => profile.server_paths(major),
                Layout::Tree => None,
            },
        },
        extensions,
    })
}

/// The blob a descriptor names, its digest pgoci's sha256 [`Digest`].
fn to_blob(d: &Descriptor) -> Result<Blob> {
    Ok(Blob {
        digest: oci::digest_of(d)?,
        size: d.size(),
        media_type: d.media_type().to_string(),
    })
}

/// Pins a reference: tag → digest, index → platform manifest; returns the
/// pinned artifact and its config labels.
async fn pin(
    registry: &Registry,
    reference: &str,
    platform: &Platform,
    policy: Option<&Policy>,
) -> Result<(Pinned, BTreeMap<String, String>)> {
    let parsed = Registry::parse_reference(reference)?;
    let mut manifest = registry.manifest(&parsed).await?;
    let mut index = None;
    let mut index_manifest = None;
    if manifest.is_index() {
        let doc: ImageIndex = serde_json::from_slice(&manifest.bytes).map_err(|source| {
            ResolveError::IndexMalformed {
                reference: reference.to_string(),
                source,
            }
        })?;
        let entry = platform::pick(doc.manifests(), platform, reference)?;
        let by_digest = parsed.clone_with_digest(oci::digest_of(entry)?.to_string());
        index = Some(manifest.digest.clone());
        index_manifest = Some(std::mem::replace(
            &mut manifest,
            registry.manifest(&by_digest).await?,
        ));
        if manifest.is_index() {
            return Err(ResolveError::NestedIndex {
                reference: reference.to_string(),
            }
            .into());
        }
    }
    let doc: ImageManifest = serde_json::from_slice(&manifest.bytes).map_err(|source| {
        ResolveError::ManifestMalformed {
            reference: reference.to_string(),
            source,
        }
    })?;
    for layer in doc.layers() {
        let media_type = layer.media_type().as_ref();
        if crate::unpack::Compression::from_media_type(media_type).is_none() {
            return Err(ResolveError::UnsupportedLayer {
                reference: reference.to_string(),
                media_type: media_type.to_string(),
            }
            .into());
        }
    }
    let config = to_blob(doc.config())?;
    let labels = read_labels(registry, &parsed, &config).await?;
    let pinned = Pinned {
        reference: reference.to_string(),
        digest: manifest.digest,
        size: manifest.bytes.len() as u64,
        media_type: manifest.media_type,
        index,
        config,
        layers: doc.layers().iter().map(to_blob).collect::<Result<_>>()?,
        signature: None,
    };
    let Some(policy) = policy else {
        return Ok((pinned, labels));
    };
    let subject = signature::Subject {
        image: reference,
        digest: &pinned.digest,
        index: index_manifest
            .as_ref()
            .map(|m| (&m.digest, m.bytes.as_slice())),
    };
    let (verified, set) = signature::verify_remote(registry, subject, policy).await?;
    tracing::info!(
        "{reference}: signature {} by {} over {}",
        verified.signature,
        verified.signer,
        verified.signed
    );
    let index_blob = index_manifest.map(|m| Blob {
        size: m.bytes.len() as u64,
        digest: m.digest,
        media_type: m.media_type,
    });
    let record = signature::record::record(&verified, &set, index_blob);
    Ok((
        Pinned {
            signature: Some(record),
            ..pinned
        },
        labels,
    ))
}

/// Fetches a (small) config blob, verifies it and returns its labels.
async fn read_labels(
    registry: &Registry,
    reference: &oci_client::Reference,
    config: &Blob,
) -> Result<BTreeMap<String, String>> {
    const MAX_CONFIG: u64 = 4 << 20;
    if config.size > MAX_CONFIG {
        return Err(ResolveError::ConfigTooLarge {
            digest: config.digest.clone(),
            size: config.size,
        }
        .into());
    }
    let mut stream = registry.blob_stream(reference, &config.digest).await?;
    let mut bytes = Vec::with_capacity(config.size as usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| ResolveError::ConfigUnreadable {
            digest: config.digest.clone(),
            source,
        })?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > config.size {
            break;
        }
    }
    if Digest::of_bytes(&bytes) != config.digest {
        return Err(ResolveError::ConfigDigest {
            digest: config.digest.clone(),
        }
        .into());
    }
    Ok(labels(&bytes))
}

/// The labels of an image config (oci-spec's [`ImageConfiguration`]); a
/// config that is not one has none, as one without labels.
fn labels(config: &[u8]) -> BTreeMap<String, String> {
    serde_json::from_slice::<ImageConfiguration>(config)
        .ok()
        .and_then(|c| c.config().as_ref()?.labels().clone())
        .map(|labels| labels.into_iter().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
