//! [`RegistryError`]: `oci-client` errors as pgoci registry errors, one
//! line naming the registry URL, what was asked for and, for refusals,
//! where the credentials came from (never the secret); and what pgoci
//! itself finds wrong in what a registry sent (a manifest or blob that
//! does not match its digest or is too large). A registry's or token
//! service's response body is never shown raw: at most the code and
//! message of its first OCI error, cut short.

use super::auth::Source;
use crate::digest::Digest;
use crate::error::{Classify, Kind};
use oci_client::errors::{DigestError, OciDistributionError, OciEnvelope, OciErrorCode};
use std::path::PathBuf;

/// The longest registry message quoted in an error line.
const MAX_QUOTE: usize = 160;

/// The HTTP status an error stands for, when it is one.
pub fn status_of(err: &OciDistributionError) -> Option<u16> {
    match err {
        OciDistributionError::UnauthorizedError { .. } => Some(401),
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::RequestError(e) => e.status().map(|s| s.as_u16()),
        // The client keeps the envelope, not the status: the codes say it.
        OciDistributionError::RegistryError { envelope, .. } => {
            if has_code(envelope, &OciErrorCode::Unauthorized) {
                Some(401)
            } else if has_code(envelope, &OciErrorCode::Denied) {
                Some(403)
            } else if has_code(envelope, &OciErrorCode::Toomanyrequests) {
                Some(429)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Whether the registry says the thing asked for does not exist (as
/// opposed to refusing or failing): optional content such as signatures.
pub fn is_not_found(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => {
            has_code(envelope, &OciErrorCode::ManifestUnknown)
                || has_code(envelope, &OciErrorCode::NameUnknown)
                || has_code(envelope, &OciErrorCode::BlobUnknown)
        }
        _ => status_of(err) == Some(404),
    }
}

/// Whether a request was refused for want of a (valid) token or credentials:
/// the one case where asking the token service again may help.
pub fn is_unauthorized(err: &OciDistributionError) -> bool {
    status_of(err) == Some(401)
}

/// Whether a request failed in TLS, on the server's certificate.
pub fn is_tls_failure(err: &OciDistributionError) -> bool {
    matches!(err, OciDistributionError::RequestError(e) if error_chain(e).contains("certificate"))
}

fn has_code(envelope: &OciEnvelope, code: &OciErrorCode) -> bool {
    envelope.errors.iter().any(|e| &e.code == code)
}

/// Where the credentials came from, for the end of a refusal line.
pub fn credentials_note(source: &Source) -> String {
    match source {
        Source::Anonymous => "no credentials: anonymous".to_string(),
        other => format!("credentials from {other}"),
    }
}

/// What to do about a refusal, by credential source.
fn refusal_hint(source: &Source, push: bool) -> String {
    match (source, push) {
        (Source::Anonymous, _) => {
            "pass --creds USER:PASSWORD, or set PGOCI_REGISTRY_USER and PGOCI_REGISTRY_PASSWORD"
                .to_string()
        }
        (source, true) => format!(
            "check the user and password from {source}, and that this account may push there"
        ),
        (source, false) => format!("check the user and password from {source}"),
    }
}

/// A transport failure: the `reqwest` (the client's HTTP stack, not a
/// dependency of pgoci's own) or I/O error under a request.
pub type Transport = Box<dyn std::error::Error + Send + Sync>;

/// A failure talking to a registry, or in what it sent. `url` is the
/// registry's base URL (`scheme://host/v2/`), `what` what was asked of it
/// (`blob sha256:… of reg/pgoci/postgresql:17`), `creds` where the
/// credentials came from (never the secret).
///
/// `oci-client`'s own error is never kept as a source: its `Display`
/// prints a registry's or token service's response body whole
/// (`ServerError`, `AuthenticationFailure`, `RegistryError`'s envelope,
/// `GenericError`), which may be long, hostile or echo a credential. What
/// is kept instead is the typed status and, at most, the first OCI error
/// code and message, cut short ([`RegistryError::said`] fields); the
/// sources kept are the transport's (`reqwest`, I/O) and the digest
/// check's, whose text names no body.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// 401, or a refused basic login: credentials missing or wrong.
    #[error("401 unauthorized at {url} for {what} ({})", credentials_note(creds))]
    Unauthorized {
        url: String,
        what: String,
        creds: Source,
        push: bool,
    },
    /// 403: the credentials were taken but may not do this.
    #[error("403 denied at {url} for {what} ({})", credentials_note(creds))]
    Denied {
        url: String,
        what: String,
        creds: Source,
        push: bool,
    },
    /// The token service would not give a token for `scope` (e.g. `pull
    /// of pgoci/postgresql`).
    #[error(
        "registry {url} refused a token for {scope} ({})",
        credentials_note(creds)
    )]
    TokenRefused {
        url: String,
        scope: String,
        creds: Source,
        push: bool,
    },
    /// The token service answered, but not with a token.
    #[error("the token service of {url} answered something that is not a token for {scope}")]
    NotAToken { url: String, scope: String },
    /// 429: asked too often; later may work.
    #[error("registry {url} answered 429 for {what}")]
    Throttled { url: String, what: String },
    /// 5xx: the registry failed; later may work.
    #[error("registry {url} answered {status} for {what}")]
    Unavailable {
        url: String,
        what: String,
        status: u16,
    },
    /// The registry says the thing asked for does not exist.
    #[error("{what} not found at {url}")]
    NotFound { url: String, what: String },
    /// TLS failed on the server's certificate.
    #[error("TLS to {url} failed: {}", error_chain(source.as_ref()))]
    Tls { url: String, source: Transport },
    /// No connection (refused, no route, timed out).
    #[error("registry {url} unreachable: {}", error_chain(source.as_ref()))]
    Unreachable { url: String, source: Transport },
    /// The connection broke during the request (a `reqwest` or I/O error).
    #[error("registry {url} failed for {what}: {}", error_chain(source.as_ref()))]
    Cut {
        url: String,
        what: String,
        source: Transport,
    },
    /// Another status, with the first OCI error of the body if it had one
    /// (`CODE: message`, cut short).
    #[error("registry {url} answered {status} for {what}{}", quoted(said))]
    Answered {
        url: String,
        what: String,
        status: u16,
        said: Option<String>,
    },
    /// An OCI error envelope other than a refusal or "unknown".
    #[error("registry {url} refused {what}{}", quoted(said))]
    Refused {
        url: String,
        what: String,
        said: Option<String>,
    },
    /// Bytes that do not match their digest, as the client checked them.
    #[error("{what} from {url} does not match its digest: {}", one_line(&source.to_string()))]
    DigestMismatch {
        url: String,
        what: String,
        source: DigestError,
    },
    /// The registry says what it was sent does not match its digest.
    #[error("registry {url} says {what} does not match its digest{}", quoted(said))]
    DigestInvalid {
        url: String,
        what: String,
        said: Option<String>,
    },
    /// Anything else the client could not make sense of: `detail` is its
    /// error on one line (no source: see the type's comment).
    #[error("registry {url} failed for {what}: {detail}")]
    Failed {
        url: String,
        what: String,
        detail: String,
    },
    /// A manifest larger than pgoci reads.
    #[error("manifest of {reference} is {size} bytes, more than the {limit}-byte limit")]
    ManifestTooLarge {
        reference: String,
        size: u64,
        limit: u64,
    },
    /// A manifest whose bytes do not hash to the digest it was served as.
    #[error("manifest of {reference} does not match its digest {digest}")]
    ManifestDigest { reference: String, digest: Digest },
    /// A small blob longer than it may be.
    #[error("blob {digest} of {reference} is longer than {max} bytes")]
    BlobTooLong {
        reference: String,
        digest: Digest,
        max: u64,
    },
    /// A small blob whose bytes do not hash to its digest.
    #[error("blob {digest} of {reference} does not match its digest")]
    BlobDigest { reference: String, digest: Digest },
    /// A small blob's stream broke.
    #[error("reading blob {digest} of {reference}: {source}")]
    BlobRead {
        reference: String,
        digest: Digest,
        source: std::io::Error,
    },
    /// Not an image reference.
    #[error("`{reference}` is not a valid image reference: {source}")]
    BadReference {
        reference: String,
        source: oci_client::ParseError,
    },
    /// A registry to push to (`--to`) that is not `host[:port][/namespace]`.
    #[error("--to `{target}` is not REGISTRY[/NAMESPACE]")]
    BadTarget { target: String },
    /// A media type that cannot be sent as a `Content-Type`.
    #[error("media type `{media_type}` is not a valid header")]
    BadMediaType { media_type: String },
    /// `--ca-file` cannot be read.
    #[error("cannot read --ca-file {}: {source}", path.display())]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The temporary CA file the client is built with cannot be written.
    #[error("cannot write a temporary CA file: {source}")]
    TempCaFile { source: std::io::Error },
    /// The HTTP client cannot be built (it makes no request: no body can
    /// be in this error).
    #[error("cannot set up the registry client: {}", error_chain(source))]
    ClientSetup { source: OciDistributionError },
}

impl Classify for RegistryError {
    fn kind(&self) -> Kind {
        use RegistryError::*;
        match self {
            // Bytes that do not match their digest, or a document that
            // breaks a limit, are an integrity failure (exit 5), wherever
            // they came from.
            DigestMismatch { .. }
            | DigestInvalid { .. }
            | ManifestTooLarge { .. }
            | ManifestDigest { .. }
            | BlobTooLong { .. }
            | BlobDigest { .. }
            | BadMediaType { .. } => Kind::Integrity,
            BadReference { .. } => Kind::Resolve,
            CaFile { .. } | BadTarget { .. } => Kind::Usage,
            TempCaFile { .. } | ClientSetup { .. } => Kind::Host,
            _ => Kind::Registry,
        }
    }

    fn hint(&self) -> Option<String> {
        use RegistryError::*;
        match self {
            Unauthorized { creds, push, .. }
            | Denied { creds, push, .. }
            | TokenRefused { creds, push, .. } => Some(refusal_hint(creds, *push)),
            Tls { .. } => Some(
                "pass --ca-file with the PEM of the CA that signed the registry's certificate"
                    .into(),
            ),
            Unreachable { .. } => {
                Some("check the address, or use a bundle for offline installs".into())
            }
            ClientSetup { .. } => {
                Some("install the ca-certificates package, or pass --ca-file".into())
            }
            BadTarget { .. } => Some("for example --to registry.example:5000/postgres".into()),
            _ => None,
        }
    }

    fn transient(&self) -> bool {
        use RegistryError::*;
        matches!(
            self,
            Throttled { .. }
                | Unavailable { .. }
                | Unreachable { .. }
                | Cut { .. }
                | BlobRead { .. }
        )
    }
}

/// The token service (the registry's `WWW-Authenticate: Bearer realm`)
/// would not give a token for `scope` (e.g. `pull of pgoci/postgresql`).
pub fn token_refused(
    err: OciDistributionError,
    url: &str,
    scope: &str,
    source: &Source,
    push: bool,
) -> RegistryError {
    match err {
        OciDistributionError::AuthenticationFailure(_) => RegistryError::TokenRefused {
            url: url.into(),
            scope: scope.into(),
            creds: source.clone(),
            push,
        },
        OciDistributionError::RegistryTokenDecodeError(_) => RegistryError::NotAToken {
            url: url.into(),
            scope: scope.into(),
        },
        other => map(other, url, scope, source, push),
    }
}

/// Maps a failed request for `what` at the registry `url` (`scheme://host/v2/`).
pub fn map(
    err: OciDistributionError,
    url: &str,
    what: &str,
    source: &Source,
    push: bool,
) -> RegistryError {
    use RegistryError as R;
    let (url, what) = (url.to_string(), what.to_string());
    let refusal = |status| {
        let creds = source.clone();
        if status == 403 {
            R::Denied {
                url: url.clone(),
                what: what.clone(),
                creds,
                push,
            }
        } else {
            R::Unauthorized {
                url: url.clone(),
                what: what.clone(),
                creds,
                push,
            }
        }
    };
    match status_of(&err) {
        Some(code @ (401 | 403)) => return refusal(code),
        Some(429) => return R::Throttled { url, what },
        Some(status) if status >= 500 => return R::Unavailable { url, what, status },
        _ => {}
    }
    match err {
        OciDistributionError::ImageManifestNotFoundError(_)
        | OciDistributionError::ServerError { code: 404, .. } => R::NotFound { url, what },
        OciDistributionError::RegistryError { envelope, .. }
            if has_code(&envelope, &OciErrorCode::ManifestUnknown)
                || has_code(&envelope, &OciErrorCode::NameUnknown)
                || has_code(&envelope, &OciErrorCode::BlobUnknown) =>
        {
            R::NotFound { url, what }
        }
        OciDistributionError::RequestError(e) if error_chain(&e).contains("certificate") => {
            R::Tls {
                url,
                source: Box::new(e),
            }
        }
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            R::Unreachable {
                url,
                source: Box::new(e),
            }
        }
        OciDistributionError::RequestError(e) => R::Cut {
            url,
            what,
            source: Box::new(e),
        },
        OciDistributionError::IoError(e) => R::Cut {
            url,
            what,
            source: Box::new(e),
        },
        OciDistributionError::ServerError { code, message, .. } => R::Answered {
            url,
            what,
            status: code,
            said: said_in_body(&message),
        },
        // Bytes that do not match their digest are an integrity failure
        // (exit 5), wherever they came from.
        OciDistributionError::RegistryError { envelope, .. }
            if has_code(&envelope, &OciErrorCode::DigestInvalid) =>
        {
            R::DigestInvalid {
                url,
                what,
                said: said_in_envelope(&envelope),
            }
        }
        OciDistributionError::RegistryError { envelope, .. } => R::Refused {
            url,
            what,
            said: said_in_envelope(&envelope),
        },
        OciDistributionError::AuthenticationFailure(_) => refusal(401),
        OciDistributionError::DigestError(source) => R::DigestMismatch { url, what, source },
        other => R::Failed {
            detail: one_line(&error_chain(&other)),
            url,
            what,
        },
    }
}

/// `CODE: message` of a registry's JSON error body, or its first line
/// when it is plain text; nothing for an empty or HTML body.
fn said_in_body(body: &str) -> Option<String> {
    if let Ok(envelope) = serde_json::from_str::<OciEnvelope>(body) {
        return said_in_envelope(&envelope);
    }
    let first = body.lines().map(str::trim).find(|l| !l.is_empty());
    match first {
        Some(line) if !line.starts_with('<') && !line.starts_with('{') => Some(cut(line)),
        _ => None,
    }
}

/// `CODE: message` of the first error of an envelope, cut short.
fn said_in_envelope(envelope: &OciEnvelope) -> Option<String> {
    envelope.errors.first().map(|e| {
        let code = serde_json::to_value(&e.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        format!("{code}: {}", cut(&one_line(&e.message)))
    })
}

/// `: <what the registry said>`, or nothing.
fn quoted(said: &Option<String>) -> String {
    said.as_ref().map(|s| format!(": {s}")).unwrap_or_default()
}

fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_QUOTE {
        return text.to_string();
    }
    let mut short: String = text.chars().take(MAX_QUOTE).collect();
    short.push('…');
    short
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An error with its causes, on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
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
    one_line(&text)
}

#[cfg(test)]
mod tests;
