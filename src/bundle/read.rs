//! Reading a bundle: opening a directory or `.tar`, choosing a lock, and
//! every blob read through its digest.

use super::{
    Descriptor, IndexJson, LAYOUT_FILE, LOCKS, LOCK_DIGEST, LOCK_FILE, MAX_LOCK_BYTES, REFERS,
    REF_NAME, REPOSITORY,
};
use crate::blobs::BlobSource;
use crate::companions::{Companion, Role};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::limits::{read_capped, ReadError, DOCUMENT_CAP};
use crate::lock::{Blob, Lock};
use serde::Deserialize;
use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// An opened bundle: its locks (one of them chosen), index and blob source.
pub struct Bundle {
    pub path: PathBuf,
    /// The chosen lock ([`Bundle::choose`]); the first one until then.
    pub lock: Lock,
    pub lock_digest: Digest,
    /// Every lock of the bundle, the first one first.
    pub locks: Vec<(Lock, Digest)>,
    pub index: IndexJson,
    storage: Storage,
}

/// Which lock of a bundle to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockChoice {
    /// The only one (refused when there are several).
    Only,
    /// The one for this PostgreSQL major.
    Major(u32),
    /// The one whose digest starts with this (`sha256:` optional).
    Digest(String),
}

enum Storage {
    Dir(PathBuf),
    /// Blob name → (offset, size) inside the tar file.
    Tar(PathBuf, HashMap<String, (u64, u64)>),
}

impl Storage {
    /// Reads a small document of the layout, refusing one over [`DOCUMENT_CAP`].
    fn read_file(&self, name: &str) -> std::io::Result<Vec<u8>> {
        read_capped(self.open_name(name)?, DOCUMENT_CAP).map_err(|e| match e {
            ReadError::Io(e) => e,
            ReadError::TooLarge(_) => {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{name} is {e}"))
            }
        })
    }

    fn open_name(&self, name: &str) -> std::io::Result<Box<dyn Read + Send + '_>> {
        match self {
            Storage::Dir(dir) => Ok(Box::new(std::io::BufReader::with_capacity(
                256 << 10,
                open_regular(&dir.join(name))?,
            ))),
            Storage::Tar(file, entries) => {
                let &(offset, size) = entries.get(name).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, name.to_string())
                })?;
                let mut f = fs::File::open(file)?;
                f.seek(SeekFrom::Start(offset))?;
                Ok(Box::new(std::io::BufReader::with_capacity(
                    256 << 10,
                    f.take(size),
                )))
            }
        }
    }
}

impl Bundle {
    /// Opens a bundle directory or `.tar`, checking layout, index and lock
    /// (not yet the blobs: see [`Bundle::verify`]).
    /// Opens the OCI layout itself (directory or tar) and checks `oci-layout`.
    fn open_layout(path: &Path) -> Result<(Storage, impl Fn(String) -> Error + '_)> {
        let bad = move |why: String| {
            Error::integrity(format!(
                "{} is not a valid pgoci bundle: {why}",
                path.display()
            ))
        };
        let meta = fs::metadata(path)
            .map_err(|e| Error::usage(format!("cannot open bundle {}: {e}", path.display())))?;
        let storage = if meta.is_dir() {
            Storage::Dir(path.to_path_buf())
        } else {
            Storage::Tar(
                path.to_path_buf(),
                scan_tar(path).map_err(|e| bad(e.to_string()))?,
            )
        };
        let layout = storage
            .read_file(LAYOUT_FILE)
            .map_err(|e| bad(format!("oci-layout: {e}")))?;
        let layout: serde_json::Value =
            serde_json::from_slice(&layout).map_err(|e| bad(format!("oci-layout: {e}")))?;
        if layout.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
            return Err(bad("oci-layout is not version 1.0.0".into()));
        }
        Ok((storage, bad))
    }

    /// Opens the layout and parses its `index.json`.
    fn open_indexed(path: &Path) -> Result<(Storage, IndexJson, impl Fn(String) -> Error + '_)> {
        let (storage, bad) = Self::open_layout(path)?;
        let index = storage
            .read_file("index.json")
            .map_err(|e| bad(format!("index.json: {e}")))?;
        let index: IndexJson =
            serde_json::from_slice(&index).map_err(|e| bad(format!("index.json: {e}")))?;
        Ok((storage, index, bad))
    }

    /// Opens any OCI image layout (one skopeo or oras wrote, say) as the
    /// blob source for `lock`: the lock says what to take, the layout only
    /// has to hold those blobs (each verified when read).
    pub fn open_with_lock(path: &Path, lock: Lock) -> Result<Self> {
        let (storage, index, _) = Self::open_indexed(path)?;
        let lock_digest = lock.digest()?;
        Ok(Bundle {
            path: path.to_path_buf(),
            locks: vec![(lock.clone(), lock_digest.clone())],
            lock_digest,
            lock,
            index,
            storage,
        })
    }

    /// Opens a pgoci bundle: layout, index and the lock it carries.
    pub fn open(path: &Path) -> Result<Self> {
        let (storage, index, bad) = Self::open_indexed(path)?;
        let lock_text = storage
            .read_file(LOCK_FILE)
            .map_err(|e| bad(format!("{LOCK_FILE}: {e}")))?;
        let lock_digest = Digest::of_bytes(&lock_text);
        if let Some(want) = index.annotations.get(LOCK_DIGEST) {
            if *want != lock_digest.to_string() {
                return Err(bad(format!(
                    "pgoci.lock has digest {lock_digest} but index.json says {want}"
                )));
            }
        }
        let text =
            String::from_utf8(lock_text).map_err(|_| bad("pgoci.lock is not UTF-8".into()))?;
        let lock = Lock::parse(&text, &format!("{}/pgoci.lock", path.display()))
            .map_err(|e| bad(e.message))?;
        let mut locks = vec![(lock.clone(), lock_digest.clone())];
        let more = index.annotations.get(LOCKS).cloned().unwrap_or_default();
        for want in more.split(',').filter(|d| !d.is_empty()).skip(1) {
            let digest: Digest = want
                .parse()
                .map_err(|_| bad(format!("{LOCKS} lists {want:?}, not a digest")))?;
            // Bounded read, then the digest: a swapped lock is refused.
            let mut text = Vec::new();
            storage
                .open_name(&format!("blobs/sha256/{}", digest.hex()))
                .map_err(|_| bad(format!("lock {digest} is missing")))?
                .take(MAX_LOCK_BYTES + 1)
                .read_to_end(&mut text)
                .map_err(|e| bad(format!("lock {digest}: {e}")))?;
            if text.len() as u64 > MAX_LOCK_BYTES || Digest::of_bytes(&text) != digest {
                return Err(bad(format!("lock {digest} does not match its digest")));
            }
            let text =
                String::from_utf8(text).map_err(|_| bad(format!("lock {digest} is not UTF-8")))?;
            let origin = format!("{} lock {}", path.display(), digest.short());
            let parsed = Lock::parse(&text, &origin).map_err(|e| bad(e.message))?;
            locks.push((parsed, digest));
        }
        for (lock, _) in &locks {
            for pinned in lock.artifacts() {
                if !index.manifests.iter().any(|d| d.digest == pinned.digest) {
                    return Err(bad(format!("index.json does not list {}", pinned.digest)));
                }
            }
        }
        Ok(Bundle {
            path: path.to_path_buf(),
            lock,
            lock_digest,
            locks,
            index,
            storage,
        })
    }

    /// Picks the lock to install; several locks need a choice.
    pub fn choose(&mut self, choice: &LockChoice) -> Result<()> {
        let list = || {
            self.locks
                .iter()
                .map(|(l, d)| format!("PostgreSQL {} ({})", l.major(), d.short()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let matching: Vec<&(Lock, Digest)> = self
            .locks
            .iter()
            .filter(|(l, d)| match choice {
                LockChoice::Only => true,
                LockChoice::Major(m) => l.major() == *m,
                LockChoice::Digest(p) => {
                    let p = p.trim_start_matches("sha256:");
                    !p.is_empty() && d.hex().starts_with(p)
                }
            })
            .collect();
        match matching.as_slice() {
            [(lock, digest)] => {
                self.lock = lock.clone();
                self.lock_digest = digest.clone();
                Ok(())
            }
            [] => Err(Error::usage(format!(
                "bundle {} holds no lock for {}; it holds {}",
                self.path.display(),
                match choice {
                    LockChoice::Major(m) => format!("PostgreSQL {m}"),
                    LockChoice::Digest(p) => format!("digest {p}"),
                    LockChoice::Only => "this install".into(),
                },
                list()
            ))),
            _ => Err(Error::usage(format!(
                "bundle {} holds several locks: {}",
                self.path.display(),
                list()
            ))
            .hint("pick one with --major N or --lock DIGEST")),
        }
    }

    /// Every artifact of every lock, each once.
    pub fn artifacts(&self) -> Vec<crate::lock::Pinned> {
        let mut out: Vec<crate::lock::Pinned> = Vec::new();
        for (lock, _) in &self.locks {
            for p in lock.artifacts() {
                if !out.iter().any(|o| o.digest == p.digest) {
                    out.push(p.clone());
                }
            }
        }
        out
    }

    /// Every blob of every lock, each once.
    fn all_blobs(&self) -> Vec<Blob> {
        let mut out: Vec<Blob> = Vec::new();
        for (lock, _) in &self.locks {
            for b in lock.blobs() {
                if !out.iter().any(|o| o.digest == b.digest) {
                    out.push(b);
                }
            }
        }
        out
    }

    /// Checks every blob of the locks and of what travels beside them:
    /// present, right size, right digest. Fails on the first bad one,
    /// naming it.
    pub fn verify(&self, reporter: &dyn crate::progress::Reporter) -> Result<usize> {
        let mut blobs = self.all_blobs();
        for c in self.companions()? {
            for b in std::iter::once(c.manifest).chain(c.blobs) {
                if !blobs.iter().any(|x| x.digest == b.digest) {
                    blobs.push(b);
                }
            }
        }
        for blob in &blobs {
            self.verify_blob(blob, reporter)?;
        }
        self.verify_manifests()?;
        Ok(blobs.len())
    }

    /// The manifests that travel beside the locked ones (see
    /// [`crate::companions`]), in the order they are published, each with
    /// the blobs it needs as its own verified bytes list them. A bundle
    /// of an older pgoci has only its signatures here.
    pub fn companions(&self) -> Result<Vec<Companion>> {
        let bad = |why: String| {
            Error::integrity(format!("bundle {}: {why}", self.path.display()))
                .hint("export the bundle again")
        };
        let mut out = Vec::new();
        for d in &self.index.manifests {
            let role = d.annotations.get("io.pgoci.role").map(String::as_str);
            let (role, subject) = match role {
                // A signature the lock records, found beside its image at
                // export (an older pgoci carried only its payloads, and
                // did not publish it).
                Some("signature") if d.annotations.contains_key(REPOSITORY) => {
                    (Role::Referrer, d.annotations.get("io.pgoci.signs"))
                }
                Some(r) => match Role::parse(r) {
                    Some(role) => (role, d.annotations.get(REFERS)),
                    None => continue,
                },
                None => continue,
            };
            let name = d.annotations.get(REF_NAME);
            let repository = match (d.annotations.get(REPOSITORY), name) {
                (Some(r), _) => r.clone(),
                (None, Some(n)) => match n.rsplit_once(':') {
                    Some((r, _)) => r.to_string(),
                    None => return Err(bad(format!("{} names no repository", d.digest))),
                },
                (None, None) => return Err(bad(format!("{} names no repository", d.digest))),
            };
            let tag = match name {
                Some(n) => Some(
                    n.strip_prefix(&format!("{repository}:"))
                        .filter(|t| !t.is_empty() && !t.contains(['/', ':', '@']))
                        .ok_or_else(|| {
                            bad(format!("{} is named {n:?}, not {repository}:TAG", d.digest))
                        })?
                        .to_string(),
                ),
                None => None,
            };
            let subject = subject
                .map(|s| {
                    s.parse::<Digest>()
                        .map_err(|_| bad(format!("{} refers to {s:?}, not a digest", d.digest)))
                })
                .transpose()?;
            let manifest = Blob {
                digest: d.digest.clone(),
                size: d.size,
                media_type: d.media_type.clone(),
            };
            let bytes = self.read_small(&manifest).map_err(|e| bad(e.message))?;
            let parsed = crate::companions::parse(&bytes, &format!("manifest {}", d.digest))?;
            let companion = Companion {
                repository,
                tag,
                role,
                subject,
                artifact_type: d.artifact_type.clone().or(parsed.artifact_type),
                blobs: Vec::new(),
                manifest,
            };
            out.push(Companion {
                blobs: if companion.is_index() {
                    Vec::new()
                } else {
                    parsed.blobs
                },
                ..companion
            });
        }
        Ok(out)
    }

    /// Checks that every manifest blob of the lock is an image manifest
    /// listing the lock's config and layers (its hash alone is not enough).
    pub fn verify_manifests(&self) -> Result<()> {
        for pinned in self.artifacts() {
            self.verify_manifest(&pinned)?;
        }
        Ok(())
    }

    /// A manifest blob must be an OCI or Docker image manifest, not just
    /// bytes with the right hash: its `config` and `layers` descriptors.
    fn verify_manifest(&self, pinned: &crate::lock::Pinned) -> Result<()> {
        #[derive(Deserialize)]
        struct ManifestProbe {
            #[serde(rename = "schemaVersion")]
            schema_version: u32,
            config: Descriptor,
            layers: Vec<Descriptor>,
        }
        let blob = Blob {
            digest: pinned.digest.clone(),
            size: pinned.size,
            media_type: pinned.media_type.clone(),
        };
        let bytes = self.read_small(&blob).map_err(|e| {
            Error::integrity(format!("bundle {}: {}", self.path.display(), e.message))
        })?;
        let probe: ManifestProbe = serde_json::from_slice(&bytes).map_err(|e| {
            Error::integrity(format!(
                "bundle {}: manifest blob {} is not an image manifest: {e}",
                self.path.display(),
                pinned.digest
            ))
        })?;
        if probe.schema_version != 2 {
            return Err(Error::integrity(format!(
                "bundle {}: manifest blob {} has schemaVersion {}, not 2",
                self.path.display(),
                pinned.digest,
                probe.schema_version
            )));
        }
        let listed: Vec<&Digest> = probe.layers.iter().map(|d| &d.digest).collect();
        let locked: Vec<&Digest> = pinned.layers.iter().map(|b| &b.digest).collect();
        if probe.config.digest != pinned.config.digest || listed != locked {
            return Err(Error::integrity(format!(
                "bundle {}: manifest blob {} lists other blobs than the lock",
                self.path.display(),
                pinned.digest
            )));
        }
        Ok(())
    }

    fn verify_blob(&self, blob: &Blob, reporter: &dyn crate::progress::Reporter) -> Result<()> {
        BlobSource::verify(self, blob, reporter).map_err(|e| {
            Error::integrity(format!("bundle {}: {}", self.path.display(), e.message))
                .hint("export the bundle again from a good cache")
        })
    }

    /// Total size of the blobs of every lock, each counted once.
    pub fn blob_bytes(&self) -> u64 {
        self.all_blobs().iter().map(|b| b.size).sum()
    }
}

impl BlobSource for Bundle {
    fn open_raw(&self, blob: &Blob) -> Result<Box<dyn Read + Send + '_>> {
        let name = format!("blobs/sha256/{}", blob.digest.hex());
        self.storage.open_name(&name).map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::InvalidData {
                e.to_string()
            } else {
                "missing".to_string()
            };
            Error::integrity(format!(
                "bundle {}: blob {}: {why}",
                self.path.display(),
                blob.digest
            ))
        })
    }
}

/// Opens a file of a bundle directory: a regular file only, never
/// following a symlink (it could point out of the bundle).
fn open_regular(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is a symlink", path.display()),
                )
            } else {
                e
            }
        })?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// Maps each regular file of a tar to its data offset and size.
pub(super) fn scan_tar(path: &Path) -> std::io::Result<HashMap<String, (u64, u64)>> {
    tar_entries(&fs::File::open(path)?)
}

/// Maps each regular file of a tar to its data offset and size (a later
/// entry of the same name wins, as extracting would have it).
pub fn tar_entries(file: &fs::File) -> std::io::Result<HashMap<String, (u64, u64)>> {
    let total = file.metadata()?.len();
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut entries = HashMap::new();
    for entry in archive.entries_with_seek()? {
        let entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let (offset, size) = (entry.raw_file_position(), entry.size());
        if offset.checked_add(size).is_none_or(|end| end > total) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the tar is cut short in {name}"),
            ));
        }
        entries.insert(name, (offset, size));
    }
    Ok(entries)
}
