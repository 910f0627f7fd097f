//! The OCI distribution client: manifests and blobs from registries,
//! through `oci-client`, with pgoci's TLS, insecure-registry and credential
//! rules, and with every failure mapped to a registry error naming the URL.
//! Registries that want bearer tokens (`WWW-Authenticate: Bearer realm=...`:
//! ghcr.io, Docker Hub, quay.io, Harbor) get one token request per
//! repository and operation, anonymous or with the credentials found, and
//! a new token when a request is refused with 401. Each registry is pinged
//! (`GET /v2/`) once per run when it wants no token: every later manifest
//! and blob request reuses what that ping said. CA roots are read only
//! when a TLS registry is first used: a run that speaks only plain HTTP
//! never reads the system's CA directory.

pub mod auth;
mod errors;
mod push;
mod roots;
mod tokens;

pub use auth::CredentialError;
pub use errors::RegistryError;
use roots::{
    client_config, pem, setup_failed, system_roots_present, with_roots_env, NO_SYSTEM_ROOTS,
};

use crate::digest::Digest;
use crate::error::Result;
use futures_util::stream::BoxStream;
use oci_client::client::{BlobResponse, Certificate};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::token_cache::{RegistryToken, RegistryTokenType};
use oci_client::{Client, Reference, RegistryOperation};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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

/// One HTTP client (and its connection pool) with the auth state that
/// goes with it: the tokens it holds and what each registry's ping said.
struct Conn {
    client: Client,
    /// Token bookkeeping per registry, repository and operation.
    tokens: tokens::Tokens,
    /// Whether this client trusts no CA (the plain-HTTP one).
    plain: bool,
}

/// A connected registry client shared by every download of a run.
pub struct Registry {
    options: RegistryOptions,
    /// The PEM of `--ca-file`, read when the command starts.
    ca: Option<Vec<u8>>,
    /// Credentials already looked up, per registry host, with their source.
    auths: Mutex<HashMap<String, (RegistryAuth, auth::Source)>>,
    /// The client of plain-HTTP (`--insecure-registry`) registries: it
    /// trusts only a CA nobody has the key of, so building it reads no
    /// CA directory.
    plain: Arc<Conn>,
    /// The client of TLS registries, built on first use (the system's CA
    /// roots and `--ca-file`, read then, once per run); on a host without
    /// CA roots, built at the start instead (see [`Registry::new`]).
    tls: Mutex<Option<Arc<Conn>>>,
    /// The host has no CA roots: warned about on first TLS use.
    bare: bool,
}

impl Registry {
    /// Sets up the clients. Must run before the async runtime starts
    /// (while one thread runs): see [`with_roots_env`].
    pub fn new(options: RegistryOptions) -> Result<Self> {
        // rustls needs one process-wide crypto provider; a second install is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = match &options.ca_file {
            Some(ca) => Some(std::fs::read(ca).map_err(|source| RegistryError::CaFile {
                path: ca.clone(),
                source,
            })?),
            None => None,
        };
        let plain = with_roots_env(NO_SYSTEM_ROOTS, || {
            Client::try_from(client_config(
                &options,
                Vec::new(),
                vec![pem(NO_SYSTEM_ROOTS)],
            ))
        })?
        .map_err(setup_failed)?;
        // A bare host (a minimal root file system) has no CA bundle, and
        // the TLS stack will not start without one: its client trusts only
        // --ca-file, or a placeholder CA whose key was thrown away, so
        // --ca-file registries work and TLS to anything else fails with a
        // clear message. Built now, while the environment may be changed.
        let bare = !system_roots_present();
        let tls = if bare {
            let only = ca.as_deref().unwrap_or(NO_SYSTEM_ROOTS);
            let client = with_roots_env(only, || {
                Client::try_from(client_config(&options, Vec::new(), vec![pem(only)]))
            })?
            .map_err(setup_failed)?;
            Some(Arc::new(Conn {
                client,
                tokens: tokens::Tokens::default(),
                plain: false,
            }))
        } else {
            None
        };
        Ok(Registry {
            options,
            ca,
            auths: Mutex::new(HashMap::new()),
            plain: Arc::new(Conn {
                client: plain,
                tokens: tokens::Tokens::default(),
                plain: true,
            }),
            tls: Mutex::new(tls),
            bare,
        })
    }

    /// The client of TLS registries, built (and the CA roots read) the
    /// first time one is used.
    fn tls(&self) -> Result<Arc<Conn>> {
        let mut tls = self.tls.lock().expect("TLS client poisoned");
        if let Some(conn) = &*tls {
            if self.bare && conn.tokens.first_use() {
                tracing::warn!("this host has no CA certificates: TLS registries need --ca-file");
            }
            return Ok(conn.clone());
        }
        let extra: Vec<Certificate> = self.ca.iter().map(|c| pem(c)).collect();
        let client = Client::try_from(client_config(&self.options, extra, Vec::new()))
            .map_err(setup_failed)?;
        let conn = Arc::new(Conn {
            client,
            tokens: tokens::Tokens::default(),
            plain: false,
        });
        *tls = Some(conn.clone());
        Ok(conn)
    }

    /// Whether a registry is spoken to over plain HTTP.
    fn is_insecure(&self, registry: &str) -> bool {
        self.options.insecure.iter().any(|r| r == registry)
    }

    /// The client a registry is spoken to with.
    fn conn_for(&self, registry: &str) -> Result<Arc<Conn>> {
        if self.is_insecure(registry) {
            Ok(self.plain.clone())
        } else {
            self.tls()
        }
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
        let scheme = if self.is_insecure(registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{registry}/v2/")
    }

    /// Parses a reference in the registry's terms.
    pub fn parse_reference(reference: &str) -> Result<Reference> {
        reference
            .parse()
            .map_err(|source| RegistryError::BadReference {
                reference: reference.to_string(),
                source,
            })
            .map_err(Into::into)
    }

    /// Makes sure `conn`'s client holds a token for `op` on `reference`'s
    /// repository, asking the registry's token service once per repository
    /// and operation (concurrent requests wait for that one answer). With
    /// `stale`, the token of that generation was refused: a new one is
    /// asked for unless another request already did. Returns the
    /// generation of the token now held. A registry is pinged (`GET /v2/`)
    /// once per run to learn whether it wants tokens; when it does not,
    /// every repository and operation reuses that answer.
    async fn authorize(
        &self,
        conn: &Conn,
        reference: &Reference,
        op: RegistryOperation,
        stale: Option<u64>,
    ) -> Result<u64> {
        let registry = reference.resolve_registry().to_string();
        let (auth, source) = self.auth_for(&registry)?;
        conn.client.store_auth_if_needed(&registry, &auth).await;
        let push = op == RegistryOperation::Push;
        let slot = conn.tokens.slot(&registry, reference.repository(), push);
        let mut generation = slot.lock().await;
        let needed = match stale {
            None => *generation == 0,
            Some(seen) => *generation == seen,
        };
        if !needed {
            return Ok(*generation);
        }
        // The first request to a registry pings it, the others wait for
        // that answer; a refused token (`stale`) always asks again.
        let ping = conn.tokens.ping(&registry);
        let mut wants_tokens = ping.lock().await;
        if stale.is_none() && *wants_tokens == Some(false) {
            drop(wants_tokens);
            no_token_needed(conn, reference, op, &auth).await;
            *generation += 1;
            return Ok(*generation);
        }
        if *wants_tokens == Some(true) {
            drop(wants_tokens);
            self.token(conn, reference, op, &auth, &source).await?;
        } else {
            let token = self.token(conn, reference, op, &auth, &source).await?;
            *wants_tokens = Some(token);
            if !token {
                no_token_needed(conn, reference, op, &auth).await;
            }
        }
        *generation += 1;
        Ok(*generation)
    }

    /// Pings the registry and asks its token service (if it has one) for
    /// a token for `op` on `reference`'s repository, which `conn`'s client
    /// keeps. Returns whether the registry handed out a bearer token.
    async fn token(
        &self,
        conn: &Conn,
        reference: &Reference,
        op: RegistryOperation,
        auth: &RegistryAuth,
        source: &auth::Source,
    ) -> Result<bool> {
        let registry = reference.resolve_registry();
        let push = op == RegistryOperation::Push;
        let scope = format!(
            "{} of {}",
            if push { "push" } else { "pull" },
            reference.repository()
        );
        let token = conn.client.auth(reference, auth, op).await.map_err(|e| {
            errors::token_refused(e, &self.base_url(registry), &scope, source, push)
        })?;
        let Some(token) = token else {
            return Ok(false);
        };
        if push {
            // A push token's scope (pull,push) covers the pulls of a push
            // too (`HEAD` of blobs, which the client sends with its pull
            // token): as other clients do, use it for them, since a
            // registry may not grant pull alone on a repository that
            // does not exist yet.
            let token = RegistryTokenType::Bearer(RegistryToken::Token { token });
            conn.client
                .tokens
                .insert(reference, RegistryOperation::Pull, token)
                .await;
        }
        Ok(true)
    }

    /// Runs one registry request with a token for `op`. A 401 gets one more
    /// try with a new token: the registry, not pgoci, knows when a token ran
    /// out (ghcr.io's tokens are opaque, and any token may be revoked).
    /// `call` gets the client to use and the credential.
    async fn request<T, F, Fut>(
        &self,
        reference: &Reference,
        op: RegistryOperation,
        what: &str,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut(Client, RegistryAuth) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, OciDistributionError>>,
    {
        let registry = reference.resolve_registry().to_string();
        let (_, source) = self.auth_for(&registry)?;
        let push = op == RegistryOperation::Push;
        let map = |e| errors::map(e, &self.base_url(&registry), what, &source, push);
        let conn = self.conn_for(&registry)?;
        let mut result = self.attempt(&conn, reference, op, what, &mut call).await?;
        if conn.plain && matches!(&result, Err(e) if errors::is_tls_failure(e)) {
            // A plain-HTTP registry sent the client to a TLS server (a
            // blob store behind a redirect): that needs the CA roots.
            tracing::info!("{what}: redirected to TLS; trying again with the CA roots");
            let tls = self.tls()?;
            result = self.attempt(&tls, reference, op, what, &mut call).await?;
        }
        Ok(result.map_err(map)?)
    }

    /// One try of [`Self::request`] over `conn`: with a token, and once
    /// more with a new one after a 401. The outer error is a token
    /// refusal, the inner one the request's.
    async fn attempt<T, F, Fut>(
        &self,
        conn: &Conn,
        reference: &Reference,
        op: RegistryOperation,
        what: &str,
        call: &mut F,
    ) -> Result<std::result::Result<T, OciDistributionError>>
    where
        F: FnMut(Client, RegistryAuth) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, OciDistributionError>>,
    {
        let (auth, _) = self.auth_for(reference.resolve_registry())?;
        let generation = self.authorize(conn, reference, op, None).await?;
        match call(conn.client.clone(), auth.clone()).await {
            Err(e) if errors::is_unauthorized(&e) => {
                tracing::info!("{what}: 401 with the current token; asking for a new one");
                self.authorize(conn, reference, op, Some(generation))
                    .await?;
                Ok(call(conn.client.clone(), auth).await)
            }
            other => Ok(other),
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
                |client, auth| async move {
                    client
                        .pull_manifest_raw(reference, &auth, MANIFEST_TYPES)
                        .await
                },
            )
            .await?;
        let digest: Digest = digest.parse()?;
        // oci-client has the bytes already; the cap keeps an oversized
        // document from going further (JSON parsing, the cache, bundles).
        if bytes.len() as u64 > crate::limits::DOCUMENT_CAP {
            return Err(RegistryError::ManifestTooLarge {
                reference: reference.whole(),
                size: bytes.len() as u64,
                limit: crate::limits::DOCUMENT_CAP,
            }
            .into());
        }
        if Digest::of_bytes(&bytes) != digest {
            return Err(RegistryError::ManifestDigest {
                reference: reference.whole(),
                digest,
            }
            .into());
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
                |client, auth| async move {
                    match client
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
            return Err(RegistryError::ManifestDigest {
                reference: reference.whole(),
                digest,
            }
            .into());
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
        self.request(
            reference,
            RegistryOperation::Pull,
            &what,
            |client, _| async move {
                match client.pull_referrers(reference, artifact_type).await {
                    Ok(index) => Ok(index.manifests),
                    Err(e) if errors::is_not_found(&e) => Ok(Vec::new()),
                    Err(e) => Err(e),
                }
            },
        )
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
            let chunk = chunk.map_err(|source| RegistryError::BlobRead {
                reference: reference.whole(),
                digest: digest.clone(),
                source,
            })?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max {
                return Err(RegistryError::BlobTooLong {
                    reference: reference.whole(),
                    digest: digest.clone(),
                    max,
                }
                .into());
            }
        }
        if Digest::of_bytes(&bytes) != *digest {
            return Err(RegistryError::BlobDigest {
                reference: reference.whole(),
                digest: digest.clone(),
            }
            .into());
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
        self.request(
            reference,
            RegistryOperation::Pull,
            &what,
            |client, _| async move {
                Ok(
                    match client
                        .pull_blob_stream_partial(reference, digest, offset, None)
                        .await?
                    {
                        BlobResponse::Partial(s) => (s.stream, true),
                        BlobResponse::Full(s) => (s.stream, false),
                    },
                )
            },
        )
        .await
    }

    /// Whether the registry already has a blob (so a push can skip it);
    /// asked with the push token.
    pub async fn has_blob(&self, reference: &Reference, digest: &Digest) -> Result<bool> {
        let what = format!("blob {digest} of {}", reference.whole());
        let digest = digest.to_string();
        let digest = digest.as_str();
        self.request(
            reference,
            RegistryOperation::Push,
            &what,
            |client, _| async move { client.blob_exists(reference, digest).await },
        )
        .await
    }
}

/// Tells `conn`'s client that `reference`'s registry wants no token (its
/// ping had no bearer challenge), so that its requests for `op` on that
/// repository do not ping it again: `oci-client` pings before every
/// request for which it holds no token. What it keeps is the basic
/// credential found for the registry (sent as the registry would ask for
/// it), or, anonymous, an empty one, which a registry without
/// authentication ignores.
async fn no_token_needed(
    conn: &Conn,
    reference: &Reference,
    op: RegistryOperation,
    auth: &RegistryAuth,
) {
    let (user, password) = match auth {
        RegistryAuth::Basic(user, password) => (user.clone(), password.clone()),
        _ => (String::new(), String::new()),
    };
    // A push also asks with the pull token (`HEAD` of blobs): both.
    let ops: &[RegistryOperation] = match op {
        RegistryOperation::Push => &[RegistryOperation::Push, RegistryOperation::Pull],
        RegistryOperation::Pull => &[RegistryOperation::Pull],
    };
    for op in ops {
        let token = RegistryTokenType::Basic(user.clone(), password.clone());
        conn.client.tokens.insert(reference, *op, token).await;
    }
}

/// The media type a manifest declares, or the one its shape implies
/// ([`crate::oci::media_type_of`]).
pub fn media_type_of(bytes: &[u8]) -> String {
    crate::oci::media_type_of(bytes).to_string()
}
