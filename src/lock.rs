//! The lock: a resolved request with every artifact pinned by digest.
//! It is canonical — the same request against the same registry state
//! serializes to the same bytes — and its identity is the sha256 of those
//! bytes (the "lock digest"), which names generations and bundles.

use crate::digest::Digest;
use crate::error::{Classify, Kind, Result};
use crate::limits::{read_file_capped, ReadError, DOCUMENT_CAP};
use crate::names::{
    check_text, ConfigParam, EnvKey, ExtensionName, ImagePath, Invalid, LibraryName,
};
use crate::profile::{Layout, RootfsPaths};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    pub signature: Option<SignatureRecord>,
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
    pub name: ExtensionName,
    pub version: String,
    #[serde(flatten)]
    pub pinned: Pinned,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preload: Option<LibraryName>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<ConfigParam, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ld_library_path: Vec<ImagePath>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<EnvKey, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bin_path: Vec<ImagePath>,
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
    pub extensions: Vec<ExtensionName>,
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
        let body = serde_saphyr::to_string(self).map_err(LockError::Serialize)?;
        let newline = if body.ends_with('\n') { "" } else { "\n" };
        Ok(format!(
            "# pgoci lock: generated, do not edit\n{body}{newline}"
        ))
    }

    /// The lock digest: sha256 of the canonical bytes.
    pub fn digest(&self) -> Result<Digest> {
        Ok(Digest::of_bytes(self.to_yaml()?.as_bytes()))
    }

    /// Parses a lock; `origin` names it in errors. Names and paths are
    /// checked as they are read (see [`crate::names`]), free text after;
    /// a lock that breaks a rule is exit 5 naming the field.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let lock: Lock = serde_saphyr::from_str(text).map_err(|source| LockError::Malformed {
            origin: origin.to_string(),
            source: Box::new(source),
        })?;
        if lock.version != LOCK_VERSION {
            return Err(LockError::UnsupportedVersion {
                origin: origin.to_string(),
                version: lock.version,
            }
            .into());
        }
        lock.check_text().map_err(|source| LockError::Field {
            origin: origin.to_string(),
            source,
        })?;
        Ok(lock)
    }

    /// Refuses control characters in every free-text field, naming it.
    fn check_text(&self) -> Result<(), Invalid> {
        check_text("platform", &self.platform)?;
        check_text("profile.name", &self.profile.name)?;
        let pinned = |at: &str, p: &Pinned| -> Result<(), Invalid> {
            check_text(&format!("{at}.reference"), &p.reference)?;
            check_text(&format!("{at}.media_type"), &p.media_type)?;
            for b in std::iter::once(&p.config).chain(&p.layers) {
                check_text(&format!("{at}.layers.media_type"), &b.media_type)?;
            }
            Ok(())
        };
        pinned("server", &self.server.pinned)?;
        check_text("server.version", &self.server.version)?;
        for e in &self.extensions {
            let at = format!("extensions.{}", e.name);
            pinned(&at, &e.pinned)?;
            check_text(&format!("{at}.version"), &e.version)?;
            for (k, v) in &e.settings {
                check_text(&format!("{at}.settings.{k}"), v)?;
            }
            for (k, v) in &e.env {
                check_text(&format!("{at}.env.{k}"), v)?;
            }
        }
        Ok(())
    }

    /// Reads and parses a lock file (at most [`DOCUMENT_CAP`] bytes).
    pub fn read(path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        let bytes = read_file_capped(&path, DOCUMENT_CAP).map_err(|e| match e {
            ReadError::Io(source) => LockError::Unreadable {
                path: path.clone(),
                source,
            },
            ReadError::TooLarge(limit) => LockError::TooLarge {
                path: path.clone(),
                limit,
            },
        })?;
        let text = String::from_utf8(bytes).map_err(|source| LockError::NotUtf8 {
            path: path.clone(),
            source,
        })?;
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

/// Why a lock cannot be read or written. `origin` names where it came
/// from (a path, or a file inside a bundle).
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file cannot be opened or read.
    #[error("cannot read lock {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Larger than any lock pgoci writes.
    #[error("lock {} is larger than the {limit}-byte limit", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("lock {} is not UTF-8", path.display())]
    NotUtf8 {
        path: PathBuf,
        #[source]
        source: std::string::FromUtf8Error,
    },
    /// Not YAML, or not the shape of a lock (the parser's words, on one line).
    #[error("{origin} is not a pgoci lock: {}", one_line(&source.to_string()))]
    Malformed {
        origin: String,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// A lock of another format version.
    #[error("{origin} is lock version {version}, this pgoci reads version {LOCK_VERSION}")]
    UnsupportedVersion { origin: String, version: u32 },
    /// A free-text field with what no lock may hold (control characters).
    #[error("{origin}: {source}")]
    Field {
        origin: String,
        #[source]
        source: Invalid,
    },
    /// The lock cannot be written as YAML (a bug).
    #[error("cannot serialize lock: {0}")]
    Serialize(#[source] serde_saphyr::ser::Error),
}

impl Classify for LockError {
    fn kind(&self) -> Kind {
        match self {
            LockError::Unreadable { .. } | LockError::UnsupportedVersion { .. } => Kind::Usage,
            LockError::Serialize(_) => Kind::Internal,
            _ => Kind::Integrity,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            LockError::UnsupportedVersion { .. } => {
                Some("re-create it with `pgoci resolve`".into())
            }
            _ => None,
        }
    }
}

/// A parser's message on one line, as every pgoci error is.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The signature of one artifact, in a lock: pointers to the blobs an
/// offline host checks again (the checking is `signature::record`'s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRecord {
    /// Who signed, as resolve's policy named it (`key sha256:…` or
    /// `keyless SUBJECT issuer ISSUER`).
    pub signer: String,
    /// The digest the signature covers: the platform manifest's or the
    /// index's it was picked from.
    pub signed: Digest,
    /// The cosign signature manifest.
    pub manifest: Blob,
    /// Its simple-signing payloads.
    pub payloads: Vec<Blob>,
    /// The image index, when the signature covers it (its bytes prove the
    /// platform manifest is one of its entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Blob>,
}

impl SignatureRecord {
    /// Every blob to carry: index, signature manifest, payloads.
    pub fn blobs(&self) -> Vec<Blob> {
        self.index
            .iter()
            .cloned()
            .chain(std::iter::once(self.manifest.clone()))
            .chain(self.payloads.iter().cloned())
            .collect()
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
                extensions: vec![ExtensionName::parse("pg_cron").unwrap()],
            },
            server: ServerLock {
                pinned: pinned(1),
                version: "15.18".into(),
                layout: Layout::Rootfs,
                paths: Some(RootfsPaths {
                    bin: ImagePath::parse("/usr/lib/postgresql/15/bin").unwrap(),
                    lib: ImagePath::parse("/usr/lib/postgresql/15/lib").unwrap(),
                    share: ImagePath::parse("/usr/share/postgresql/15").unwrap(),
                }),
            },
            extensions: vec![ExtensionLock {
                name: ExtensionName::parse("pg_cron").unwrap(),
                version: "1.4.2".into(),
                pinned: pinned(2),
                preload: Some(LibraryName::parse("pg_cron").unwrap()),
                settings: [(
                    ConfigParam::parse("cron.database_name").unwrap(),
                    "postgres".to_string(),
                )]
                .into(),
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

    /// Each hostile edit of a good lock is refused with exit 5, naming the field.
    #[test]
    fn hostile_fields_are_refused_naming_them() {
        let good = sample().to_yaml().unwrap();
        let cases = [
            ("name: pg_cron", "name: ../../x", "extension name"),
            ("name: pg_cron", "name: /abs", "extension name"),
            (
                "cron.database_name: postgres",
                "\"a\\narchive_command\": x",
                "settings key",
            ),
            (
                "cron.database_name: postgres",
                "cron.database_name: \"a\\nb\"",
                "settings.cron.database_name",
            ),
            (
                "bin: /usr/lib/postgresql/15/bin",
                "bin: /usr/../../etc",
                "image path",
            ),
            ("preload: pg_cron", "preload: \"a,b\"", "preload library"),
            (
                "platform: linux/amd64",
                "platform: \"linux\\ramd64\"",
                "platform",
            ),
        ];
        for (from, to, names) in cases {
            assert!(good.contains(from), "{from}");
            let bad = good.replacen(from, to, 1);
            let err = Lock::parse(&bad, "t").unwrap_err();
            assert_eq!(err.kind.exit_code(), 5, "{to}: {}", err.message);
            assert!(err.message.contains(names), "{to}: {}", err.message);
        }
        let mut lock = sample();
        lock.extensions[0]
            .env
            .insert(EnvKey::parse("X").unwrap(), "a\"\nUser=root".to_string());
        let err = Lock::parse(&lock.to_yaml().unwrap(), "t").unwrap_err();
        assert!(err.message.contains("env.X"), "{}", err.message);
        let bad = good.replacen(
            "settings:",
            "env:\n    \"A\\\"\\nUser=root\": x\n  settings:",
            1,
        );
        let err = Lock::parse(&bad, "t").unwrap_err();
        assert!(
            err.message.contains("environment variable name"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_lock_of_another_version_is_refused_naming_it() {
        let text = sample()
            .to_yaml()
            .unwrap()
            .replacen("version: 1\n", "version: 2\n", 1);
        let err = Lock::parse(&text, "old.lock").unwrap_err();
        assert!(
            matches!(
                err.typed::<LockError>(),
                Some(LockError::UnsupportedVersion { origin, version: 2 }) if origin == "old.lock"
            ),
            "{err:?}"
        );
        assert_eq!(
            err.message,
            "old.lock is lock version 2, this pgoci reads version 1"
        );
        assert_eq!(err.kind.exit_code(), 2);
        assert_eq!(
            err.hint.as_deref(),
            Some("re-create it with `pgoci resolve`")
        );
    }

    #[test]
    fn a_lock_that_is_not_one_keeps_the_parser_error_below() {
        let err = Lock::parse("version: [1\n", "t.lock").unwrap_err();
        assert!(
            matches!(err.typed::<LockError>(), Some(LockError::Malformed { .. })),
            "{err:?}"
        );
        assert!(
            err.message.starts_with("t.lock is not a pgoci lock: "),
            "{}",
            err.message
        );
        assert!(!err.message.contains('\n'), "{}", err.message);
        assert_eq!(err.kind.exit_code(), 5);
        assert_eq!(err.causes().count(), 1, "{err:?}");
        // A field no lock may hold names it, as a typed error too.
        let bad = sample().to_yaml().unwrap().replacen(
            "platform: linux/amd64",
            "platform: \"linux\\ramd64\"",
            1,
        );
        let err = Lock::parse(&bad, "t").unwrap_err();
        assert!(
            matches!(err.typed::<LockError>(), Some(LockError::Field { source, .. }) if source.what == "platform"),
            "{err:?}"
        );
    }

    #[test]
    fn a_lock_file_too_large_or_missing_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.lock");
        std::fs::write(&big, vec![b'#'; DOCUMENT_CAP as usize + 1]).unwrap();
        let err = Lock::read(&big).unwrap_err();
        assert!(
            matches!(err.typed::<LockError>(), Some(LockError::TooLarge { limit, .. }) if *limit == DOCUMENT_CAP),
            "{err:?}"
        );
        assert_eq!(
            err.message,
            format!(
                "lock {} is larger than the {DOCUMENT_CAP}-byte limit",
                big.display()
            )
        );
        assert_eq!(err.kind.exit_code(), 5);
        let gone = dir.path().join("gone.lock");
        let err = Lock::read(&gone).unwrap_err();
        assert!(
            matches!(err.typed::<LockError>(), Some(LockError::Unreadable { path, .. }) if path == &gone),
            "{err:?}"
        );
        assert_eq!(err.kind.exit_code(), 2);
        assert!(
            err.message
                .starts_with(&format!("cannot read lock {}: ", gone.display())),
            "{}",
            err.message
        );
    }

    #[test]
    fn blobs_are_deduplicated() {
        let mut lock = sample();
        lock.extensions[0].pinned.layers = lock.server.pinned.layers.clone();
        assert_eq!(lock.blobs().len(), 5);
    }
}
