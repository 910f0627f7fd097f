//! The read-only view `pgoci serve` has of a bundle: an OCI image layout
//! directory, or a `.tar` of one read in place by byte offsets (never
//! extracted or copied).
//!
//! Everything a client may ask for is known when the layout is opened:
//! `index.json` names the images (each descriptor's
//! `org.opencontainers.image.ref.name`, `registry/repository:tag` as
//! `bundle export` writes it, or pgoci's `io.pgoci.repository` for what
//! travels by digest), and the closure of each — the manifests an index
//! lists, the config and layers of each manifest — is what its repository
//! serves. Every manifest is read, checked against its digest and kept in
//! memory (they are small); blobs stay on disk and are opened per request,
//! only by a [`Digest`] of that closure, as `blobs/sha256/<hex>`: through
//! directory handles that refuse symlinks (`O_NOFOLLOW`) and anything but
//! a regular file, or as a byte range of the tar.

use crate::digest::Digest;
use crate::error::{Classify, Error, Kind, Result};
use crate::names::{RepositoryName, TagName};
use crate::oci::{annotation, digest_of, Document, ImageIndex, LayoutFault};
use bytes::Bytes;
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod error;
pub use error::LayoutError;

const REF_NAME: &str = oci_spec::image::ANNOTATION_REF_NAME;
/// Where pgoci publishes a manifest that travels beside the images.
const REPOSITORY: &str = "io.pgoci.repository";
/// Why pgoci carries a manifest (`alias`: a short name of another).
const ROLE: &str = "io.pgoci.role";
/// The largest manifest read (as for every document pgoci reads).
const MANIFEST_CAP: u64 = crate::limits::DOCUMENT_CAP;
/// How deep indexes may nest (an index of indexes of manifests).
const MAX_DEPTH: usize = 4;

/// An opened layout and what it serves.
pub struct Layout {
    pub path: PathBuf,
    store: Store,
    repos: BTreeMap<RepositoryName, Repo>,
    manifests: HashMap<Digest, Manifest>,
    /// Every blob a manifest of the closure lists, with its size.
    blobs: HashMap<Digest, u64>,
    /// Blobs listed but not in the layout (served as unknown).
    missing: usize,
    /// Descriptors of `index.json` naming no repository (not served).
    unnamed: usize,
}

/// One repository: its tags and what it serves.
#[derive(Default)]
pub struct Repo {
    pub tags: BTreeMap<TagName, Digest>,
    /// Every manifest (and index) of the repository's closure.
    pub manifests: BTreeSet<Digest>,
    /// Every blob of it: configs, layers, and the manifests themselves.
    pub blobs: BTreeSet<Digest>,
}

/// A manifest or index, read and checked once.
pub struct Manifest {
    pub bytes: Bytes,
    /// The media type it was stored with (its descriptor's).
    pub media_type: String,
    /// What the referrers API reports: its `artifactType`, else its
    /// config's media type.
    pub artifact_type: Option<String>,
    /// The manifest it refers to.
    pub subject: Option<Digest>,
    pub annotations: BTreeMap<String, String>,
    /// What an index lists (and the layout holds).
    children: Vec<Digest>,
    /// Config and layers of an image manifest.
    blobs: Vec<Digest>,
}

/// Bytes of a blob: a byte range of an open file.
#[derive(Clone)]
pub struct BlobFile {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: u64,
}

impl BlobFile {
    /// The whole range, when it is at most `cap` bytes.
    fn read_capped(&self, cap: u64) -> io::Result<Vec<u8>> {
        if self.len > cap {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than the {cap}-byte limit"),
            ));
        }
        let mut buf = vec![0; self.len as usize];
        self.file.read_exact_at(&mut buf, self.offset)?;
        Ok(buf)
    }
}

enum Store {
    /// A directory: its handle, and that of `blobs/sha256` if there is one.
    Dir { root: OwnedFd, sha: Option<OwnedFd> },
    /// A tar: the file, and each regular entry's (data offset, size).
    Tar {
        file: Arc<File>,
        entries: HashMap<String, (u64, u64)>,
    },
}

/// Opens `name` under the directory `dir`: never through a symlink.
fn open_at(dir: &OwnedFd, name: &str, flags: OFlags) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        flags | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::LOOP => {
            io::Error::new(io::ErrorKind::InvalidData, format!("{name} is a symlink"))
        }
        e => io::Error::from(e),
    })
}

/// A regular file under `dir` (a FIFO or device is refused without
/// blocking on it).
fn open_regular_at(dir: &OwnedFd, name: &str) -> io::Result<File> {
    let file = File::from(open_at(dir, name, OFlags::NONBLOCK)?);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name} is not a regular file"),
        ));
    }
    Ok(file)
}

impl Store {
    fn open(path: &Path) -> Result<Store, LayoutError> {
        let at = || path.to_path_buf();
        let meta = std::fs::metadata(path)
            .map_err(|source| LayoutError::Missing { path: at(), source })?;
        if meta.is_dir() {
            let root = rustix::fs::open(
                path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| LayoutError::Open {
                path: at(),
                source: e.into(),
            })?;
            let sha = match open_at(&root, "blobs", OFlags::DIRECTORY)
                .and_then(|blobs| open_at(&blobs, "sha256", OFlags::DIRECTORY))
            {
                Ok(fd) => Some(fd),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(source) => return Err(LayoutError::BlobDir { path: at(), source }),
            };
            return Ok(Store::Dir { root, sha });
        }
        if !meta.is_file() {
            return Err(LayoutError::NotFileOrDir { path: at() });
        }
        let file = File::open(path).map_err(|source| LayoutError::Open { path: at(), source })?;
        let entries = crate::bundle::tar_entries(&file)
            .map_err(|source| LayoutError::NotATar { path: at(), source })?;
        Ok(Store::Tar {
            file: Arc::new(file),
            entries,
        })
    }

    /// A top-level file of the layout (`oci-layout`, `index.json`).
    fn document(&self, name: &str) -> io::Result<Vec<u8>> {
        let blob = match self {
            Store::Dir { root, .. } => {
                let file = open_regular_at(root, name)?;
                let len = file.metadata()?.len();
                BlobFile {
                    file: Arc::new(file),
                    offset: 0,
                    len,
                }
            }
            Store::Tar { .. } => self.tar_entry(name)?,
        };
        blob.read_capped(crate::limits::DOCUMENT_CAP)
    }

    fn tar_entry(&self, name: &str) -> io::Result<BlobFile> {
        let Store::Tar { file, entries } = self else {
            unreachable!("only for tars")
        };
        let &(offset, len) = entries
            .get(name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no {name}")))?;
        Ok(BlobFile {
            file: file.clone(),
            offset,
            len,
        })
    }

    /// `blobs/sha256/<hex>` of a digest; `NotFound` when absent.
    fn blob(&self, digest: &Digest) -> io::Result<BlobFile> {
        match self {
            Store::Dir { sha, .. } => {
                let sha = sha.as_ref().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "the layout has no blobs/sha256")
                })?;
                let file = open_regular_at(sha, digest.hex())?;
                let len = file.metadata()?.len();
                Ok(BlobFile {
                    file: Arc::new(file),
                    offset: 0,
                    len,
                })
            }
            Store::Tar { .. } => self.tar_entry(&format!("blobs/sha256/{}", digest.hex())),
        }
    }
}

/// Where an `index.json` descriptor is published: (repository, tag).
/// `registry/repository:tag` (or `@digest`) in its ref name, else pgoci's
/// repository annotation; a bare short name (`postgresql-17`, `latest`)
/// names no repository.
fn published_at(annotations: &BTreeMap<String, String>) -> Option<(String, Option<String>)> {
    if let Some(name) = annotations.get(REF_NAME).filter(|n| n.contains('/')) {
        let name = name.split_once('@').map_or(name.as_str(), |(n, _)| n);
        let (repo, tag) = match name.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
            _ => (name, None),
        };
        return Some((repository_path(repo), tag));
    }
    annotations
        .get(REPOSITORY)
        .map(|r| (repository_path(r), None))
}

/// The repository path of `registry/path` as a registry serves it: the
/// first component is the registry when it has a `.` or `:` or is
/// `localhost` (Docker's rule); Docker Hub's one-component names are
/// `library/NAME`.
fn repository_path(name: &str) -> String {
    let Some((first, rest)) = name.split_once('/') else {
        return name.to_string();
    };
    if !(first.contains(['.', ':']) || first == "localhost") {
        return name.to_string();
    }
    let hub = matches!(
        first,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    );
    if hub && !rest.contains('/') {
        return format!("library/{rest}");
    }
    rest.to_string()
}

impl Layout {
    /// Opens a layout directory or `.tar` and reads what it serves: every
    /// manifest `index.json` names and what it lists. A manifest that
    /// does not match its digest, or a blob of another size than its
    /// manifest says, is refused (exit 5); a blob or listed manifest the
    /// layout does not hold is warned about and served as unknown.
    pub fn open(path: &Path) -> Result<Layout> {
        let store = Store::open(path)?;
        let at = || path.to_path_buf();
        let layout = store
            .document("oci-layout")
            .map_err(|source| LayoutError::NoLayoutFile { path: at(), source })?;
        crate::oci::check_layout(&layout).map_err(|fault| match fault {
            LayoutFault::NotJson(source) => LayoutError::BadLayoutFile { path: at(), source },
            LayoutFault::Version(version) => LayoutError::LayoutVersion {
                path: at(),
                version,
            },
        })?;
        let index = store
            .document("index.json")
            .map_err(|source| LayoutError::NoIndex { path: at(), source })?;
        let index: ImageIndex = serde_json::from_slice(&index)
            .map_err(|source| LayoutError::BadIndex { path: at(), source })?;
        // oci-spec takes a digest of any algorithm: each must be pgoci's
        // sha256 before a blob's path is made of it.
        let listed = index
            .manifests()
            .iter()
            .map(|d| Ok((digest_of(d)?, d)))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| LayoutError::IndexDigest {
                path: at(),
                source: Box::new(e),
            })?;
        let mut out = Layout {
            path: path.to_path_buf(),
            store,
            repos: BTreeMap::new(),
            manifests: HashMap::new(),
            blobs: HashMap::new(),
            missing: 0,
            unnamed: 0,
        };
        for (digest, d) in listed {
            if !out.load(&digest, d.media_type().as_ref(), d.size(), 0)? {
                return Err(LayoutError::Unheld { path: at(), digest }.into());
            }
            let Some((repo, tag)) = published_at(&crate::oci::annotations(d)) else {
                // pgoci's short names for oras name what a reference names too.
                if annotation(d, ROLE) != Some("alias") {
                    out.unnamed += 1;
                }
                continue;
            };
            let repo = match RepositoryName::parse(&repo) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("{digest} is not served: {e}");
                    continue;
                }
            };
            let tag = match tag.map(|t| TagName::parse(&t)).transpose() {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!("{digest} is served by digest only: {e}");
                    None
                }
            };
            let entry = out.repos.entry(repo.clone()).or_default();
            if let Some(tag) = tag {
                match entry.tags.get(&tag) {
                    Some(known) if *known != digest => tracing::warn!(
                        "{repo}:{tag} is listed twice in index.json; serving {known}, not {digest}"
                    ),
                    _ => {
                        entry.tags.insert(tag, digest.clone());
                    }
                }
            }
            out.attach(&repo, &digest, 0);
        }
        if out.unnamed > 0 {
            tracing::warn!(
                "{} manifest(s) of index.json name no repository (only a short name such as `latest`): \
                 they are not served",
                out.unnamed
            );
        }
        out.check_blobs()?;
        Ok(out)
    }

    /// Reads, checks and keeps a manifest and what it lists (once).
    /// `Ok(false)`: the layout does not hold it.
    fn load(&mut self, digest: &Digest, media_type: &str, size: u64, depth: usize) -> Result<bool> {
        if self.manifests.contains_key(digest) {
            return Ok(true);
        }
        let at = || self.path.clone();
        let bytes = match self.store.blob(digest) {
            Ok(blob) => {
                if blob.len != size {
                    return Err(LayoutError::ManifestSize {
                        path: at(),
                        digest: digest.clone(),
                        size: blob.len,
                        listed: size,
                    }
                    .into());
                }
                blob.read_capped(MANIFEST_CAP)
                    .map_err(|source| LayoutError::ManifestRead {
                        path: at(),
                        digest: digest.clone(),
                        source,
                    })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(LayoutError::ManifestRead {
                    path: at(),
                    digest: digest.clone(),
                    source,
                }
                .into())
            }
        };
        if Digest::of_bytes(&bytes) != *digest {
            return Err(LayoutError::ManifestMismatch {
                path: at(),
                digest: digest.clone(),
            }
            .into());
        }
        let doc = Document::parse(&bytes).map_err(|source| LayoutError::NotADocument {
            path: at(),
            digest: digest.clone(),
            source,
        })?;
        // Every digest it names is a sha256 one, or the document is refused.
        let sha256 = |d: &crate::oci::Descriptor| {
            digest_of(d).map_err(|e| LayoutError::ManifestDigest {
                path: at(),
                digest: digest.clone(),
                source: Box::new(e),
            })
        };
        let listed = doc
            .manifests()
            .iter()
            .map(|c| Ok((sha256(c)?, c)))
            .collect::<Result<Vec<_>, LayoutError>>()?;
        let parts = doc
            .config()
            .into_iter()
            .chain(doc.layers())
            .map(|b| Ok((sha256(b)?, b.size())))
            .collect::<Result<Vec<_>, LayoutError>>()?;
        let subject = doc.subject().map(sha256).transpose()?;
        if !listed.is_empty() && depth >= MAX_DEPTH {
            return Err(LayoutError::TooDeep {
                path: at(),
                digest: digest.clone(),
            }
            .into());
        }
        let mut children = Vec::new();
        for (child, d) in listed {
            if self.load(&child, d.media_type().as_ref(), d.size(), depth + 1)? {
                children.push(child);
            } else {
                tracing::warn!(
                    "{digest} lists {child}, which the layout does not hold: it is not served"
                );
            }
        }
        let mut blobs = Vec::new();
        for (b, size) in parts {
            self.blobs.entry(b.clone()).or_insert(size);
            blobs.push(b);
        }
        let stored_type = match media_type {
            "" => doc
                .media_type()
                .map(ToString::to_string)
                .unwrap_or_else(|| crate::registry::OCI_MANIFEST.to_string()),
            t => t.to_string(),
        };
        let artifact_type = doc
            .artifact_type()
            .or_else(|| doc.config().map(|c| c.media_type()))
            .map(ToString::to_string);
        self.manifests.insert(
            digest.clone(),
            Manifest {
                bytes: Bytes::from(bytes),
                media_type: stored_type,
                artifact_type,
                subject,
                annotations: doc.annotations(),
                children,
                blobs,
            },
        );
        Ok(true)
    }

    /// Puts a loaded manifest and its closure into a repository.
    fn attach(&mut self, repo: &RepositoryName, digest: &Digest, depth: usize) {
        let Some(m) = self.manifests.get(digest) else {
            return;
        };
        let entry = self.repos.entry(repo.clone()).or_default();
        if !entry.manifests.insert(digest.clone()) || depth > MAX_DEPTH {
            return;
        }
        entry.blobs.insert(digest.clone());
        entry.blobs.extend(m.blobs.iter().cloned());
        for child in m.children.clone() {
            self.attach(repo, &child, depth + 1);
        }
    }

    /// Every listed blob: present with its listed size (or warned about).
    fn check_blobs(&mut self) -> Result<(), LayoutError> {
        let mut missing = 0;
        for (digest, size) in &self.blobs {
            if self.manifests.contains_key(digest) {
                continue;
            }
            match self.store.blob(digest) {
                Ok(b) if b.len == *size => {}
                Ok(b) => {
                    return Err(LayoutError::BlobSize {
                        path: self.path.clone(),
                        digest: digest.clone(),
                        size: b.len,
                        listed: *size,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => missing += 1,
                Err(source) => {
                    return Err(LayoutError::Blob {
                        path: self.path.clone(),
                        digest: digest.clone(),
                        source,
                    })
                }
            }
        }
        if missing > 0 {
            tracing::warn!(
                "{missing} blob(s) the manifests list are not in {}: they are served as unknown",
                self.path.display()
            );
        }
        self.missing = missing;
        Ok(())
    }

    pub fn repo(&self, name: &RepositoryName) -> Option<&Repo> {
        self.repos.get(name)
    }

    pub fn repos(&self) -> impl Iterator<Item = (&RepositoryName, &Repo)> {
        self.repos.iter()
    }

    pub fn manifest(&self, digest: &Digest) -> Option<&Manifest> {
        self.manifests.get(digest)
    }

    /// A config or layer of the closure, opened; `None` if the layout
    /// does not hold it (any more) at its listed size. Manifests are
    /// answered from memory ([`Layout::manifest_as_blob`]).
    pub fn blob(&self, digest: &Digest) -> Option<BlobFile> {
        let size = *self.blobs.get(digest)?;
        match self.store.blob(digest) {
            Ok(b) if b.len == size => Some(b),
            Ok(_) => {
                tracing::warn!("blob {digest} changed size since the layout was opened");
                None
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("blob {digest}: {e}");
                }
                None
            }
        }
    }

    /// A manifest's bytes, served as a blob (some clients ask so).
    pub fn manifest_as_blob(&self, digest: &Digest) -> Option<Bytes> {
        self.manifests.get(digest).map(|m| m.bytes.clone())
    }

    /// What was read: (repositories, tags, manifests, blobs, blobs
    /// missing, descriptors naming no repository).
    pub fn counts(&self) -> Counts {
        Counts {
            repositories: self.repos.len(),
            tags: self.repos.values().map(|r| r.tags.len()).sum(),
            manifests: self.manifests.len(),
            blobs: self.blobs.len(),
            missing: self.missing,
            unnamed: self.unnamed,
        }
    }
}

/// What a layout serves, for the first line `pgoci serve` prints.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub repositories: usize,
    pub tags: usize,
    pub manifests: usize,
    pub blobs: usize,
    pub missing: usize,
    pub unnamed: usize,
}

#[cfg(test)]
mod tests;
