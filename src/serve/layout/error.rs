//! A layout `pgoci serve` cannot open or serve.

use super::*;

/// A layout `pgoci serve` cannot open or serve.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// Nothing (that may be looked at) is there (exit 2).
    #[error("cannot open bundle {path}: {source}")]
    Missing { path: PathBuf, source: io::Error },
    /// A directory or file that cannot be opened (exit 2).
    #[error("cannot open bundle {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("bundle {path} is neither a directory nor a .tar file")]
    NotFileOrDir { path: PathBuf },
    /// A tar that cannot be read as one.
    #[error("{path} is not an OCI image layout: {source}")]
    NotATar { path: PathBuf, source: io::Error },
    /// A `blobs/sha256` that is not a directory to read (a symlink, say).
    #[error("{path} is not an OCI image layout: blobs/sha256: {source}")]
    BlobDir { path: PathBuf, source: io::Error },
    #[error("{path} is not an OCI image layout pgoci can serve: oci-layout: {source}")]
    NoLayoutFile { path: PathBuf, source: io::Error },
    #[error("{path} is not an OCI image layout pgoci can serve: oci-layout: {source}")]
    BadLayoutFile {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} is not an OCI image layout pgoci can serve: oci-layout is not version 1.0.0")]
    LayoutVersion {
        path: PathBuf,
        version: Option<String>,
    },
    #[error("{path} is not an OCI image layout pgoci can serve: index.json: {source}")]
    NoIndex { path: PathBuf, source: io::Error },
    /// An `index.json` that is not an image index.
    #[error("{path} is not an OCI image layout pgoci can serve: index.json: {source}")]
    BadIndex {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A descriptor of `index.json` whose digest is not sha256.
    #[error("{path} is not an OCI image layout pgoci can serve: index.json: {source}")]
    IndexDigest { path: PathBuf, source: Box<Error> },
    #[error("{path} is not an OCI image layout pgoci can serve: index.json lists {digest}, which the layout does not hold")]
    Unheld { path: PathBuf, digest: Digest },
    /// A blob of another size than its manifest lists.
    #[error("{path} is not an OCI image layout pgoci can serve: blob {digest} is {size} bytes, but listed as {listed}")]
    BlobSize {
        path: PathBuf,
        digest: Digest,
        size: u64,
        listed: u64,
    },
    /// A blob that cannot be opened (a symlink, not a regular file).
    #[error("{path} is not an OCI image layout pgoci can serve: blob {digest}: {source}")]
    Blob {
        path: PathBuf,
        digest: Digest,
        source: io::Error,
    },
    #[error("{path}: manifest {digest} is {size} bytes, but listed as {listed}")]
    ManifestSize {
        path: PathBuf,
        digest: Digest,
        size: u64,
        listed: u64,
    },
    /// A manifest that cannot be read (too large, a symlink).
    #[error("{path}: manifest {digest} {source}")]
    ManifestRead {
        path: PathBuf,
        digest: Digest,
        source: io::Error,
    },
    #[error("{path}: manifest {digest} does not match its digest")]
    ManifestMismatch { path: PathBuf, digest: Digest },
    #[error("{path}: manifest {digest} is not a manifest or index: {source}")]
    NotADocument {
        path: PathBuf,
        digest: Digest,
        source: serde_json::Error,
    },
    /// A manifest listing something by a digest that is not sha256.
    #[error("{path}: manifest {digest} is not a manifest or index: {source}")]
    ManifestDigest {
        path: PathBuf,
        digest: Digest,
        source: Box<Error>,
    },
    #[error("{path}: manifest {digest} nests indexes deeper than {MAX_DEPTH}")]
    TooDeep { path: PathBuf, digest: Digest },
}

impl Classify for LayoutError {
    fn kind(&self) -> Kind {
        match self {
            LayoutError::Missing { .. }
            | LayoutError::Open { .. }
            | LayoutError::NotFileOrDir { .. } => Kind::Usage,
            _ => Kind::Integrity,
        }
    }

    fn hint(&self) -> Option<String> {
        let hint = match self {
            LayoutError::Missing { .. } => "pass a bundle directory or .tar (an OCI image layout)",
            LayoutError::Open { .. }
            | LayoutError::NotFileOrDir { .. }
            | LayoutError::NotATar { .. }
            | LayoutError::BlobDir { .. } => return None,
            _ => "check it with `pgoci bundle verify`, or export it again",
        };
        Some(hint.to_string())
    }
}
