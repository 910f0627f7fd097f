//! What can be wrong with a bundle, or with writing one.

use crate::digest::Digest;
use crate::error::{Classify, Error, Kind};
use std::fmt;
use std::io;
use std::path::PathBuf;

/// A bundle that cannot be opened, read or written, said in the words of
/// a bundle: its layout, its `index.json`, its locks, its blobs and where
/// an export may write.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The path cannot be opened at all (exit 2).
    #[error("cannot open bundle {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    /// A file that cannot be read as a tar.
    #[error("{path} is not a valid pgoci bundle: {source}")]
    NotATar { path: PathBuf, source: io::Error },
    /// No readable `oci-layout`: not an OCI image layout.
    #[error("{path} is not a valid pgoci bundle: oci-layout: {source}")]
    NoLayout { path: PathBuf, source: io::Error },
    /// An `oci-layout` that is not the image-spec's JSON.
    #[error("{path} is not a valid pgoci bundle: oci-layout: {source}")]
    BadLayout {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} is not a valid pgoci bundle: oci-layout is not version 1.0.0")]
    LayoutVersion {
        path: PathBuf,
        /// What it says instead (nothing: no version string).
        version: Option<String>,
    },
    #[error("{path} is not a valid pgoci bundle: index.json: {source}")]
    NoIndex { path: PathBuf, source: io::Error },
    /// An `index.json` that is not an image index.
    #[error("{path} is not a valid pgoci bundle: index.json: {source}")]
    BadIndex {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A descriptor of `index.json` whose digest is not sha256.
    #[error("{path} is not a valid pgoci bundle: index.json: {source}")]
    IndexDigest { path: PathBuf, source: Box<Error> },
    #[error("{path} is not a valid pgoci bundle: pgoci.lock: {source}")]
    NoLock { path: PathBuf, source: io::Error },
    /// `pgoci.lock` and the lock digest `index.json` records disagree.
    #[error("{path} is not a valid pgoci bundle: pgoci.lock has digest {found} but index.json says {said}")]
    LockMismatch {
        path: PathBuf,
        found: Digest,
        said: String,
    },
    #[error("{path} is not a valid pgoci bundle: pgoci.lock is not UTF-8")]
    LockNotUtf8 { path: PathBuf },
    /// A lock of the bundle that is not a valid lock.
    #[error("{path} is not a valid pgoci bundle: {source}")]
    BadLock { path: PathBuf, source: Box<Error> },
    #[error("{path} is not a valid pgoci bundle: io.pgoci.locks lists {listed:?}, not a digest")]
    LocksAnnotation { path: PathBuf, listed: String },
    /// A further lock `index.json` lists, missing.
    #[error("{path} is not a valid pgoci bundle: lock {digest} is missing")]
    ExtraLockMissing { path: PathBuf, digest: Digest },
    #[error("{path} is not a valid pgoci bundle: lock {digest}: {source}")]
    ExtraLockRead {
        path: PathBuf,
        digest: Digest,
        source: io::Error,
    },
    /// A further lock that is not the one its digest names.
    #[error("{path} is not a valid pgoci bundle: lock {digest} does not match its digest")]
    ExtraLockMismatch { path: PathBuf, digest: Digest },
    #[error("{path} is not a valid pgoci bundle: lock {digest} is not UTF-8")]
    ExtraLockNotUtf8 { path: PathBuf, digest: Digest },
    /// An artifact of a lock that `index.json` does not list.
    #[error("{path} is not a valid pgoci bundle: index.json does not list {digest}")]
    Unlisted { path: PathBuf, digest: Digest },

    /// No lock of the bundle is the one asked for (exit 2).
    #[error("bundle {path} holds no lock for {wanted}; it holds {held}")]
    NoSuchLock {
        path: PathBuf,
        wanted: String,
        held: String,
    },
    /// Several locks and no choice among them (exit 2).
    #[error("bundle {path} holds several locks: {held}")]
    SeveralLocks { path: PathBuf, held: String },

    /// A manifest travelling beside the images that names no repository
    /// to publish it in.
    #[error("bundle {path}: {digest} names no repository")]
    NoRepository { path: PathBuf, digest: Digest },
    /// A manifest named otherwise than `REPOSITORY:TAG`.
    #[error("bundle {path}: {digest} is named {name:?}, not {repository}:TAG")]
    BadName {
        path: PathBuf,
        digest: Digest,
        name: String,
        repository: String,
    },
    /// A referrer whose subject is not a digest.
    #[error("bundle {path}: {digest} refers to {subject:?}, not a digest")]
    BadSubject {
        path: PathBuf,
        digest: Digest,
        subject: String,
    },

    /// A blob the bundle does not hold.
    #[error("bundle {path}: blob {digest}: missing")]
    BlobMissing { path: PathBuf, digest: Digest },
    /// A blob that is there but may not be read: a symlink (it could point
    /// out of the bundle), not a regular file, larger than a document may be.
    #[error("bundle {path}: blob {digest}: {source}")]
    BlobUnreadable {
        path: PathBuf,
        digest: Digest,
        source: io::Error,
    },
    /// A blob whose bytes are not what its digest and size say (or that
    /// could not be read to the end).
    #[error("bundle {path}: {source}")]
    BlobMismatch {
        path: PathBuf,
        digest: Digest,
        source: io::Error,
    },
    /// Another failure reading a blob of the bundle.
    #[error("bundle {path}: {source}")]
    Read { path: PathBuf, source: Box<Error> },

    /// A locked manifest blob that is not an image manifest.
    #[error("bundle {path}: manifest blob {digest} is not an image manifest: {source}")]
    NotAManifest {
        path: PathBuf,
        digest: Digest,
        source: serde_json::Error,
    },
    /// A locked manifest listing a blob by a digest that is not sha256.
    #[error("bundle {path}: manifest blob {digest} is not an image manifest: {source}")]
    ManifestDigest {
        path: PathBuf,
        digest: Digest,
        source: Box<Error>,
    },
    #[error("bundle {path}: manifest blob {digest} has schemaVersion {version}, not 2")]
    SchemaVersion {
        path: PathBuf,
        digest: Digest,
        version: u32,
    },
    /// A locked manifest listing other blobs than the lock records.
    #[error("bundle {path}: manifest blob {digest} lists other blobs than the lock")]
    ManifestMismatch { path: PathBuf, digest: Digest },

    /// `-o` names something an export must not replace (exit 2).
    #[error("bundle export will not write to {path}: {why}")]
    WontOverwrite { path: PathBuf, why: Occupied },
    #[error("bundle export needs at least one lock")]
    NoLocks,
    #[error("{path} names no file")]
    NoFileName { path: PathBuf },
    /// `index.json` could not be written as JSON (a bug).
    #[error("index.json: {0}")]
    Serialize(serde_json::Error),
    /// The file system the bundle is written to is full (exit 6).
    #[error(
        "cannot {action} bundle {path}: the file system mounted at {mount} is full ({source})"
    )]
    DiskFull {
        path: PathBuf,
        action: &'static str,
        mount: PathBuf,
        source: io::Error,
    },
    /// A blob read into the bundle is not what its digest says.
    #[error("{0}")]
    BadSource(io::Error),
    /// A blob copied into a bundle directory is not what its digest says.
    #[error("blob {digest}: {source}")]
    SourceBlob { digest: Digest, source: io::Error },
}

/// What is at an export's `-o PATH` that it will not replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Occupied {
    /// `.`, `..`, `/` or an empty name.
    Directory,
    Symlink,
    /// A file that is not a pgoci `.tar` bundle.
    File,
    /// A FIFO, socket or device.
    Special,
    /// A directory, where a `.tar` bundle goes.
    DirectoryForTar,
    /// A directory holding more than a bundle (what, first).
    OtherDirectory(String),
}

impl fmt::Display for Occupied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Occupied::Directory => f.write_str("it names a directory, not a bundle to write"),
            Occupied::Symlink => f.write_str("it is a symlink"),
            Occupied::File => f.write_str("it is a file that is not a pgoci bundle"),
            Occupied::Special => f.write_str("it is not a regular file or directory"),
            Occupied::DirectoryForTar => {
                f.write_str("it is a directory, and a .tar bundle is a file")
            }
            Occupied::OtherDirectory(why) => {
                write!(f, "it is a directory that is not a pgoci bundle ({why})")
            }
        }
    }
}

impl Classify for BundleError {
    fn kind(&self) -> Kind {
        use BundleError::*;
        match self {
            Open { .. }
            | NoSuchLock { .. }
            | SeveralLocks { .. }
            | WontOverwrite { .. }
            | NoLocks
            | NoFileName { .. } => Kind::Usage,
            DiskFull { .. } => Kind::Host,
            Serialize(_) => Kind::Internal,
            _ => Kind::Integrity,
        }
    }

    fn hint(&self) -> Option<String> {
        let hint = match self {
            BundleError::SeveralLocks { .. } => "pick one with --major N or --lock DIGEST",
            BundleError::NoRepository { .. }
            | BundleError::BadName { .. }
            | BundleError::BadSubject { .. } => "export the bundle again",
            BundleError::BlobMismatch { .. } => "export the bundle again from a good cache",
            BundleError::WontOverwrite { .. } => {
                "pass -o a new name (or a previous pgoci bundle to replace it)"
            }
            BundleError::DiskFull { .. } => {
                "free space (or raise the quota) there, or export to another file system, then run again"
            }
            BundleError::SourceBlob { .. } => {
                "pull again: the cache's copy is not what the lock names"
            }
            _ => return None,
        };
        Some(hint.to_string())
    }
}
