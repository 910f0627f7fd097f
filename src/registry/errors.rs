//! `oci-client` errors as pgoci registry errors: one line naming the
//! registry URL, what was asked for and, for refusals, where the
//! credentials came from (never the secret). A registry's or token
//! service's response body is never shown raw: at most the code and
//! message of its first OCI error, cut short.

use super::auth::Source;
use crate::error::Error;
use oci_client::errors::{OciDistributionError, OciEnvelope, OciErrorCode};

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

/// The token service (the registry's `WWW-Authenticate: Bearer realm`)
/// would not give a token for `scope` (e.g. `pull of pgoci/postgresql`).
pub fn token_refused(
    err: OciDistributionError,
    url: &str,
    scope: &str,
    source: &Source,
    push: bool,
) -> Error {
    match err {
        OciDistributionError::AuthenticationFailure(_) => Error::registry(format!(
            "registry {url} refused a token for {scope} ({})",
            credentials_note(source)
        ))
        .hint(refusal_hint(source, push)),
        OciDistributionError::RegistryTokenDecodeError(_) => Error::registry(format!(
            "the token service of {url} answered something that is not a token for {scope}"
        )),
        other => map(other, url, scope, source, push),
    }
}

/// Maps a failed request for `what` at the registry `url` (`scheme://host/v2/`).
pub fn map(err: OciDistributionError, url: &str, what: &str, source: &Source, push: bool) -> Error {
    let note = credentials_note(source);
    match status_of(&err) {
        Some(401) => {
            return Error::registry(format!("401 unauthorized at {url} for {what} ({note})"))
                .hint(refusal_hint(source, push))
        }
        Some(403) => {
            return Error::registry(format!("403 denied at {url} for {what} ({note})"))
                .hint(refusal_hint(source, push))
        }
        Some(429) => {
            return Error::registry(format!("registry {url} answered 429 for {what}")).transient()
        }
        Some(code) if code >= 500 => {
            return Error::registry(format!("registry {url} answered {code} for {what}"))
                .transient()
        }
        _ => {}
    }
    match &err {
        OciDistributionError::ImageManifestNotFoundError(_) => {
            Error::registry(format!("{what} not found at {url}"))
        }
        OciDistributionError::RegistryError { envelope, .. }
            if has_code(envelope, &OciErrorCode::ManifestUnknown)
                || has_code(envelope, &OciErrorCode::NameUnknown)
                || has_code(envelope, &OciErrorCode::BlobUnknown) =>
        {
            Error::registry(format!("{what} not found at {url}"))
        }
        OciDistributionError::ServerError { code: 404, .. } => {
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
        OciDistributionError::ServerError { code, message, .. } => Error::registry(format!(
            "registry {url} answered {code} for {what}{}",
            quote_body(message)
        )),
        OciDistributionError::RegistryError { envelope, .. }
            if !has_code(envelope, &OciErrorCode::DigestInvalid) =>
        {
            Error::registry(format!(
                "registry {url} refused {what}{}",
                quote_envelope(envelope)
            ))
        }
        OciDistributionError::AuthenticationFailure(_) => {
            Error::registry(format!("401 unauthorized at {url} for {what} ({note})"))
                .hint(refusal_hint(source, push))
        }
        // Bytes that do not match their digest are an integrity failure
        // (exit 5), wherever they came from.
        OciDistributionError::DigestError(e) => Error::integrity(format!(
            "{what} from {url} does not match its digest: {}",
            one_line(&e.to_string())
        )),
        OciDistributionError::RegistryError { envelope, .. }
            if has_code(envelope, &OciErrorCode::DigestInvalid) =>
        {
            Error::integrity(format!(
                "registry {url} says {what} does not match its digest{}",
                quote_envelope(envelope)
            ))
        }
        _ => Error::registry(format!(
            "registry {url} failed for {what}: {}",
            one_line(&error_chain(&err))
        )),
    }
}

/// `: CODE: message` of a registry's JSON error body, or of its first line
/// when it is plain text; nothing for an empty or HTML body.
fn quote_body(body: &str) -> String {
    if let Ok(envelope) = serde_json::from_str::<OciEnvelope>(body) {
        return quote_envelope(&envelope);
    }
    let first = body.lines().map(str::trim).find(|l| !l.is_empty());
    match first {
        Some(line) if !line.starts_with('<') && !line.starts_with('{') => {
            format!(": {}", cut(line))
        }
        _ => String::new(),
    }
}

fn quote_envelope(envelope: &OciEnvelope) -> String {
    match envelope.errors.first() {
        Some(e) => {
            let code = serde_json::to_value(&e.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!(": {code}: {}", cut(&one_line(&e.message)))
        }
        None => String::new(),
    }
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
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:5000/v2/";

    #[test]
    fn a_refused_push_is_one_line_without_the_body() {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository","Class":"","Name":"site/pgoci/pg_cron","Action":"push"}]}]}"#;
        let err = OciDistributionError::ServerError {
            code: 401,
            url: format!("{URL}site/pgoci/pg_cron/blobs/uploads/"),
            message: body.to_string(),
        };
        let e = map(err, URL, "push to x", &Source::Anonymous, true);
        assert_eq!(e.kind, crate::error::Kind::Registry);
        assert!(
            !e.message.contains('{') && !e.message.contains('\n'),
            "{}",
            e.message
        );
        assert!(e.message.contains("no credentials"), "{}", e.message);
        assert!(e.hint.unwrap().contains("--creds"));
    }

    #[test]
    fn other_bodies_are_quoted_short() {
        let err = OciDistributionError::ServerError {
            code: 400,
            url: URL.into(),
            message: r#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":{"x":1}}]}"#.into(),
        };
        let e = map(err, URL, "push to x", &Source::Flag, true);
        assert!(
            e.message
                .ends_with("answered 400 for push to x: MANIFEST_INVALID: manifest invalid"),
            "{}",
            e.message
        );
        let err = OciDistributionError::ServerError {
            code: 400,
            url: URL.into(),
            message: "<html><body>bad</body></html>".into(),
        };
        let e = map(err, URL, "x", &Source::Flag, false);
        assert!(e.message.ends_with("answered 400 for x"), "{}", e.message);
        let long = "y".repeat(1000);
        let err = OciDistributionError::ServerError {
            code: 418,
            url: URL.into(),
            message: long,
        };
        assert!(map(err, URL, "x", &Source::Flag, false).message.len() < 300);
    }

    #[test]
    fn a_token_refusal_names_the_source_never_the_body() {
        let err = OciDistributionError::AuthenticationFailure(
            r#"{"details":"incorrect username or password"}"#.into(),
        );
        let e = token_refused(err, URL, "pull of pgoci/postgresql", &Source::Env, false);
        assert_eq!(
            e.message,
            format!(
                "registry {URL} refused a token for pull of pgoci/postgresql (credentials from PGOCI_REGISTRY_USER/PGOCI_REGISTRY_PASSWORD)"
            )
        );
    }

    #[test]
    fn status_codes_are_read_from_every_shape() {
        let unauthorized = OciDistributionError::UnauthorizedError { url: URL.into() };
        assert!(is_unauthorized(&unauthorized));
        let envelope: OciEnvelope =
            serde_json::from_str(r#"{"errors":[{"code":"DENIED","message":"no"}]}"#).unwrap();
        let denied = OciDistributionError::RegistryError {
            envelope,
            url: URL.into(),
        };
        assert_eq!(status_of(&denied), Some(403));
        assert!(!is_unauthorized(&denied));
    }

    #[test]
    fn digest_mismatches_are_integrity_errors() {
        let err =
            OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
                expected: "sha256:aa".into(),
                actual: "sha256:bb".into(),
            });
        let e = map(err, URL, "blob x", &Source::Anonymous, false);
        assert_eq!(e.kind, crate::Kind::Integrity, "{}", e.message);
    }
}
