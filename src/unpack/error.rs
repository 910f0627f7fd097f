//! What can go wrong applying or storing a layer: the blob itself (its
//! media type, its stream, its size once inflated), an entry of the archive
//! (a name climbing out, a bad whiteout, a refused kind, a hard link
//! to nothing, a truncated file), a stored layer's own records, and the
//! file system beneath the target directory.

use crate::digest::Digest;
use crate::error::{Classify, Kind};
use std::io;
use std::path::PathBuf;

/// Why a layer could not be applied, stored or composed.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The blob's media type is no layer type pgoci reads.
    #[error("layer {digest} has unsupported media type {media_type}")]
    UnsupportedMediaType { digest: Digest, media_type: String },
    /// The blob's stream failed (digest or size mismatch, bad compression)
    /// after the archive was read.
    #[error("layer {digest}: {source}")]
    Stream {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    /// The inflated bytes passed the cap for one artifact.
    #[error("layer {digest} unpacks to more than {cap} bytes, the cap for one artifact")]
    TooBig { digest: Digest, cap: u64 },
    /// The tar stream itself is malformed (a bad header, a cut archive).
    #[error("{source}")]
    Archive {
        #[source]
        source: io::Error,
    },
    /// An entry's name cannot be read.
    #[error("bad entry name: {source}")]
    BadName {
        #[source]
        source: io::Error,
    },
    /// A name (or hard link target) whose `..` climbs above the layer root.
    #[error("unsafe archive entry {}: `..` leaves the layer root", name.display())]
    LeavesRoot { name: PathBuf },
    /// `.wh.`, `.wh..` or `.wh...`: a whiteout of no file.
    #[error("unsafe archive entry {}: a whiteout must name a file", name.display())]
    BadWhiteout { name: PathBuf },
    /// Sparse files and other entry kinds pgoci does not write.
    #[error("unsafe archive entry {}: {kind:?} entries (sparse files and other kinds) are refused", rel.display())]
    RefusedKind { rel: PathBuf, kind: tar::EntryType },
    /// A link entry's target cannot be read.
    #[error("bad link {}: {source}", rel.display())]
    BadLink {
        rel: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A link entry without a target.
    #[error("link {} has no target", rel.display())]
    NoLinkTarget { rel: PathBuf },
    /// A hard link to a file the selection leaves out.
    #[error("hardlink {} points at {}, outside what is extracted", rel.display(), target.display())]
    LinkOutside { rel: PathBuf, target: PathBuf },
    /// A hard link to something missing, or not a regular file.
    #[error("unsafe archive entry {}: hardlink target {} is not a regular file of this layer set", rel.display(), target.display())]
    LinkNotRegular {
        rel: PathBuf,
        target: PathBuf,
        /// Why it could not be looked at, when it could not.
        #[source]
        source: Option<io::Error>,
    },
    /// A path the archive shaped wrongly: a file where a directory must
    /// be, a dangling link of its own making, a loop.
    #[error("unsafe archive entry {}: cannot {action} it: {source}", rel.display())]
    UnsafePath {
        rel: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    /// An entry's data could not be read from the archive.
    #[error("reading {}: {source}", rel.display())]
    ReadEntry {
        rel: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Fewer data bytes than the entry's header promised.
    #[error("archive entry {} is truncated ({got} of {expected} bytes)", rel.display())]
    Truncated {
        rel: PathBuf,
        got: u64,
        expected: u64,
    },
    /// A stored layer's `ops` file says what `store_layer` never writes.
    #[error("stored layer {} is corrupt (line `{}` of its ops)", layer.display(), String::from_utf8_lossy(line))]
    Corrupt { layer: PathBuf, line: Vec<u8> },
    /// The file system holding the target is full (or over quota).
    #[error("cannot {action} {}: the file system mounted at {} is full ({source})", path.display(), mount.display())]
    Full {
        path: PathBuf,
        mount: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    /// Any other failure of the host's file system.
    #[error("cannot {action} {}: {source}", path.display())]
    Fs {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

impl Classify for UnpackError {
    fn kind(&self) -> Kind {
        match self {
            UnpackError::Full { .. } | UnpackError::Fs { .. } => Kind::Host,
            _ => Kind::Integrity,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            UnpackError::TooBig { .. } => Some(
                "the image expands far beyond any PostgreSQL artifact (a decompression bomb?); check where it comes from"
                    .into(),
            ),
            UnpackError::Corrupt { .. } => {
                Some("remove that directory; the next install unpacks the layer again".into())
            }
            UnpackError::Full { .. } => {
                Some("free space (or raise the quota) there, then run again".into())
            }
            _ => None,
        }
    }
}
