//! The lock: a resolved request with every artifact pinned by digest.
//! It is canonical — the same request against the same registry state
//! serializes to the same bytes — and its identity is the sha256 of those
//! bytes (the "lock digest"), which names generations and bundles.

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::profile::{Layout, RootfsPaths};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The lock format version this build reads and writes.
pub const LOCK_VERSION: u32 = 1;

/// A content descriptor: a blob by digest, size and media type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

/// One artifact pinned to its platform manifest: what every role shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinned {
    /// The reference it was resolved from (tag or digest form).
    pub reference: String,
    /// The platform manifest's digest.
    pub digest: Digest,
    /// The platform manifest's size and media type (to write bundles).
    pub size: u64,
    pub media_type: String,
    /// The image index the manifest was picked from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Digest>,
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// The cosign signature verified at resolve time, when one was
    /// required: its blobs travel with the artifact so an offline host
    /// can check it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<crate::signature::record::SignatureRecord>,
}

impl Pinned {
    /// Every blob this artifact needs, manifest first.
    pub fn blobs(&self) -> Vec<Blob> {
        let mut all = vec![Blob {
            digest: self.digest.clone(),
            size: self.size,
            media_type: self.media_type.clone(),
        }];
        all.push(self.config.clone());
        all.extend(self.layers.iter().cloned());
        if let Some(signature) = &self.signature {
            all.extend(signature.blobs());
        }
        all
    }

    /// The unpacked size is unknown before unpacking; this is the download size.
    pub fn download_size(&self) -> u64 {
        self.size + self.config.size + self.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

/// The server artifact of a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerLock {
    #[serde(flatten)]
    pub pinned: Pinned,
    pub version: String,
    pub layout: Layout,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<RootfsPaths>,
}

/// One extension artifact of a lock, with what install needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionLock {
    pub name: String,
    pub version: String,
    #[serde(flatten)]
    pub pinned: Pinned,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preload: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ld_library_path: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bin_path: Vec<String>,
}

/// Which profile a lock was resolved against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRef {
    pub name: String,
    pub digest: Digest,
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub major: u32,
    pub extensions: Vec<String>,
}

/// A resolved request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub version: u32,
    pub platform: String,
    pub profile: ProfileRef,
    pub request: Request,
    pub server: ServerLock,
    pub extensions: Vec<ExtensionLock>,
}

impl Lock {
    /// The canonical bytes of this lock.
    pub fn to_yaml(&self) -> Result<String> {
        let body = serde_saphyr::to_string(self)
            .map_err(|e| Error::internal(format!("cannot serialize lock: {e}")))?;
        let newline = if body.ends_with('\n') { "" } else { "\n" };
        Ok(format!(
            "# pgoci lock: generated, do not edit\n{body}{newline}"
        ))
    }

    /// The lock digest: sha256 of the canonical bytes.
    pub fn digest(&self) -> Result<Digest> {
        Ok(Digest::of_bytes(self.to_yaml()?.as_bytes()))
    }

    /// Parses a lock; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let lock: Lock = serde_saphyr::from_str(text).map_err(|e| {
            Error::usage(format!(
                "{origin} is not a pgoci lock: {}",
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
        })?;
        if lock.version != LOCK_VERSION {
            return Err(Error::usage(format!(
                "{origin} is lock version {}, this pgoci reads version {LOCK_VERSION}",
                lock.version
            ))
            .hint("re-create it with `pgoci resolve`"));
        }
        Ok(lock)
    }

    /// Reads and parses a lock file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_path(path, "read lock")
            .map_err(|e| Error::usage(e.message))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Every artifact of the lock, server first.
    pub fn artifacts(&self) -> impl Iterator<Item = &Pinned> {
        std::iter::once(&self.server.pinned).chain(self.extensions.iter().map(|e| &e.pinned))
    }

    /// Every distinct blob of the lock, in a stable order.
    pub fn blobs(&self) -> Vec<Blob> {
        let mut seen = std::collections::BTreeSet::new();
        self.artifacts()
            .flat_map(|a| a.blobs())
            .filter(|b| seen.insert(b.digest.clone()))
            .collect()
    }

    /// The PostgreSQL major.
    pub fn major(&self) -> u32 {
        self.request.major
    }

    /// Total bytes to download for this lock.
    pub fn download_size(&self) -> u64 {
        self.blobs().iter().map(|b| b.size).sum()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn blob(byte: u8, size: u64) -> Blob {
        Blob {
            digest: Digest::of_bytes(&[byte]),
            size,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        }
    }

    pub fn sample() -> Lock {
        let pinned = |b: u8| Pinned {
            reference: format!("127.0.0.1:5000/x/{b}:1"),
            digest: Digest::of_bytes(&[b, b]),
            size: 500,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            index: None,
            config: blob(b + 100, 10),
            layers: vec![blob(b, 1000)],
            signature: None,
        };
        Lock {
            version: LOCK_VERSION,
            platform: "linux/amd64".into(),
            profile: ProfileRef {
                name: "t".into(),
                digest: Digest::of_bytes(b"p"),
            },
            request: Request {
                major: 15,
                extensions: vec!["pg_cron".into()],
            },
            server: ServerLock {
                pinned: pinned(1),
                version: "15.18".into(),
                layout: Layout::Rootfs,
                paths: Some(RootfsPaths {
                    bin: "/usr/lib/postgresql/15/bin".into(),
                    lib: "/usr/lib/postgresql/15/lib".into(),
                    share: "/usr/share/postgresql/15".into(),
                }),
            },
            extensions: vec![ExtensionLock {
                name: "pg_cron".into(),
                version: "1.4.2".into(),
                pinned: pinned(2),
                preload: Some("pg_cron".into()),
                settings: [("cron.database_name".to_string(), "postgres".to_string())].into(),
                ld_library_path: vec![],
                env: BTreeMap::new(),
                bin_path: vec![],
            }],
        }
    }

    #[test]
    fn round_trips_byte_identically() {
        let lock = sample();
        let text = lock.to_yaml().unwrap();
        let again = Lock::parse(&text, "test").unwrap();
        assert_eq!(again, lock);
        assert_eq!(again.to_yaml().unwrap(), text);
    }

    #[test]
    fn blobs_are_deduplicated() {
        let mut lock = sample();
        lock.extensions[0].pinned.layers = lock.server.pinned.layers.clone();
        assert_eq!(lock.blobs().len(), 5);
    }
}
