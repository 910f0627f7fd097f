//! Progress reporting. The library never prints: long operations report
//! typed events through [`Reporter`], and the command layer decides how
//! they are shown (bars on a terminal, plain lines otherwise, nothing for
//! `--json`).

use crate::digest::Digest;
use std::io::Read;
use std::time::Duration;

/// What is being done to a blob's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Re-hashing a local blob (bundle verify, doctor).
    Verify,
    /// Unpacking a layer into the store (verified as it streams).
    Unpack,
}

impl Phase {
    pub fn verb(self) -> &'static str {
        match self {
            Phase::Verify => "verified",
            Phase::Unpack => "unpacked",
        }
    }
}

/// A typed progress event from a local phase or a plan's apply.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// An apply starts a step of its plan (`kind` as `--json` names it,
    /// `plan` the sentence the plan shows).
    StepStarted { kind: &'a str, plan: &'a str },
    /// The step is over (`done` says what it did, in the past tense);
    /// `changed` is false when there was nothing to do.
    StepFinished {
        kind: &'a str,
        done: &'a str,
        changed: bool,
        elapsed: Duration,
    },
    /// Local work on a blob starts (`size` bytes in all).
    BlobStarted {
        phase: Phase,
        digest: &'a Digest,
        size: u64,
    },
    /// `bytes` more of it were read.
    BlobProgress {
        phase: Phase,
        digest: &'a Digest,
        bytes: u64,
    },
    /// That blob is done: `complete` when every byte was read (for a
    /// verifying reader, that means its digest matched), false when the
    /// work stopped early.
    BlobFinished {
        phase: Phase,
        digest: &'a Digest,
        complete: bool,
    },
}

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
    /// Steps of an apply and local blob work.
    fn event(&self, _event: &Event) {}
}

/// Reports nothing (for `--json` and tests).
pub struct Silent;

impl Reporter for Silent {}

/// A reader that reports the bytes read through it as `phase` progress.
pub struct ReportingReader<'a, R> {
    inner: R,
    phase: Phase,
    digest: &'a Digest,
    reporter: &'a dyn Reporter,
    finished: bool,
}

impl<'a, R> ReportingReader<'a, R> {
    /// Starts reporting a blob of `size` bytes.
    pub fn new(
        inner: R,
        phase: Phase,
        digest: &'a Digest,
        size: u64,
        reporter: &'a dyn Reporter,
    ) -> Self {
        reporter.event(&Event::BlobStarted {
            phase,
            digest,
            size,
        });
        ReportingReader {
            inner,
            phase,
            digest,
            reporter,
            finished: false,
        }
    }

    fn finish(&mut self, complete: bool) {
        if !self.finished {
            self.finished = true;
            self.reporter.event(&Event::BlobFinished {
                phase: self.phase,
                digest: self.digest,
                complete,
            });
        }
    }
}

impl<R: Read> Read for ReportingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.reporter.event(&Event::BlobProgress {
                phase: self.phase,
                digest: self.digest,
                bytes: n as u64,
            });
        } else if !buf.is_empty() {
            self.finish(true);
        }
        Ok(n)
    }
}

impl<R> Drop for ReportingReader<'_, R> {
    fn drop(&mut self) {
        // Stopped before the end: say so, so bars are cleared.
        if !self.finished {
            self.finished = true;
            self.reporter.event(&Event::BlobFinished {
                phase: self.phase,
                digest: self.digest,
                complete: false,
            });
        }
    }
}
