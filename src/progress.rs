//! Progress reporting. The library never prints: long operations report
//! through [`Reporter`], and the command layer decides how it is shown
//! (bars on a terminal, plain lines otherwise, nothing for `--json`).

use crate::digest::Digest;

/// Receives progress events from the library. Implementations must be
/// cheap and thread-safe: downloads call them from several tasks.
pub trait Reporter: Send + Sync {
    /// A pull starts: `blobs` downloads, `bytes` in all.
    fn pull_started(&self, _blobs: usize, _bytes: u64) {}
    /// The pull is over (all blobs done or one failed).
    fn pull_finished(&self) {}
    /// A blob download starts (`size` bytes in all).
    fn blob_started(&self, _digest: &Digest, _size: u64) {}
    /// `bytes` more bytes of a blob arrived.
    fn blob_progress(&self, _digest: &Digest, _bytes: u64) {}
    /// A blob is complete and verified.
    fn blob_done(&self, _digest: &Digest) {}
    /// A step of a longer operation (one short line for humans).
    fn step(&self, _message: &str) {}
}

/// Reports nothing (for `--json` and tests).
pub struct Silent;

impl Reporter for Silent {}
