//! What travels beside the locked images so a site's registry can be a
//! faithful copy of the origin: the image index a tag named (with every
//! manifest it lists, so a registry accepts it again), and the referrers of
//! each locked manifest and index — cosign signatures, attestations and
//! SBOMs under cosign's tags (`sha256-<hex>.sig`, `.att`, `.sbom`), OCI 1.1
//! referrers (the referrers API, and the `sha256-<hex>` fallback tag index a
//! registry without the API keeps). The lock does not name them (it stays
//! what resolve pinned); the bundle lists them in its `index.json`.
//!
//! What was found for an artifact is kept in the cache beside its blobs
//! (`companions/<key>.json`, the manifests themselves as blobs, each
//! committed only after its digest was checked), so `pgoci pull` on the
//! connected side is enough: `bundle export` from that warm cache asks no
//! registry ([`cached`]). A record is used only while every manifest it
//! names is in the cache; each is read back through its digest.

use crate::digest::Digest;
use crate::error::{Classify, IoContext, Kind, Result};
use crate::lock::{Blob, Lock};
use crate::oci::{digest_of, Descriptor, Document};
use crate::registry::{RawManifest, Registry};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Why a manifest travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The image index a locked reference's tag names.
    Index,
    /// Another manifest an index lists (another platform, an attestation).
    Manifest,
    /// A manifest (or referrers index) about another: signature,
    /// attestation, SBOM.
    Referrer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Index => "index",
            Role::Manifest => "manifest",
            Role::Referrer => "referrer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "index" => Some(Role::Index),
            "manifest" => Some(Role::Manifest),
            "referrer" => Some(Role::Referrer),
            _ => None,
        }
    }
}

/// One manifest beside the locked ones, where it is published and what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Companion {
    /// `registry/repository`, as in the lock's references.
    pub repository: String,
    /// The tag it is published under, if any (else by digest only).
    pub tag: Option<String>,
    pub role: Role,
    /// The manifest a referrer is about.
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    pub manifest: Blob,
    /// Config and layers of an image manifest; none for an index (its
    /// manifests are companions of their own, listed before it).
    pub blobs: Vec<Blob>,
}

impl Companion {
    /// The reference it is published at: `repo:tag`, else `repo@digest`.
    pub fn reference(&self) -> String {
        match &self.tag {
            Some(tag) => format!("{}:{tag}", self.repository),
            None => format!("{}@{}", self.repository, self.manifest.digest),
        }
    }

    /// Whether the manifest is an index (published after what it lists).
    pub fn is_index(&self) -> bool {
        is_index_type(&self.manifest.media_type)
    }
}

fn is_index_type(media_type: &str) -> bool {
    media_type == crate::registry::OCI_INDEX || media_type == crate::registry::DOCKER_LIST
}

/// What is wrong with a manifest that travels beside an image, or with
/// what a registry has beside it.
#[derive(Debug, thiserror::Error)]
pub enum CompanionError {
    /// Bytes that are not an image manifest or index.
    #[error("{origin} is not a manifest: {source}")]
    NotAManifest {
        origin: String,
        source: serde_json::Error,
    },
    /// A descriptor whose digest is of another algorithm than sha256.
    #[error("{origin} names `{digest}`, not a sha256 digest")]
    NotSha256 { origin: String, digest: String },
    /// The cache's record could not be written as JSON (a bug).
    #[error("companion record: {0}")]
    Record(serde_json::Error),
    #[error("{origin}: more than {MAX_PER_IMAGE} manifests beside one image")]
    TooMany { origin: String },
    #[error("{origin}: image indexes nest deeper than {MAX_DEPTH}")]
    TooDeep { origin: String },
}

impl Classify for CompanionError {
    fn kind(&self) -> Kind {
        match self {
            CompanionError::Record(_) => Kind::Internal,
            _ => Kind::Integrity,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            CompanionError::TooMany { .. } => {
                Some("export with --images-only to carry the images alone".into())
            }
            CompanionError::TooDeep { .. } => Some("export a lock of a flatter image".into()),
            _ => None,
        }
    }
}

/// The blob a descriptor names, its digest checked to be sha256.
fn blob(d: &Descriptor, origin: &str) -> Result<Blob> {
    Ok(Blob {
        digest: digest_of(d).map_err(|_| CompanionError::NotSha256 {
            origin: origin.to_string(),
            digest: d.digest().to_string(),
        })?,
        size: d.size(),
        media_type: d.media_type().to_string(),
    })
}

/// What a manifest's bytes say: (config + layers, listed manifests,
/// artifact type, subject).
pub struct Parsed {
    pub blobs: Vec<Blob>,
    pub manifests: Vec<Blob>,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
}

/// Reads what a manifest or index refers to.
pub fn parse(bytes: &[u8], origin: &str) -> Result<Parsed> {
    let doc = Document::parse(bytes).map_err(|source| CompanionError::NotAManifest {
        origin: origin.to_string(),
        source,
    })?;
    let blobs = doc
        .config()
        .into_iter()
        .chain(doc.layers())
        .map(|d| blob(d, origin))
        .collect::<Result<Vec<_>>>()?;
    let manifests = doc
        .manifests()
        .iter()
        .map(|m| blob(m, origin))
        .collect::<Result<Vec<_>>>()?;
    // An OCI 1.1 artifact says what it is; a cosign or older artifact
    // says it by its config's or first layer's media type.
    let plain_config = |t: &str| {
        t == "application/vnd.oci.image.config.v1+json"
            || t == "application/vnd.docker.container.image.v1+json"
    };
    let artifact_type = doc
        .artifact_type()
        .map(ToString::to_string)
        .or_else(|| {
            doc.config()
                .map(|c| c.media_type().to_string())
                .filter(|t| !plain_config(t))
        })
        .or_else(|| doc.layers().first().map(|l| l.media_type().to_string()));
    Ok(Parsed {
        blobs,
        manifests,
        artifact_type,
        subject: doc.subject().and_then(|s| digest_of(s).ok()),
    })
}

/// The suffixes of cosign's tags beside an image.
const COSIGN_SUFFIXES: &[&str] = &["sig", "att", "sbom"];
/// How deep indexes may nest (an index of indexes of manifests).
const MAX_DEPTH: usize = 3;
/// The most manifests one image may bring beside it: real images have a
/// handful (platforms, attestations, signatures); a registry answering
/// with thousands is not followed.
const MAX_PER_IMAGE: usize = 512;

/// Finds everything that travels beside `locks`' artifacts, in the order
/// it must be published (what a manifest lists before the manifest), and
/// writes every companion manifest into `cache`. Their configs and layers
/// are returned to be pulled like the lock's blobs. An artifact whose
/// companions the cache already records (an earlier pull or export) costs
/// no request; what is found for the others is recorded.
pub async fn discover(
    registry: &Registry,
    locks: &[Lock],
    cache: &crate::cache::Cache,
) -> Result<Vec<Companion>> {
    // Each artifact's own questions in order, a few artifacts at once
    // (most answers are a quick 404); the results merge in lock order.
    let per_artifact: Vec<Result<Vec<Companion>>> =
        futures_util::stream::iter(artifacts(locks).into_iter().map(|pinned| async move {
            if let Some(known) = load(cache, pinned) {
                return Ok(known);
            }
            let mut found = Found {
                registry,
                cache,
                out: Vec::new(),
                seen: BTreeSet::from([pinned.digest.clone()]),
            };
            found.artifact(pinned).await?;
            save(cache, pinned, &found.out)?;
            Ok(found.out)
        }))
        .buffered(4)
        .collect()
        .await;
    merge(locks, per_artifact.into_iter().collect::<Result<Vec<_>>>()?)
}

/// What travels beside `locks`' artifacts as the cache records it (see
/// [`discover`]), with no registry asked; `None` when an artifact has no
/// record, or one naming a manifest the cache no longer holds.
pub fn cached(locks: &[Lock], cache: &crate::cache::Cache) -> Result<Option<Vec<Companion>>> {
    let mut per_artifact = Vec::new();
    for pinned in artifacts(locks) {
        match load(cache, pinned) {
            Some(known) => per_artifact.push(known),
            None => return Ok(None),
        }
    }
    merge(locks, per_artifact).map(Some)
}

/// Every artifact of `locks`, each once, in lock order.
fn artifacts(locks: &[Lock]) -> Vec<&crate::lock::Pinned> {
    let mut out: Vec<&crate::lock::Pinned> = Vec::new();
    for pinned in locks.iter().flat_map(Lock::artifacts) {
        if !out.iter().any(|a| a.digest == pinned.digest) {
            out.push(pinned);
        }
    }
    out
}

/// Each artifact's companions in order, each once; the locked manifests
/// travel anyway, never as companions.
fn merge(locks: &[Lock], per_artifact: Vec<Vec<Companion>>) -> Result<Vec<Companion>> {
    let locked: BTreeSet<Digest> = locks
        .iter()
        .flat_map(Lock::artifacts)
        .map(|p| p.digest.clone())
        .collect();
    let mut out: Vec<Companion> = Vec::new();
    for found in per_artifact {
        for c in found {
            if !locked.contains(&c.manifest.digest)
                && !out.iter().any(|o| o.manifest.digest == c.manifest.digest)
            {
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// What the cache keeps of one artifact's companions. Only where each
/// manifest is published and why; what it needs is read again from the
/// manifest's own (verified) bytes.
#[derive(Serialize, Deserialize)]
struct Record {
    reference: String,
    digest: Digest,
    index: Option<Digest>,
    companions: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    repository: String,
    tag: Option<String>,
    role: String,
    subject: Option<Digest>,
    manifest: Blob,
}

/// Where the record of an artifact is: named by what was asked (the
/// reference, its manifest and index), so another repository's copy of
/// the same image has its own.
fn record_path(cache: &crate::cache::Cache, pinned: &crate::lock::Pinned) -> std::path::PathBuf {
    let index = pinned.index.as_ref().map(Digest::to_string);
    let key = Digest::of_bytes(
        format!(
            "{}\n{}\n{}",
            pinned.reference,
            pinned.digest,
            index.as_deref().unwrap_or("-")
        )
        .as_bytes(),
    );
    cache
        .root()
        .join("companions")
        .join(format!("{}.json", key.hex()))
}

/// Records what was found for an artifact (its manifests are in the cache).
fn save(
    cache: &crate::cache::Cache,
    pinned: &crate::lock::Pinned,
    found: &[Companion],
) -> Result<()> {
    let record = Record {
        reference: pinned.reference.clone(),
        digest: pinned.digest.clone(),
        index: pinned.index.clone(),
        companions: found
            .iter()
            .map(|c| Entry {
                repository: c.repository.clone(),
                tag: c.tag.clone(),
                role: c.role.as_str().to_string(),
                subject: c.subject.clone(),
                manifest: c.manifest.clone(),
            })
            .collect(),
    };
    let path = record_path(cache, pinned);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_path(dir, "create")?;
    }
    let bytes = serde_json::to_vec_pretty(&record).map_err(CompanionError::Record)?;
    crate::fsutil::write_atomic(&path, &bytes)
}

/// An artifact's recorded companions, each manifest read back from the
/// cache through its digest; `None` if there is no usable record.
fn load(cache: &crate::cache::Cache, pinned: &crate::lock::Pinned) -> Option<Vec<Companion>> {
    use crate::blobs::BlobSource;
    let path = record_path(cache, pinned);
    let file = std::fs::File::open(&path).ok()?;
    let bytes = crate::limits::read_capped(file, crate::limits::DOCUMENT_CAP).ok()?;
    let record: Record = serde_json::from_slice(&bytes).ok()?;
    if record.reference != pinned.reference
        || record.digest != pinned.digest
        || record.index != pinned.index
    {
        return None;
    }
    let mut out = Vec::new();
    for e in record.companions {
        let role = Role::parse(&e.role)?;
        if !cache.has(&e.manifest) {
            return None;
        }
        let bytes = cache.read_small(&e.manifest).ok()?;
        let parsed = parse(&bytes, &format!("manifest {}", e.manifest.digest)).ok()?;
        let index = is_index_type(&e.manifest.media_type);
        out.push(Companion {
            repository: e.repository,
            tag: e.tag,
            role,
            subject: parsed.subject.or(e.subject),
            artifact_type: parsed.artifact_type,
            blobs: if index { Vec::new() } else { parsed.blobs },
            manifest: e.manifest,
        });
    }
    Some(out)
}

struct Found<'a> {
    registry: &'a Registry,
    cache: &'a crate::cache::Cache,
    out: Vec<Companion>,
    seen: BTreeSet<Digest>,
}

impl Found<'_> {
    /// The index a locked reference's tag named, then the referrers of the
    /// platform manifest and of that index.
    async fn artifact(&mut self, pinned: &crate::lock::Pinned) -> Result<()> {
        let reference = Registry::parse_reference(&pinned.reference)?;
        let repository = format!("{}/{}", reference.registry(), reference.repository());
        let mut subjects = vec![pinned.digest.clone()];
        if let Some(index) = &pinned.index {
            self.carry(
                &reference,
                &repository,
                index,
                reference.tag().map(str::to_string),
                Role::Index,
                None,
                0,
            )
            .await?;
            subjects.push(index.clone());
        }
        for subject in subjects {
            self.referrers(&reference, &repository, &subject).await?;
        }
        Ok(())
    }

    /// The referrers of `subject`: cosign's tags, the OCI 1.1 fallback tag,
    /// then what the referrers API lists besides.
    async fn referrers(
        &mut self,
        reference: &oci_client::Reference,
        repository: &str,
        subject: &Digest,
    ) -> Result<()> {
        let base = format!("sha256-{}", subject.hex());
        let tags: Vec<String> = COSIGN_SUFFIXES
            .iter()
            .map(|s| format!("{base}.{s}"))
            .chain(std::iter::once(base.clone()))
            .collect();
        let tagged: Vec<oci_client::Reference> = tags
            .iter()
            .map(|tag| {
                oci_client::Reference::with_tag(
                    reference.registry().to_string(),
                    reference.repository().to_string(),
                    tag.clone(),
                )
            })
            .collect();
        // The questions at once (most answers are a quick 404: one round
        // trip, not five); the answers are taken in order.
        let by_digest = reference.clone_with_digest(subject.to_string());
        let registry = self.registry;
        let (answers, entries) = futures_util::future::join(
            futures_util::future::join_all(tagged.iter().map(|t| registry.manifest_if_exists(t))),
            registry.referrers(&by_digest, None),
        )
        .await;
        for (tag, answer) in tags.into_iter().zip(answers) {
            if let Some(m) = answer? {
                self.carry_fetched(
                    reference,
                    repository,
                    m,
                    Some(tag),
                    Role::Referrer,
                    Some(subject.clone()),
                    0,
                )
                .await?;
            }
        }
        let mut listed: Vec<Digest> = Vec::new();
        for entry in entries? {
            listed.push(entry.digest.parse()?);
        }
        listed.sort();
        for digest in listed {
            self.carry(
                reference,
                repository,
                &digest,
                None,
                Role::Referrer,
                Some(subject.clone()),
                0,
            )
            .await?;
        }
        Ok(())
    }

    /// Fetches a manifest by digest and carries it.
    #[allow(clippy::too_many_arguments)]
    async fn carry(
        &mut self,
        reference: &oci_client::Reference,
        repository: &str,
        digest: &Digest,
        tag: Option<String>,
        role: Role,
        subject: Option<Digest>,
        depth: usize,
    ) -> Result<()> {
        if self.seen.contains(digest) {
            return Ok(());
        }
        let m = self
            .registry
            .manifest(&reference.clone_with_digest(digest.to_string()))
            .await?;
        self.carry_fetched(reference, repository, m, tag, role, subject, depth)
            .await
    }

    /// Carries a fetched manifest: an index's manifests first, then it.
    #[allow(clippy::too_many_arguments)]
    fn carry_fetched<'s>(
        &'s mut self,
        reference: &'s oci_client::Reference,
        repository: &'s str,
        m: RawManifest,
        tag: Option<String>,
        role: Role,
        subject: Option<Digest>,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 's>> {
        Box::pin(async move {
            if !self.seen.insert(m.digest.clone()) {
                return Ok(());
            }
            let origin = format!("{repository}@{}", m.digest);
            if self.out.len() >= MAX_PER_IMAGE {
                return Err(CompanionError::TooMany { origin }.into());
            }
            let parsed = parse(&m.bytes, &origin)?;
            if m.is_index() {
                if depth >= MAX_DEPTH {
                    return Err(CompanionError::TooDeep { origin }.into());
                }
                // What an index lists is about the same subject (a
                // referrers index) or part of the same image.
                let child_role = match role {
                    Role::Referrer => Role::Referrer,
                    _ => Role::Manifest,
                };
                for child in &parsed.manifests {
                    self.carry(
                        reference,
                        repository,
                        &child.digest,
                        None,
                        child_role,
                        subject.clone(),
                        depth + 1,
                    )
                    .await?;
                }
            }
            self.store(&m)?;
            self.out.push(Companion {
                repository: repository.to_string(),
                tag,
                role,
                subject: parsed.subject.or(subject),
                artifact_type: parsed.artifact_type,
                manifest: Blob {
                    digest: m.digest.clone(),
                    size: m.bytes.len() as u64,
                    media_type: m.media_type.clone(),
                },
                blobs: if m.is_index() {
                    Vec::new()
                } else {
                    parsed.blobs
                },
            });
            Ok(())
        })
    }

    /// Writes a manifest (verified by the registry client) into the cache.
    fn store(&self, m: &RawManifest) -> Result<()> {
        let blob = Blob {
            digest: m.digest.clone(),
            size: m.bytes.len() as u64,
            media_type: m.media_type.clone(),
        };
        if self.cache.has(&blob) {
            return Ok(());
        }
        let temp = self.cache.temp_path(&m.digest);
        std::fs::write(&temp, &m.bytes).with_path(&temp, "write")?;
        self.cache.commit_verified(&temp, &m.digest)
    }
}

#[cfg(test)]
mod tests;
