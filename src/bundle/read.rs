//! Reading a bundle: opening a directory or `.tar`, choosing a lock, and
//! every blob read through its digest.

use super::{
    BundleError, LAYOUT_FILE, LOCKS, LOCK_DIGEST, LOCK_FILE, MAX_LOCK_BYTES, REFERS, REF_NAME,
    REPOSITORY,
};
use crate::blobs::BlobSource;
use crate::companions::{Companion, Role};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::limits::{read_capped, ReadError, DOCUMENT_CAP};
use crate::lock::{Blob, Lock};
use crate::oci::{annotation, describes, digest_of, ImageIndex, ImageManifest, LayoutFault};
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
    /// `index.json`; every descriptor's digest is a sha256 one (checked
    /// when the bundle was opened).
    pub index: ImageIndex,
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
    /// Opens the OCI layout itself (directory or tar) and checks `oci-layout`.
    fn open_layout(path: &Path) -> Result<Storage> {
        let at = || path.to_path_buf();
        let meta = fs::metadata(path).map_err(|source| BundleError::Open { path: at(), source })?;
        let storage = if meta.is_dir() {
            Storage::Dir(at())
        } else {
            let entries =
                scan_tar(path).map_err(|source| BundleError::NotATar { path: at(), source })?;
            Storage::Tar(at(), entries)
        };
        let layout = storage
            .read_file(LAYOUT_FILE)
            .map_err(|source| BundleError::NoLayout { path: at(), source })?;
        crate::oci::check_layout(&layout).map_err(|fault| match fault {
            LayoutFault::NotJson(source) => BundleError::BadLayout { path: at(), source },
            LayoutFault::Version(version) => BundleError::LayoutVersion {
                path: at(),
                version,
            },
        })?;
        Ok(storage)
    }

    /// Opens the layout and parses its `index.json`.
    fn open_indexed(path: &Path) -> Result<(Storage, ImageIndex)> {
        let at = || path.to_path_buf();
        let storage = Self::open_layout(path)?;
        let index = storage
            .read_file("index.json")
            .map_err(|source| BundleError::NoIndex { path: at(), source })?;
        let index: ImageIndex = serde_json::from_slice(&index)
            .map_err(|source| BundleError::BadIndex { path: at(), source })?;
        // oci-spec takes a digest of any algorithm: each must be pgoci's
        // sha256 before a blob's path is made of it.
        for d in index.manifests() {
            digest_of(d).map_err(|e| BundleError::IndexDigest {
                path: at(),
                source: Box::new(e),
            })?;
        }
        Ok((storage, index))
    }

    /// Opens any OCI image layout (one skopeo or oras wrote, say) as the
    /// blob source for `lock`: the lock says what to take, the layout only
    /// has to hold those blobs (each verified when read).
    pub fn open_with_lock(path: &Path, lock: Lock) -> Result<Self> {
        let (storage, index) = Self::open_indexed(path)?;
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

    /// Opens a pgoci bundle: layout, index and the locks it carries (not
    /// yet the blobs: see [`Bundle::verify`]).
    pub fn open(path: &Path) -> Result<Self> {
        let at = || path.to_path_buf();
        let (storage, index) = Self::open_indexed(path)?;
        let said = |key: &str| {
            index
                .annotations()
                .as_ref()
                .and_then(|a| a.get(key))
                .cloned()
        };
        let lock_text = storage
            .read_file(LOCK_FILE)
            .map_err(|source| BundleError::NoLock { path: at(), source })?;
        let lock_digest = Digest::of_bytes(&lock_text);
        if let Some(said) = said(LOCK_DIGEST) {
            if said != lock_digest.to_string() {
                return Err(BundleError::LockMismatch {
                    path: at(),
                    found: lock_digest,
                    said,
                }
                .into());
            }
        }
        let text =
            String::from_utf8(lock_text).map_err(|_| BundleError::LockNotUtf8 { path: at() })?;
        let lock = Lock::parse(&text, &format!("{}/pgoci.lock", path.display())).map_err(|e| {
            BundleError::BadLock {
                path: at(),
                source: Box::new(e),
            }
        })?;
        let mut locks = vec![(lock.clone(), lock_digest.clone())];
        let more = said(LOCKS).unwrap_or_default();
        for want in more.split(',').filter(|d| !d.is_empty()).skip(1) {
            let digest: Digest = want.parse().map_err(|_| BundleError::LocksAnnotation {
                path: at(),
                listed: want.to_string(),
            })?;
            // Bounded read, then the digest: a swapped lock is refused.
            let mut text = Vec::new();
            storage
                .open_name(&format!("blobs/sha256/{}", digest.hex()))
                .map_err(|_| BundleError::ExtraLockMissing {
                    path: at(),
                    digest: digest.clone(),
                })?
                .take(MAX_LOCK_BYTES + 1)
                .read_to_end(&mut text)
                .map_err(|source| BundleError::ExtraLockRead {
                    path: at(),
                    digest: digest.clone(),
                    source,
                })?;
            if text.len() as u64 > MAX_LOCK_BYTES || Digest::of_bytes(&text) != digest {
                return Err(BundleError::ExtraLockMismatch { path: at(), digest }.into());
            }
            let Ok(text) = String::from_utf8(text) else {
                return Err(BundleError::ExtraLockNotUtf8 { path: at(), digest }.into());
            };
            let origin = format!("{} lock {}", path.display(), digest.short());
            let parsed = Lock::parse(&text, &origin).map_err(|e| BundleError::BadLock {
                path: at(),
                source: Box::new(e),
            })?;
            locks.push((parsed, digest));
        }
        for (lock, _) in &locks {
            for pinned in lock.artifacts() {
                if !index
                    .manifests()
                    .iter()
                    .any(|d| describes(d, &pinned.digest))
                {
                    return Err(BundleError::Unlisted {
                        path: at(),
                        digest: pinned.digest.clone(),
                    }
                    .into());
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
            [] => Err(BundleError::NoSuchLock {
                path: self.path.clone(),
                wanted: match choice {
                    LockChoice::Major(m) => format!("PostgreSQL {m}"),
                    LockChoice::Digest(p) => format!("digest {p}"),
                    LockChoice::Only => "this install".into(),
                },
                held: list(),
            }
            .into()),
            _ => Err(BundleError::SeveralLocks {
                path: self.path.clone(),
                held: list(),
            }
            .into()),
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
        let at = || self.path.clone();
        let mut out = Vec::new();
        for d in self.index.manifests() {
            let role = annotation(d, "io.pgoci.role");
            let (role, subject) = match role {
                // A signature the lock records, found beside its image at
                // export (an older pgoci carried only its payloads, and
                // did not publish it).
                Some("signature") if annotation(d, REPOSITORY).is_some() => {
                    (Role::Referrer, annotation(d, "io.pgoci.signs"))
                }
                Some(r) => match Role::parse(r) {
                    Some(role) => (role, annotation(d, REFERS)),
                    None => continue,
                },
                None => continue,
            };
            let digest = digest_of(d).map_err(|e| BundleError::IndexDigest {
                path: at(),
                source: Box::new(e),
            })?;
            let name = annotation(d, REF_NAME);
            let repository = match (annotation(d, REPOSITORY), name) {
                (Some(r), _) => r.to_string(),
                (None, Some(n)) => match n.rsplit_once(':') {
                    Some((r, _)) => r.to_string(),
                    None => return Err(BundleError::NoRepository { path: at(), digest }.into()),
                },
                (None, None) => return Err(BundleError::NoRepository { path: at(), digest }.into()),
            };
            let tag = match name {
                Some(n) => Some(
                    n.strip_prefix(&format!("{repository}:"))
                        .filter(|t| !t.is_empty() && !t.contains(['/', ':', '@']))
                        .ok_or_else(|| BundleError::BadName {
                            path: at(),
                            digest: digest.clone(),
                            name: n.to_string(),
                            repository: repository.clone(),
                        })?
                        .to_string(),
                ),
                None => None,
            };
            let subject = subject
                .map(|s| {
                    s.parse::<Digest>().map_err(|_| BundleError::BadSubject {
                        path: at(),
                        digest: digest.clone(),
                        subject: s.to_string(),
                    })
                })
                .transpose()?;
            let manifest = Blob {
                digest,
                size: d.size(),
                media_type: d.media_type().to_string(),
            };
            let bytes = self
                .read_small(&manifest)
                .map_err(|e| self.reading(e).hint("export the bundle again"))?;
            let parsed =
                crate::companions::parse(&bytes, &format!("manifest {}", manifest.digest))?;
            let companion = Companion {
                repository,
                tag,
                role,
                subject,
                artifact_type: d
                    .artifact_type()
                    .as_ref()
                    .map(ToString::to_string)
                    .or(parsed.artifact_type),
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

    /// An error reading one of the bundle's blobs, naming the bundle once:
    /// the bundle's own errors (a blob missing, a symlink) name it already.
    fn reading(&self, e: Error) -> Error {
        if e.typed::<BundleError>().is_some() {
            return e;
        }
        BundleError::Read {
            path: self.path.clone(),
            source: Box::new(e),
        }
        .into()
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
        let at = || self.path.clone();
        let digest = || pinned.digest.clone();
        let blob = Blob {
            digest: pinned.digest.clone(),
            size: pinned.size,
            media_type: pinned.media_type.clone(),
        };
        let bytes = self.read_small(&blob).map_err(|e| self.reading(e))?;
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|source| BundleError::NotAManifest {
                path: at(),
                digest: digest(),
                source,
            })?;
        if manifest.schema_version() != 2 {
            return Err(BundleError::SchemaVersion {
                path: at(),
                digest: digest(),
                version: manifest.schema_version(),
            }
            .into());
        }
        let sha256 = |e| BundleError::ManifestDigest {
            path: at(),
            digest: digest(),
            source: Box::new(e),
        };
        let config = digest_of(manifest.config()).map_err(sha256)?;
        let listed = manifest
            .layers()
            .iter()
            .map(digest_of)
            .collect::<Result<Vec<Digest>>>()
            .map_err(sha256)?;
        let locked: Vec<&Digest> = pinned.layers.iter().map(|b| &b.digest).collect();
        if config != pinned.config.digest || !listed.iter().eq(locked) {
            return Err(BundleError::ManifestMismatch {
                path: at(),
                digest: digest(),
            }
            .into());
        }
        Ok(())
    }

    /// Reads a blob whole, checking size and digest; the first failure
    /// names it.
    fn verify_blob(&self, blob: &Blob, reporter: &dyn crate::progress::Reporter) -> Result<()> {
        use crate::progress::{Phase, ReportingReader};
        let checked = self.open(blob).map_err(|e| {
            self.reading(e)
                .hint("export the bundle again from a good cache")
        })?;
        // The progress reader sees the end only once the digest matched.
        let mut reading =
            ReportingReader::new(checked, Phase::Verify, &blob.digest, blob.size, reporter);
        std::io::copy(&mut reading, &mut std::io::sink()).map_err(|source| {
            BundleError::BlobMismatch {
                path: self.path.clone(),
                digest: blob.digest.clone(),
                source,
            }
        })?;
        Ok(())
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
            let (path, digest) = (self.path.clone(), blob.digest.clone());
            if e.kind() == std::io::ErrorKind::InvalidData {
                BundleError::BlobUnreadable {
                    path,
                    digest,
                    source: e,
                }
            } else {
                BundleError::BlobMissing { path, digest }
            }
            .into()
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
