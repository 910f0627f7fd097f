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
    #[error("unsafe archive entry {name}: `..` leaves the layer root")]
    LeavesRoot { name: PathBuf },
    /// `.wh.`, `.wh..` or `.wh...`: a whiteout of no file.
    #[error("unsafe archive entry {name}: a whiteout must name a file")]
    BadWhiteout { name: PathBuf },
    /// Sparse files and other entry kinds pgoci does not write.
    #[error(
        "unsafe archive entry {rel}: {kind:?} entries (sparse files and other kinds) are refused"
    )]
    RefusedKind { rel: PathBuf, kind: tar::EntryType },
    /// A link entry's target cannot be read.
    #[error("bad link {rel}: {source}")]
    BadLink {
        rel: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A link entry without a target.
    #[error("link {rel} has no target")]
    NoLinkTarget { rel: PathBuf },
    /// A hard link to a file the selection leaves out.
    #[error("hardlink {rel} points at {target}, outside what is extracted")]
    LinkOutside { rel: PathBuf, target: PathBuf },
    /// A hard link to something missing, or not a regular file.
    #[error("unsafe archive entry {rel}: hardlink target {target} is not a regular file of this layer set")]
    LinkNotRegular {
        rel: PathBuf,
        target: PathBuf,
        /// Why it could not be looked at, when it could not.
        #[source]
        source: Option<io::Error>,
    },
    /// A path the archive shaped wrongly: a file where a directory must
    /// be, a dangling link of its own making, a loop.
    #[error("unsafe archive entry {rel}: cannot {action} it: {source}")]
    UnsafePath {
        rel: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    /// An entry's data could not be read from the archive.
    #[error("reading {rel}: {source}")]
    ReadEntry {
        rel: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Fewer data bytes than the entry's header promised.
    #[error("archive entry {rel} is truncated ({got} of {expected} bytes)")]
    Truncated {
        rel: PathBuf,
        got: u64,
        expected: u64,
    },
    /// A stored layer's `ops` file says what `store_layer` never writes.
    #[error("stored layer {} is corrupt (line `{}` of its ops)", layer.display(), String::from_utf8_lossy(line))]
    Corrupt { layer: PathBuf, line: Vec<u8> },
    /// The file system holding the target is full (or over quota).
    #[error("cannot {action} {path}: the file system mounted at {mount} is full ({source})")]
    Full {
        path: PathBuf,
        mount: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    /// Any other failure of the host's file system.
    #[error("cannot {action} {path}: {source}")]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    /// The words users saw when these were formatted by hand, kept.
    #[test]
    fn messages_kinds_and_hints_are_the_old_ones() {
        let digest = Digest::of_bytes(b"layer");
        let io = || io::Error::from_raw_os_error(libc::ENOTDIR);
        let p = |s: &str| PathBuf::from(s);
        let cases: Vec<(UnpackError, String, Kind)> = vec![
            (
                UnpackError::UnsupportedMediaType {
                    digest: digest.clone(),
                    media_type: "text/plain".into(),
                },
                format!("layer {digest} has unsupported media type text/plain"),
                Kind::Integrity,
            ),
            (
                UnpackError::TooBig {
                    digest: digest.clone(),
                    cap: 9,
                },
                format!("layer {digest} unpacks to more than 9 bytes, the cap for one artifact"),
                Kind::Integrity,
            ),
            (
                UnpackError::LeavesRoot { name: p("a/../..") },
                "unsafe archive entry a/../..: `..` leaves the layer root".into(),
                Kind::Integrity,
            ),
            (
                UnpackError::RefusedKind {
                    rel: p("s"),
                    kind: tar::EntryType::GNUSparse,
                },
                "unsafe archive entry s: GNUSparse entries (sparse files and other kinds) are refused".into(),
                Kind::Integrity,
            ),
            (
                UnpackError::LinkNotRegular {
                    rel: p("h"),
                    target: p("t"),
                    source: None,
                },
                "unsafe archive entry h: hardlink target t is not a regular file of this layer set"
                    .into(),
                Kind::Integrity,
            ),
            (
                UnpackError::UnsafePath {
                    rel: p("a/b"),
                    action: "create",
                    source: io(),
                },
                format!("unsafe archive entry a/b: cannot create it: {}", io()),
                Kind::Integrity,
            ),
            (
                UnpackError::Truncated {
                    rel: p("f"),
                    got: 3,
                    expected: 5,
                },
                "archive entry f is truncated (3 of 5 bytes)".into(),
                Kind::Integrity,
            ),
            (
                UnpackError::Corrupt {
                    layer: p("/s/l"),
                    line: b"X \xff".to_vec(),
                },
                "stored layer /s/l is corrupt (line `X \u{fffd}` of its ops)".into(),
                Kind::Integrity,
            ),
            (
                UnpackError::Full {
                    path: p("/m/x"),
                    mount: p("/m"),
                    action: "write",
                    source: io(),
                },
                format!(
                    "cannot write /m/x: the file system mounted at /m is full ({})",
                    io()
                ),
                Kind::Host,
            ),
            (
                UnpackError::Fs {
                    path: p("/d"),
                    action: "open",
                    source: io(),
                },
                format!("cannot open /d: {}", io()),
                Kind::Host,
            ),
        ];
        for (err, message, kind) in cases {
            let hint = err.hint();
            let err = Error::from(err);
            assert_eq!((err.message.as_str(), err.kind), (message.as_str(), kind));
            assert_eq!(err.hint, hint);
        }
    }
}
