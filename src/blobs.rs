//! Where blob bytes come from once they are local: the cache, a bundle
//! directory or a bundle `.tar`. Every reader handed out verifies the blob
//! against its digest as it is read, so nothing downstream can consume
//! unverified bytes.

use crate::digest::{DigestError, VerifyingReader};
use crate::error::{Error, IoContext, Result};
use crate::limits::DOCUMENT_CAP;
use crate::lock::Blob;
use crate::progress::{Phase, Reporter, ReportingReader};
use std::io::Read;

/// A local store of blobs by digest.
pub trait BlobSource: Send + Sync {
    /// Opens a blob's raw bytes, or fails naming it if it is missing.
    fn open_raw(&self, blob: &Blob) -> Result<Box<dyn Read + Send + '_>>;

    /// Opens a blob through a reader that fails at the end on a mismatch.
    fn open(&self, blob: &Blob) -> Result<VerifyingReader<Box<dyn Read + Send + '_>>> {
        Ok(VerifyingReader::new(
            self.open_raw(blob)?,
            blob.digest.clone(),
            blob.size,
        ))
    }

    /// Reads a whole (small) blob into memory, verified: a manifest or a
    /// config, so one declared larger than [`DOCUMENT_CAP`] is refused
    /// before anything is allocated or read.
    fn read_small(&self, blob: &Blob) -> Result<Vec<u8>> {
        if blob.size > DOCUMENT_CAP {
            return Err(DigestError::DeclaredTooLarge {
                digest: blob.digest.clone(),
                size: blob.size,
                limit: DOCUMENT_CAP,
            }
            .into());
        }
        let mut out = Vec::with_capacity(blob.size as usize);
        self.open(blob)?
            .read_to_end(&mut out)
            .map_err(|e| DigestError::from_io(&blob.digest, e))?;
        Ok(out)
    }

    /// Reads every byte of a blob to check it, without keeping any,
    /// reporting the bytes as `Verify` progress.
    fn verify(&self, blob: &Blob, reporter: &dyn Reporter) -> Result<()> {
        // The progress reader sees the end only once the digest matched.
        let checked = self.open(blob)?;
        let mut reading =
            ReportingReader::new(checked, Phase::Verify, &blob.digest, blob.size, reporter);
        std::io::copy(&mut reading, &mut std::io::sink())
            .map_err(|e| DigestError::from_io(&blob.digest, e))?;
        Ok(())
    }
}

impl BlobSource for crate::cache::Cache {
    fn open_raw(&self, blob: &Blob) -> Result<Box<dyn Read + Send + '_>> {
        let path = self.path(&blob.digest);
        let file = std::fs::File::open(&path).with_path(&path, "open cached blob")?;
        Ok(Box::new(std::io::BufReader::with_capacity(256 << 10, file)))
    }
}

/// A source with no blobs, for planning (`--check`) before anything is
/// downloaded: any read is a bug.
pub struct NoBlobs;

impl BlobSource for NoBlobs {
    fn open_raw(&self, blob: &Blob) -> Result<Box<dyn Read + Send + '_>> {
        Err(Error::internal(format!(
            "planning read blob {}",
            blob.digest
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;
    use crate::digest::Digest;
    use crate::progress::Silent;

    fn blob(bytes: &[u8], size: u64) -> Blob {
        Blob {
            digest: Digest::of_bytes(bytes),
            size,
            media_type: "application/vnd.oci.image.config.v1+json".into(),
        }
    }

    /// A cached blob that is not what its digest says is refused, as
    /// the check's own typed error, in the words users have seen.
    #[test]
    fn a_corrupt_or_oversized_blob_is_a_typed_integrity_error() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let good = blob(b"{}", 2);
        let path = cache.path(&good.digest);
        std::fs::write(&path, b"{]").unwrap();
        let err = cache.read_small(&good).unwrap_err();
        assert!(
            matches!(err.typed::<DigestError>(), Some(DigestError::Mismatch { expected, got: 2, .. }) if expected == &good.digest),
            "{err:?}"
        );
        assert_eq!(err.kind.exit_code(), 5);
        assert!(
            err.message.starts_with(&format!(
                "blob {} does not match its digest (got ",
                good.digest
            )),
            "{}",
            err.message
        );
        let err = cache.verify(&good, &Silent).unwrap_err();
        assert!(
            matches!(
                err.typed::<DigestError>(),
                Some(DigestError::Mismatch { .. })
            ),
            "{err:?}"
        );
        let huge = blob(b"{}", DOCUMENT_CAP + 1);
        let err = cache.read_small(&huge).unwrap_err();
        assert!(
            matches!(err.typed::<DigestError>(), Some(DigestError::DeclaredTooLarge { size, limit, .. }) if *size == DOCUMENT_CAP + 1 && *limit == DOCUMENT_CAP),
            "{err:?}"
        );
        assert_eq!(err.kind.exit_code(), 5);
    }
}
