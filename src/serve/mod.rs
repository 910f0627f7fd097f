//! `pgoci serve`: a bundle served read-only as an OCI registry — the pull
//! side of the distribution spec, straight from the layout (directory, or
//! `.tar` read in place; see [`layout`]), so hosts of a site pull from one
//! machine what `bundle push` would otherwise have had to put into a
//! registry product first.
//!
//! Served: `GET /v2/`, `GET /v2/<name>/tags/list` (with `n` and `last`),
//! `GET|HEAD /v2/<name>/manifests/<tag|digest>` (the stored bytes and
//! media type, `Docker-Content-Digest`), `GET|HEAD /v2/<name>/blobs/<digest>`
//! (streamed from the file, `Range: bytes=` answered with 206 or 416) and
//! `GET /v2/<name>/referrers/<digest>` (with `artifactType`). Every other
//! path is 404 and every other method 405, with the spec's JSON error body.
//! Each image is served under the repository it came from (the path of
//! its reference without the registry: `pgoci/postgresql:17`), so a
//! profile naming the server's address resolves the same references.
//!
//! What a request names — repository, tag, digest — is parsed into
//! [`RepositoryName`], [`TagName`] and [`Digest`] before anything is
//! looked up, and is only ever looked up in what [`layout::Layout`] read
//! from `index.json`: no request reaches a path of its choosing.

pub mod auth;
mod error;
mod http;
pub mod layout;

use crate::digest::Digest;
use crate::error::Result;
use crate::names::{RepositoryName, TagName};
use ::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ::http::{Method, StatusCode};
use bytes::Bytes;
pub use error::ServeError;
use layout::{BlobFile, Layout};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;

/// What `pgoci serve` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The bundle: an OCI image layout directory or `.tar`.
    pub bundle: PathBuf,
    pub listen: SocketAddr,
    /// Certificate chain and private key (PEM): HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `user:password` lines: basic auth on every request.
    pub creds_file: Option<PathBuf>,
}

/// The server is up: where, and what it serves.
#[derive(Debug, Clone)]
pub struct Ready {
    pub address: SocketAddr,
    pub tls: bool,
    pub auth: bool,
    pub counts: layout::Counts,
}

/// How a server ended.
#[derive(Debug, Clone)]
pub struct Summary {
    pub address: SocketAddr,
    /// Requests answered.
    pub requests: u64,
    /// A second signal stopped it before every request had finished.
    pub forced: bool,
}

/// Serves `options.bundle` until SIGTERM or SIGINT: then it stops
/// accepting, lets the requests in flight finish and returns (a second
/// signal returns at once). `ready` is called once it listens. Takes over
/// SIGTERM and SIGINT for the whole process (they are blocked in every
/// thread and waited for by one), so call it from a process that does
/// nothing else.
pub fn run(options: &Options, ready: impl FnOnce(&Ready)) -> Result<Summary> {
    let layout = Layout::open(&options.bundle)?;
    let users = options
        .creds_file
        .as_deref()
        .map(auth::Users::load)
        .transpose()?;
    let tls = options
        .tls
        .as_ref()
        .map(|(cert, key)| http::tls_config(cert, key))
        .transpose()?;
    if users.is_some() && tls.is_none() && !options.listen.ip().is_loopback() {
        tracing::warn!(
            "--creds-file without --tls-cert: passwords cross the network in clear text"
        );
    }
    let server = Server { layout, users };
    http::run(server, options.listen, tls, ready)
}

/// The routes, over one layout.
pub struct Server {
    pub layout: Layout,
    pub users: Option<auth::Users>,
}

/// An answer, before it becomes an HTTP response.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Payload,
}

/// What a reply carries.
pub enum Payload {
    Empty,
    Bytes(Bytes),
    /// A byte range of a file, streamed.
    Blob(BlobFile),
}

impl Payload {
    pub fn len(&self) -> u64 {
        match self {
            Payload::Empty => 0,
            Payload::Bytes(b) => b.len() as u64,
            Payload::Blob(f) => f.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const OCI_INDEX: &str = crate::registry::OCI_INDEX;
const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

impl Reply {
    fn new(status: StatusCode, body: Payload) -> Self {
        Reply {
            status,
            headers: HeaderMap::new(),
            body,
        }
    }

    fn json(status: StatusCode, value: &Value) -> Self {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        Reply::new(status, Payload::Bytes(Bytes::from(bytes)))
            .with(header::CONTENT_TYPE, "application/json")
    }

    /// The distribution spec's error body.
    fn error(status: StatusCode, code: &str, message: &str) -> Self {
        Reply::json(
            status,
            &json!({"errors": [{"code": code, "message": message}]}),
        )
    }

    fn with(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }
}

fn name_unknown() -> Reply {
    Reply::error(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        "repository name not known to registry",
    )
}

fn manifest_unknown() -> Reply {
    Reply::error(
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
        "manifest unknown",
    )
}

fn blob_unknown() -> Reply {
    Reply::error(
        StatusCode::NOT_FOUND,
        "BLOB_UNKNOWN",
        "blob unknown to registry",
    )
}

fn digest_invalid() -> Reply {
    Reply::error(
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
        "invalid digest: sha256:<64 lowercase hex> expected",
    )
}

/// A parsed query string: `key=value` pairs, values percent-decoded.
fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a `Range` header asks of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// No (usable) range: the whole blob.
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// Nothing of it can be served (416).
    Unsatisfiable,
}

fn parse_range(value: Option<&HeaderValue>, len: u64) -> Range {
    let Some(value) = value else {
        return Range::Whole;
    };
    let Some(spec) = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        // Another unit: ignored, as RFC 9110 has it.
        return Range::Whole;
    };
    if spec.contains(',') {
        // Several ranges: the whole blob is a valid answer.
        return Range::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Unsatisfiable;
    };
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (a, b) {
        ("", suffix) => match num(suffix) {
            Some(n) if n > 0 && len > 0 => Range::Part(len.saturating_sub(n), len - 1),
            _ => Range::Unsatisfiable,
        },
        (start, "") => match num(start) {
            Some(s) if s < len => Range::Part(s, len - 1),
            _ => Range::Unsatisfiable,
        },
        (start, end) => match (num(start), num(end)) {
            (Some(s), Some(e)) if s <= e && s < len => Range::Part(s, e.min(len - 1)),
            _ => Range::Unsatisfiable,
        },
    }
}

impl Server {
    /// Answers one request. HEAD gets GET's headers and no body.
    pub fn respond(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Reply {
        let mut reply = self.route(method, path, query, headers);
        let len = reply.body.len();
        reply
            .headers
            .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
        reply.headers.insert(header::CONTENT_LENGTH, len.into());
        if method == Method::HEAD {
            reply.body = Payload::Empty;
        }
        reply
    }

    fn route(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Reply {
        if let Some(users) = &self.users {
            let given = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
            if !users.admits(given) {
                return Reply::error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "authentication required",
                )
                .with(header::WWW_AUTHENTICATE, r#"Basic realm="pgoci""#);
            }
        }
        if method != Method::GET && method != Method::HEAD {
            return Reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "this registry is read-only (pgoci serve)",
            )
            .with(header::ALLOW, "GET, HEAD");
        }
        let not_found = || Reply::error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint");
        let rest = match path.strip_prefix("/v2") {
            Some("" | "/") => return Reply::json(StatusCode::OK, &json!({})),
            Some(rest) => match rest.strip_prefix('/') {
                Some(rest) => rest,
                None => return not_found(),
            },
            None => return not_found(),
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let n = segments.len();
        if n < 3 {
            return not_found();
        }
        let (what, last) = (segments[n - 2], segments[n - 1]);
        let endpoint = match (what, last) {
            ("tags", "list") => "tags",
            ("manifests" | "blobs" | "referrers", _) => what,
            _ => return not_found(),
        };
        let Ok(name) = RepositoryName::parse(&segments[..n - 2].join("/")) else {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
                "invalid repository name",
            );
        };
        let Some(repo) = self.layout.repo(&name) else {
            return name_unknown();
        };
        match endpoint {
            "tags" => self.tags(&name, repo, query),
            "manifests" => self.manifest(repo, last),
            "blobs" => match last.parse::<Digest>() {
                Ok(d) => self.blob(repo, &d, headers),
                Err(_) => digest_invalid(),
            },
            _ => match last.parse::<Digest>() {
                Ok(d) => self.referrers(repo, &d, query),
                Err(_) => digest_invalid(),
            },
        }
    }

    fn tags(&self, name: &RepositoryName, repo: &layout::Repo, query: Option<&str>) -> Reply {
        let last = query_param(query, "last");
        let limit = query_param(query, "n").and_then(|n| n.parse::<usize>().ok());
        let after: Vec<&TagName> = repo
            .tags
            .keys()
            .filter(|t| last.as_deref().is_none_or(|l| t.as_str() > l))
            .collect();
        let shown: Vec<&str> = after
            .iter()
            .take(limit.unwrap_or(usize::MAX))
            .map(|t| t.as_str())
            .collect();
        let mut reply = Reply::json(
            StatusCode::OK,
            &json!({"name": name.as_str(), "tags": shown}),
        );
        if let (Some(n), Some(end)) = (limit, shown.last()) {
            if after.len() > shown.len() {
                reply = reply.with(
                    header::LINK,
                    &format!("</v2/{name}/tags/list?n={n}&last={end}>; rel=\"next\""),
                );
            }
        }
        reply
    }

    fn manifest(&self, repo: &layout::Repo, reference: &str) -> Reply {
        let digest = if reference.contains(':') {
            match reference.parse::<Digest>() {
                Ok(d) if repo.manifests.contains(&d) => d,
                Ok(_) => return manifest_unknown(),
                Err(_) => return digest_invalid(),
            }
        } else {
            match TagName::parse(reference)
                .ok()
                .and_then(|t| repo.tags.get(&t))
            {
                Some(d) => d.clone(),
                None => return manifest_unknown(),
            }
        };
        let Some(m) = self.layout.manifest(&digest) else {
            return manifest_unknown();
        };
        Reply::new(StatusCode::OK, Payload::Bytes(m.bytes.clone()))
            .with(header::CONTENT_TYPE, &m.media_type)
            .with(CONTENT_DIGEST, &digest.to_string())
            .with(header::ETAG, &format!("\"{digest}\""))
    }

    fn blob(&self, repo: &layout::Repo, digest: &Digest, headers: &HeaderMap) -> Reply {
        if !repo.blobs.contains(digest) {
            return blob_unknown();
        }
        let body = match self.layout.manifest_as_blob(digest) {
            Some(bytes) => Payload::Bytes(bytes),
            None => match self.layout.blob(digest) {
                Some(file) => Payload::Blob(file),
                None => return blob_unknown(),
            },
        };
        let len = body.len();
        let reply = |status, body| {
            Reply::new(status, body)
                .with(header::CONTENT_TYPE, "application/octet-stream")
                .with(CONTENT_DIGEST, &digest.to_string())
                .with(header::ACCEPT_RANGES, "bytes")
                .with(header::ETAG, &format!("\"{digest}\""))
        };
        match parse_range(headers.get(header::RANGE), len) {
            Range::Whole => reply(StatusCode::OK, body),
            Range::Part(start, end) => {
                let part = match body {
                    Payload::Bytes(b) => Payload::Bytes(b.slice(start as usize..=end as usize)),
                    Payload::Blob(f) => Payload::Blob(BlobFile {
                        offset: f.offset + start,
                        len: end - start + 1,
                        file: f.file,
                    }),
                    Payload::Empty => Payload::Empty,
                };
                reply(StatusCode::PARTIAL_CONTENT, part)
                    .with(header::CONTENT_RANGE, &format!("bytes {start}-{end}/{len}"))
            }
            Range::Unsatisfiable => Reply::new(StatusCode::RANGE_NOT_SATISFIABLE, Payload::Empty)
                .with(header::CONTENT_RANGE, &format!("bytes */{len}")),
        }
    }

    fn referrers(&self, repo: &layout::Repo, subject: &Digest, query: Option<&str>) -> Reply {
        let wanted = query_param(query, "artifactType");
        let mut manifests = Vec::new();
        for digest in &repo.manifests {
            let Some(m) = self.layout.manifest(digest) else {
                continue;
            };
            if m.subject.as_ref() != Some(subject) {
                continue;
            }
            if wanted.is_some() && m.artifact_type != wanted {
                continue;
            }
            let mut d = json!({
                "mediaType": m.media_type,
                "digest": digest.to_string(),
                "size": m.bytes.len(),
            });
            if let Some(t) = &m.artifact_type {
                d["artifactType"] = json!(t);
            }
            if !m.annotations.is_empty() {
                d["annotations"] = json!(m.annotations);
            }
            manifests.push(d);
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        });
        let mut reply = Reply::json(StatusCode::OK, &index).with(header::CONTENT_TYPE, OCI_INDEX);
        if wanted.is_some() {
            reply = reply.with(FILTERS_APPLIED, "artifactType");
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(parse_range(None, 10), Range::Whole);
        assert_eq!(parse_range(Some(&h("bytes=0-4")), 10), Range::Part(0, 4));
        assert_eq!(parse_range(Some(&h("bytes=5-")), 10), Range::Part(5, 9));
        assert_eq!(parse_range(Some(&h("bytes=-3")), 10), Range::Part(7, 9));
        assert_eq!(parse_range(Some(&h("bytes=-30")), 10), Range::Part(0, 9));
        assert_eq!(parse_range(Some(&h("bytes=8-100")), 10), Range::Part(8, 9));
        assert_eq!(parse_range(Some(&h("bytes=0-1,3-4")), 10), Range::Whole);
        assert_eq!(parse_range(Some(&h("items=0-1")), 10), Range::Whole);
        for bad in [
            "bytes=10-",
            "bytes=10-12",
            "bytes=5-4",
            "bytes=-0",
            "bytes=x-1",
            "bytes=1",
            "bytes=+1-2",
            "bytes=",
        ] {
            assert_eq!(
                parse_range(Some(&h(bad)), 10),
                Range::Unsatisfiable,
                "{bad}"
            );
        }
        assert_eq!(parse_range(Some(&h("bytes=-1")), 0), Range::Unsatisfiable);
    }

    #[test]
    fn queries_are_decoded() {
        assert_eq!(
            query_param(
                Some("n=2&artifactType=application%2Fspdx%2Bjson"),
                "artifactType"
            )
            .as_deref(),
            Some("application/spdx+json")
        );
        assert_eq!(query_param(Some("n=2"), "last"), None);
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
    #[test]
    fn serve_errors_keep_their_kinds_and_hints() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("cert.pem");
        let err = http::tls_config(&missing, &missing).err().unwrap();
        assert_eq!(err.kind, crate::Kind::Usage);
        assert!(matches!(
            err.typed::<ServeError>(),
            Some(ServeError::TlsCert { .. })
        ));
        std::fs::write(&missing, "no PEM here\n").unwrap();
        let err = http::tls_config(&missing, &missing).err().unwrap();
        assert!(matches!(
            err.typed::<ServeError>(),
            Some(ServeError::TlsCertEmpty { .. })
        ));
        let address: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let taken = crate::Error::from(ServeError::Listen {
            address,
            source: std::io::ErrorKind::AddrInUse.into(),
        });
        assert_eq!(taken.kind, crate::Kind::Host);
        assert_eq!(
            taken.hint.as_deref(),
            Some("another process listens there: pick another port")
        );
        assert!(taken.message.starts_with("cannot listen on 127.0.0.1:80: "));
        let gone = crate::Error::from(ServeError::LocalAddress {
            address,
            source: std::io::ErrorKind::Other.into(),
        });
        assert_eq!(gone.kind, crate::Kind::Host);
        assert!(gone.hint.is_none());
    }
}
