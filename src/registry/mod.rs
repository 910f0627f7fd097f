//! The OCI distribution client: manifests and blobs from registries,
//! through `oci-client`, with pgoci's TLS, insecure-registry and credential
//! rules, and with every failure mapped to a registry error naming the URL.
//! Registries that want bearer tokens (`WWW-Authenticate: Bearer realm=...`:
//! ghcr.io, Docker Hub, quay.io, Harbor) get one token request per
//! repository and operation, anonymous or with the credentials found, and
//! a new token when a request is refused with 401.

pub mod auth;
mod errors;
mod tokens;

use crate::digest::Digest;
use crate::error::{Error, Result};
use futures_util::stream::BoxStream;
use oci_client::client::{
    BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol,
};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::token_cache::{RegistryToken, RegistryTokenType};
use oci_client::{Client, Reference, RegistryOperation};
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

/// A CA certificate that signed nothing and whose key no one has: the
/// trust store of a host that has none, so plain-HTTP registries work.
const NO_SYSTEM_ROOTS: &[u8] = include_bytes!("no-system-roots.pem");

/// A connected registry client shared by every download of a run.
pub struct Registry {
    client: Client,
    options: RegistryOptions,
    /// Credentials already looked up, per registry host, with their source.
    auths: Mutex<HashMap<String, (RegistryAuth, auth::Source)>>,
    /// Tokens asked for so far, per registry, repository and operation.
    tokens: tokens::Tokens,
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
        let config = |extra: Vec<Certificate>, only: Vec<Certificate>| ClientConfig {
            protocol: ClientProtocol::HttpsExcept(options.insecure.clone()),
            extra_root_certificates: extra,
            tls_certs_only: only,
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            user_agent: concat!("pgoci/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        let given = || {
            extra_root_certificates
                .iter()
                .map(|c| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: c.data.clone(),
                })
                .collect::<Vec<_>>()
        };
        let client = match Client::try_from(config(given(), Vec::new())) {
            Ok(c) => c,
            // A bare host (a minimal root file system) has no CA bundle, and
            // the TLS stack refuses to start without one. Plain-HTTP and
            // --ca-file registries must still work: trust only what was
            // given, or a placeholder CA whose key was thrown away, so TLS
            // to anything else fails with a clear message instead.
            Err(e) if errors::error_chain(&e).contains("CA certificates") => {
                // A bare host (a minimal root file system) has no CA bundle,
                // and the TLS stack will not start without one. It reads
                // its roots while the client is built and takes
                // SSL_CERT_FILE: point it, for that moment, at --ca-file or
                // at a placeholder CA whose key was thrown away, so plain
                // HTTP and --ca-file registries work and TLS to anything else
                // fails with a clear message.
                tracing::warn!("this host has no CA certificates: TLS registries need --ca-file");
                let roots = match &options.ca_file {
                    Some(ca) => std::fs::read(ca).unwrap_or_default(),
                    None => NO_SYSTEM_ROOTS.to_vec(),
                };
                let file = tempfile::NamedTempFile::new()
                    .and_then(|mut f| std::io::Write::write_all(&mut f, &roots).map(|_| f))
                    .map_err(|e| Error::host(format!("cannot write a temporary CA file: {e}")))?;
                // Still one thread here: the async runtime starts later.
                std::env::set_var("SSL_CERT_FILE", file.path());
                let built = Client::try_from(config(given(), Vec::new()));
                std::env::remove_var("SSL_CERT_FILE");
                built.map_err(|e| {
                    Error::host(format!(
                        "cannot set up the registry client: {}",
                        errors::error_chain(&e)
                    ))
                    .hint("install the ca-certificates package, or pass --ca-file")
                })?
            }
            Err(e) => {
                return Err(Error::host(format!(
                    "cannot set up the registry client: {}",
                    errors::error_chain(&e)
                ))
                .hint("install the ca-certificates package, or pass --ca-file"))
            }
        };
        Ok(Registry {
            client,
            options,
            auths: Mutex::new(HashMap::new()),
            tokens: tokens::Tokens::default(),
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

    /// Makes sure the client holds a token for `op` on `reference`'s
    /// repository, asking the registry's token service once per repository
    /// and operation (concurrent requests wait for that one answer). With
    /// `stale`, the token of that generation was refused: a new one is
    /// asked for unless another request already did. Returns the
    /// generation of the token now held. For registries without token
    /// auth this costs one `GET /v2/` per repository and operation.
    async fn authorize(
        &self,
        reference: &Reference,
        op: RegistryOperation,
        stale: Option<u64>,
    ) -> Result<u64> {
        let registry = reference.resolve_registry().to_string();
        let (auth, source) = self.auth_for(&registry)?;
        self.client.store_auth_if_needed(&registry, &auth).await;
        let slot = self.tokens.slot(
            &registry,
            reference.repository(),
            op == RegistryOperation::Push,
        );
        let mut generation = slot.lock().await;
        let needed = match stale {
            None => *generation == 0,
            Some(seen) => *generation == seen,
        };
        if needed {
            let push = op == RegistryOperation::Push;
            let scope = format!(
                "{} of {}",
                if push { "push" } else { "pull" },
                reference.repository()
            );
            let token = self.client.auth(reference, &auth, op).await.map_err(|e| {
                errors::token_refused(e, &self.base_url(&registry), &scope, &source, push)
            })?;
            if let (true, Some(token)) = (push, token) {
                // A push token's scope (pull,push) covers the pulls of a push
                // too (`HEAD` of blobs, which the client sends with its pull
                // token): as other clients do, use it for them, since a
                // registry may not grant pull alone on a repository that
                // does not exist yet.
                let token = RegistryTokenType::Bearer(RegistryToken::Token { token });
                self.client
                    .tokens
                    .insert(reference, RegistryOperation::Pull, token)
                    .await;
            }
            *generation += 1;
        }
        Ok(*generation)
    }

    /// Runs one registry request with a token for `op`. A 401 gets one more
    /// try with a new token: the registry, not pgoci, knows when a token ran
    /// out (ghcr.io's tokens are opaque, and any token may be revoked).
    async fn request<T, F, Fut>(
        &self,
        reference: &Reference,
        op: RegistryOperation,
        what: &str,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut(RegistryAuth) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, OciDistributionError>>,
    {
        let registry = reference.resolve_registry().to_string();
        let (auth, source) = self.auth_for(&registry)?;
        let push = op == RegistryOperation::Push;
        let map = |e| errors::map(e, &self.base_url(&registry), what, &source, push);
        let generation = self.authorize(reference, op, None).await?;
        match call(auth.clone()).await {
            Err(e) if errors::is_unauthorized(&e) => {
                tracing::info!("{what}: 401 with the current token; asking for a new one");
                self.authorize(reference, op, Some(generation)).await?;
                call(auth).await.map_err(map)
            }
            other => other.map_err(map),
        }
    }

    /// Fetches a manifest (or index) by tag or digest.
    pub async fn manifest(&self, reference: &Reference) -> Result<RawManifest> {
        let what = reference.whole();
        let (bytes, digest) = self
            .request(
                reference,
                RegistryOperation::Pull,
                &what,
                |auth| async move {
                    self.client
                        .pull_manifest_raw(reference, &auth, MANIFEST_TYPES)
                        .await
                },
            )
            .await?;
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

    /// Fetches a manifest that may not exist (a signature tag): `None`
    /// when the registry says it is unknown, an error for anything else.
    pub async fn manifest_if_exists(&self, reference: &Reference) -> Result<Option<RawManifest>> {
        let what = reference.whole();
        let found = self
            .request(
                reference,
                RegistryOperation::Pull,
                &what,
                |auth| async move {
                    match self
                        .client
                        .pull_manifest_raw(reference, &auth, MANIFEST_TYPES)
                        .await
                    {
                        Ok(found) => Ok(Some(found)),
                        Err(e) if errors::is_not_found(&e) => Ok(None),
                        Err(e) => Err(e),
                    }
                },
            )
            .await?;
        let Some((bytes, digest)) = found else {
            return Ok(None);
        };
        let digest: Digest = digest.parse()?;
        if Digest::of_bytes(&bytes) != digest {
            return Err(Error::integrity(format!(
                "manifest of {} does not match its digest {digest}",
                reference.whole()
            )));
        }
        let media_type = media_type_of(&bytes);
        Ok(Some(RawManifest {
            bytes: bytes.to_vec(),
            digest,
            media_type,
        }))
    }

    /// The manifests that refer to `reference`'s digest (OCI 1.1
    /// referrers API; on a registry without it, the `sha256-<hex>`
    /// referrers tag), filtered by artifact type. None is an empty list.
    pub async fn referrers(
        &self,
        reference: &Reference,
        artifact_type: Option<&str>,
    ) -> Result<Vec<oci_client::manifest::ImageIndexEntry>> {
        let what = format!("referrers of {}", reference.whole());
        self.request(reference, RegistryOperation::Pull, &what, |_| async move {
            match self.client.pull_referrers(reference, artifact_type).await {
                Ok(index) => Ok(index.manifests),
                Err(e) if errors::is_not_found(&e) => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Fetches a small blob whole, verified against its digest; a blob
    /// longer than `max` bytes is an integrity error (no registry may make
    /// pgoci buffer without bound).
    pub async fn small_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        max: u64,
    ) -> Result<Vec<u8>> {
        use futures_util::StreamExt;
        let mut stream = self.blob_stream(reference, digest).await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                Error::registry(format!(
                    "reading blob {digest} of {}: {e}",
                    reference.whole()
                ))
                .transient()
            })?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max {
                return Err(Error::integrity(format!(
                    "blob {digest} of {} is longer than {max} bytes",
                    reference.whole()
                )));
            }
        }
        if Digest::of_bytes(&bytes) != *digest {
            return Err(Error::integrity(format!(
                "blob {digest} of {} does not match its digest",
                reference.whole()
            )));
        }
        Ok(bytes)
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
        let what = format!("blob {digest} of {}", reference.whole());
        let digest = digest.to_string();
        let digest = digest.as_str();
        // Always as a range (`bytes=0-` included): the client hashes a
        // whole-blob response itself, and the caller hashes every byte as
        // it writes it anyway (it must, to resume), so asking for a range
        // saves a second SHA-256 pass over every blob.
        self.request(reference, RegistryOperation::Pull, &what, |_| async move {
            Ok(
                match self
                    .client
                    .pull_blob_stream_partial(reference, digest, offset, None)
                    .await?
                {
                    BlobResponse::Partial(s) => (s.stream, true),
                    BlobResponse::Full(s) => (s.stream, false),
                },
            )
        })
        .await
    }

    /// Whether the registry already has a blob (so a push can skip it);
    /// asked with the push token.
    pub async fn has_blob(&self, reference: &Reference, digest: &Digest) -> Result<bool> {
        let what = format!("blob {digest} of {}", reference.whole());
        let digest = digest.to_string();
        let digest = digest.as_str();
        self.request(reference, RegistryOperation::Push, &what, |_| async move {
            self.client.blob_exists(reference, digest).await
        })
        .await
    }

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
        self.request(reference, RegistryOperation::Push, &what, |_| {
            let stream = chunks();
            async move {
                self.client
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
        self.request(reference, RegistryOperation::Push, &what, |_| {
            let (bytes, content_type) = (bytes.clone(), content_type.clone());
            async move {
                self.client
                    .push_manifest_raw(reference, bytes, content_type)
                    .await
            }
        })
        .await?;
        Ok(())
    }
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
