//! The artifacts of a lock unpacked into a scratch store, removed on
//! return: what `install --check --bundle` and `doctor --bundle` read the
//! ELF files from when the host has no store yet. Nothing on the host
//! changes, nothing is run.

use super::layout::HostLayout;
use super::libraries::{self, LibraryMode, LibraryReport};
use super::store;
use crate::blobs::BlobSource;
use crate::error::{IoContext, Result};
use crate::lock::Lock;
use crate::progress::Reporter;
use std::path::Path;

/// Unpacks the artifacts into a scratch store and reads, from their ELF
/// files, what each needs and where it would come from.
pub fn library_report(
    lock: &Lock,
    source: &dyn BlobSource,
    mode: LibraryMode,
    reporter: &dyn Reporter,
) -> Result<LibraryReport> {
    let scratch = tempfile::tempdir().with_path(&std::env::temp_dir(), "create a directory in")?;
    let layout = HostLayout::new(scratch.path(), Path::new("/"));
    let keep = &crate::unpack::keep_all;
    for pinned in lock.artifacts() {
        store::ensure(&layout, pinned, source, keep, reporter)?;
    }
    libraries::check(lock, &layout.store(), mode, true)
}
