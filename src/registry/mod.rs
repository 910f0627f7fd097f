//! The OCI distribution client: manifests and blobs from registries,
//! through `oci-client`, with pgoci's TLS, insecure-registry and credential
//! rules, and with every failure mapped to a registry error naming the URL.

pub mod auth;

use crate::digest::Digest;
use crate::error::{Error, Result};
use futures_util::stream::BoxStream;
use oci_client::client::{
    BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol,
};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Every manifest type pgoci accepts.
pub const MANIFEST_TYPES: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// Connection settings from the command line.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Registries (host[:port]) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// An extra CA to trust, PEM.
    pub ca_file: Option<PathBuf>,
    /// `USER:PASSWORD` from `--creds`.
    pub creds: Option<String>,
}

/// A manifest as the registry served it.
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
}

impl RawManifest {
    /// Whether this is an image index (or Docker manifest list).
    pub fn is_index(&self) -> bool {
        self.media_type == OCI_INDEX || self.media_type == DOCKER_LIST
    }
}

/// A connected registry client shared by every download of a run.
pub struct Registry {
    client: Client,
    options: RegistryOptions,
    /// Credentials already looked up, per registry host, with their source.
    auths: Mutex<HashMap<String, (RegistryAuth, auth::Source)>>,
}

impl Registry {
    pub fn new(options: RegistryOptions) -> Result<Self> {
        // rustls needs one process-wide crypto provider; a second install is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut extra_root_certificates = Vec::new();
        if let Some(ca) = &options.ca_file {
            let data = std::fs::read(ca).map_err(|e| {
                Error::usage(format!("cannot read --ca-file {}: {e}", ca.display()))
            })?;
            extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(options.insecure.clone()),
            extra_root_certificates,
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            user_agent: concat!("pgoci/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        Ok(Registry {
            client: Client::new(config),
            options,
            auths: Mutex::new(HashMap::new()),
        })
    }

    /// The credential to use for a registry host, looked up once.
    fn auth_for(&self, registry: &str) -> Result<(RegistryAuth, auth::Source)> {
        let mut auths = self.auths.lock().expect("auth cache poisoned");
        if let Some(hit) = auths.get(registry) {
            return Ok(hit.clone());
        }
        let found = match auth::lookup(registry, self.options.creds.as_deref())? {
            Some(c) => (RegistryAuth::Basic(c.user, c.password), c.source),
            None => (RegistryAuth::Anonymous, auth::Source::Anonymous),
        };
        auths.insert(registry.to_string(), found.clone());
        Ok(found)
    }

    /// The URL scheme used for a registry, for messages.
    fn base_url(&self, registry: &str) -> String {
        let scheme = if self.options.insecure.iter().any(|r| r == registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{registry}/v2/")
    }

    /// Parses a reference in the registry's terms.
    pub fn parse_reference(reference: &str) -> Result<Reference> {
        reference.parse().map_err(|e| {
            Error::resolve(format!("`{reference}` is not a valid image reference: {e}"))
        })
    }

    /// Fetches a manifest (or index) by tag or digest.
    pub async fn manifest(&self, reference: &Reference) -> Result<RawManifest> {
        let registry = reference.resolve_registry().to_string();
        let (auth, source) = self.auth_for(&registry)?;
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(reference, &auth, MANIFEST_TYPES)
            .await
            .map_err(|e| self.map_error(e, &registry, &reference.whole(), &source))?;
        let digest: Digest = digest.parse()?;
        // oci-client has the bytes already; the cap keeps an oversized
        // document from going further (JSON parsing, the cache, bundles).
        if bytes.len() as u64 > crate::limits::DOCUMENT_CAP {
            return Err(Error::integrity(format!(
                "manifest of {} is {} bytes, more than the {}-byte limit",
                reference.whole(),
                bytes.len(),
                crate::limits::DOCUMENT_CAP
            )));
        }
        if Digest::of_bytes(&bytes) != digest {
            return Err(Error::integrity(format!(
                "manifest of {} does not match its digest {digest}",
                reference.whole()
            )));
        }
        let media_type = media_type_of(&bytes);
        Ok(RawManifest {
            bytes: bytes.to_vec(),
            digest,
            media_type,
        })
    }

    /// Opens a blob as a byte stream (not yet verified: the caller hashes).
    pub async fn blob_stream(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<BoxStream<'static, std::io::Result<bytes::Bytes>>> {
        Ok(self.blob_stream_from(reference, digest, 0).await?.0)
    }

    /// Opens a blob from byte `offset` (a Range request). The bool says
    /// whether the registry honoured the range; if not, the stream starts
    /// at byte 0.
    pub async fn blob_stream_from(
        &self,
        reference: &Reference,
        digest: &Digest,
        offset: u64,
    ) -> Result<(BoxStream<'static, std::io::Result<bytes::Bytes>>, bool)> {
        let registry = reference.resolve_registry().to_string();
        let (auth, source) = self.auth_for(&registry)?;
        self.client.store_auth_if_needed(&registry, &auth).await;
        let digest = digest.to_string();
        let map = |e| self.map_error(e, &registry, &reference.whole(), &source);
        if offset == 0 {
            let sized = self
                .client
                .pull_blob_stream(reference, digest.as_str())
                .await
                .map_err(map)?;
            return Ok((sized.stream, false));
        }
        match self
            .client
            .pull_blob_stream_partial(reference, digest.as_str(), offset, None)
            .await
            .map_err(map)?
        {
            BlobResponse::Partial(s) => Ok((s.stream, true)),
            BlobResponse::Full(s) => Ok((s.stream, false)),
        }
    }

    /// Whether the registry already has a blob (so a push can skip it).
    pub async fn has_blob(&self, reference: &Reference, digest: &Digest) -> Result<bool> {
        let registry = reference.resolve_registry().to_string();
        let (auth, source) = self.auth_for(&registry)?;
        self.client
            .auth(reference, &auth, oci_client::RegistryOperation::Push)
            .await
            .map_err(|e| self.map_error(e, &registry, &reference.whole(), &source))?;
        self.client
            .blob_exists(reference, &digest.to_string())
            .await
            .map_err(|e| self.map_error(e, &registry, &reference.whole(), &source))
    }

    /// Uploads a blob from a stream of chunks (chunked upload, never whole in memory).
    pub async fn push_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        chunks: BoxStream<'static, std::result::Result<bytes::Bytes, OciDistributionError>>,
    ) -> Result<()> {
        let registry = reference.resolve_registry().to_string();
        let (_, source) = self.auth_for(&registry)?;
        self.client
            .push_blob_stream(reference, chunks, &digest.to_string(), Some(size))
            .await
            .map_err(|e| self.map_error(e, &registry, &reference.whole(), &source))?;
        Ok(())
    }

    /// Uploads a manifest's exact bytes (so its digest stays the same).
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<()> {
        let registry = reference.resolve_registry().to_string();
        let (_, source) = self.auth_for(&registry)?;
        let content_type = reqwest_header(media_type)?;
        self.client
            .push_manifest_raw(reference, bytes, content_type)
            .await
            .map_err(|e| self.map_error(e, &registry, &reference.whole(), &source))?;
        Ok(())
    }

    /// Turns an `oci-client` error into a registry error that names the
    /// URL and, for auth failures, where the credentials came from.
    fn map_error(
        &self,
        err: OciDistributionError,
        registry: &str,
        what: &str,
        source: &auth::Source,
    ) -> Error {
        let url = self.base_url(registry);
        match &err {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => Error::registry(format!(
                "401 unauthorized at {url} for {what} (credentials from {source})"
            ))
            .hint("check the user and password, or pass --creds USER:PASSWORD"),
            OciDistributionError::ImageManifestNotFoundError(_) => {
                Error::registry(format!("{what} not found at {url}"))
            }
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        oci_client::errors::OciErrorCode::ManifestUnknown
                            | oci_client::errors::OciErrorCode::NameUnknown
                            | oci_client::errors::OciErrorCode::BlobUnknown
                    )
                }) =>
            {
                Error::registry(format!("{what} not found at {url}"))
            }
            OciDistributionError::RequestError(e) if error_chain(e).contains("certificate") => {
                Error::registry(format!("TLS to {url} failed: {}", error_chain(e))).hint(
                    "pass --ca-file with the PEM of the CA that signed the registry's certificate",
                )
            }
            OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
                Error::registry(format!("registry {url} unreachable: {}", error_chain(e)))
                    .hint("check the address, or use a bundle for offline installs")
                    .transient()
            }
            OciDistributionError::RequestError(_) | OciDistributionError::IoError(_) => {
                Error::registry(format!(
                    "registry {url} failed for {what}: {}",
                    error_chain(&err)
                ))
                .transient()
            }
            OciDistributionError::ServerError { code, .. } if *code >= 500 || *code == 429 => {
                Error::registry(format!("registry {url} answered {code} for {what}")).transient()
            }
            OciDistributionError::RegistryError { envelope, .. }
                if envelope
                    .errors
                    .iter()
                    .any(|e| e.code == oci_client::errors::OciErrorCode::Toomanyrequests) =>
            {
                Error::registry(format!("registry {url} answered 429 for {what}")).transient()
            }
            _ => Error::registry(format!(
                "registry {url} failed for {what}: {}",
                error_chain(&err)
            )),
        }
    }
}

/// An error with its causes, on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

/// The media type a manifest declares, or the one its shape implies.
pub fn media_type_of(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(m),
            ..
        }) => m,
        Ok(Probe {
            manifests: Some(_), ..
        }) => OCI_INDEX.into(),
        _ => OCI_MANIFEST.into(),
    }
}

fn reqwest_header(value: &str) -> Result<http::HeaderValue> {
    http::HeaderValue::from_str(value)
        .map_err(|_| Error::integrity(format!("media type `{value}` is not a valid header")))
}
