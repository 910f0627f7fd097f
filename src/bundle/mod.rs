//! Bundles: one or more locks and every blob they need, each blob once, as
//! an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`, plus
//! `pgoci.lock`), either a directory or one uncompressed `.tar` with entries
//! in a fixed order so the same locks always give the same bytes. skopeo and
//! oras read both.
//!
//! `pgoci.lock` is the first lock. A bundle for a whole site (say
//! PostgreSQL 15 and 17) keeps every further lock as a blob named by its
//! digest, listed in the index's `io.pgoci.locks` annotation; a one-lock
//! bundle is what it always was. The layout's documents are oci-spec's
//! types ([`crate::oci`]).

mod error;
mod index;
mod read;
#[cfg(test)]
mod tests;
mod write;

pub use error::{BundleError, Occupied};
use index::{index_for, lock_blob};
use read::scan_tar;
pub use read::{tar_entries, Bundle, LockChoice};
pub use write::{check_target, export, export_with, ExportReport, Target};

pub const LOCK_FILE: &str = "pgoci.lock";
const LAYOUT_FILE: &str = "oci-layout";
const REF_NAME: &str = oci_spec::image::ANNOTATION_REF_NAME;
const LOCK_DIGEST: &str = "io.pgoci.lock.digest";
/// The largest lock a bundle may carry (real ones are a few KiB).
const MAX_LOCK_BYTES: u64 = 4 << 20;
/// Every lock of a bundle holding more than one, comma-separated digests.
const LOCKS: &str = "io.pgoci.locks";
/// The role of a descriptor that only gives a short name.
const ALIAS: &str = "alias";
/// The repository a companion manifest is published in.
const REPOSITORY: &str = "io.pgoci.repository";
/// The manifest a referrer is about.
const REFERS: &str = "io.pgoci.refers";

/// The media type of lock blobs (further locks of a bundle).
pub const LOCK_MEDIA_TYPE: &str = "application/vnd.pgoci.lock.v1+yaml";
