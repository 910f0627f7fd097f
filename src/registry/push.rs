//! Uploads to a registry (`bundle push`): blobs streamed in chunks,
//! manifests as their exact bytes.

use super::{Registry, RegistryError};
use crate::digest::Digest;
use crate::error::Result;
use futures_util::stream::BoxStream;
use oci_client::errors::OciDistributionError;
use oci_client::{Reference, RegistryOperation};

impl Registry {
    /// Uploads a blob from a stream of chunks (chunked upload, never whole
    /// in memory). `chunks` makes the stream, again if the upload must start
    /// over with a new token.
    pub async fn push_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        mut chunks: impl FnMut() -> BoxStream<
            'static,
            std::result::Result<bytes::Bytes, OciDistributionError>,
        >,
    ) -> Result<()> {
        let what = format!("push of blob {digest} to {}", reference.whole());
        let digest = digest.to_string();
        let digest = digest.as_str();
        self.request(reference, RegistryOperation::Push, &what, |client, _| {
            let stream = chunks();
            async move {
                client
                    .push_blob_stream(reference, stream, digest, Some(size))
                    .await
            }
        })
        .await?;
        Ok(())
    }

    /// Uploads a manifest's exact bytes (so its digest stays the same).
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<()> {
        let what = format!("push of {}", reference.whole());
        let content_type = reqwest_header(media_type)?;
        let bytes = bytes::Bytes::from(bytes);
        self.request(reference, RegistryOperation::Push, &what, |client, _| {
            let (bytes, content_type) = (bytes.clone(), content_type.clone());
            async move {
                client
                    .push_manifest_raw(reference, bytes, content_type)
                    .await
            }
        })
        .await?;
        Ok(())
    }
}

fn reqwest_header(value: &str) -> Result<http::HeaderValue> {
    http::HeaderValue::from_str(value).map_err(|_| {
        RegistryError::BadMediaType {
            media_type: value.to_string(),
        }
        .into()
    })
}
