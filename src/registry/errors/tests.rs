use super::*;
use crate::error::Error;

const URL: &str = "http://127.0.0.1:5000/v2/";

#[test]
fn a_refused_push_is_one_line_without_the_body() {
    let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository","Class":"","Name":"site/pgoci/pg_cron","Action":"push"}]}]}"#;
    let err = OciDistributionError::ServerError {
        code: 401,
        url: format!("{URL}site/pgoci/pg_cron/blobs/uploads/"),
        message: body.to_string(),
    };
    let e = Error::from(map(err, URL, "push to x", &Source::Anonymous, true));
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
    let e = Error::from(map(err, URL, "push to x", &Source::Flag, true));
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
    let e = Error::from(map(err, URL, "x", &Source::Flag, false));
    assert!(e.message.ends_with("answered 400 for x"), "{}", e.message);
    let long = "y".repeat(1000);
    let err = OciDistributionError::ServerError {
        code: 418,
        url: URL.into(),
        message: long,
    };
    assert!(map(err, URL, "x", &Source::Flag, false).to_string().len() < 300);
}

#[test]
fn a_token_refusal_names_the_source_never_the_body() {
    let err = OciDistributionError::AuthenticationFailure(
        r#"{"details":"incorrect username or password"}"#.into(),
    );
    let e = Error::from(token_refused(
        err,
        URL,
        "pull of pgoci/postgresql",
        &Source::Env,
        false,
    ));
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
    let e = Error::from(map(err, URL, "blob x", &Source::Anonymous, false));
    assert_eq!(e.kind, crate::Kind::Integrity, "{}", e.message);
}

#[test]
fn a_401_without_credentials_is_the_refusal_variant_with_its_hint() {
    let err = OciDistributionError::UnauthorizedError { url: URL.into() };
    let e = Error::from(map(err, URL, "blob x", &Source::Anonymous, false));
    assert_eq!(e.kind, crate::Kind::Registry);
    assert!(!e.transient);
    assert_eq!(
        e.message,
        format!("401 unauthorized at {URL} for blob x (no credentials: anonymous)")
    );
    assert!(e.hint.as_deref().unwrap().contains("--creds"));
    match e.typed::<RegistryError>() {
        Some(RegistryError::Unauthorized {
            url,
            what,
            creds: Source::Anonymous,
            push: false,
        }) => assert_eq!((url.as_str(), what.as_str()), (URL, "blob x")),
        other => panic!("{other:?}"),
    }
    // A 403 with credentials from a file names the file in its hint.
    let envelope: OciEnvelope =
        serde_json::from_str(r#"{"errors":[{"code":"DENIED","message":"no"}]}"#).unwrap();
    let err = OciDistributionError::RegistryError {
        envelope,
        url: URL.into(),
    };
    let file = Source::AuthFile("/root/auth.json".into());
    let e = Error::from(map(err, URL, "push of x", &file, true));
    assert!(matches!(
        e.typed::<RegistryError>(),
        Some(RegistryError::Denied { push: true, .. })
    ));
    assert_eq!(
            e.hint.as_deref(),
            Some("check the user and password from /root/auth.json, and that this account may push there")
        );
}

#[test]
fn a_503_and_a_429_are_transient_a_400_is_not() {
    let server = |code: u16| OciDistributionError::ServerError {
        code,
        url: URL.into(),
        message: "busy".into(),
    };
    let e = Error::from(map(server(503), URL, "x", &Source::Flag, false));
    assert!(e.transient);
    assert_eq!(e.kind, crate::Kind::Registry);
    assert_eq!(e.message, format!("registry {URL} answered 503 for x"));
    assert!(matches!(
        e.typed::<RegistryError>(),
        Some(RegistryError::Unavailable { status: 503, .. })
    ));
    let e = Error::from(map(server(429), URL, "x", &Source::Flag, false));
    assert!(e.transient);
    assert!(matches!(
        e.typed::<RegistryError>(),
        Some(RegistryError::Throttled { .. })
    ));
    let e = Error::from(map(server(400), URL, "x", &Source::Flag, false));
    assert!(!e.transient);
    assert_eq!(
        e.message,
        format!("registry {URL} answered 400 for x: busy")
    );
    match e.typed::<RegistryError>() {
        Some(RegistryError::Answered {
            status: 400, said, ..
        }) => assert_eq!(said.as_deref(), Some("busy")),
        other => panic!("{other:?}"),
    }
    // No body travels down the chain either.
    assert_eq!(e.causes().count(), 0);
}

#[test]
fn unknown_manifests_and_digest_errors_are_typed() {
    let envelope: OciEnvelope = serde_json::from_str(
        r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
    )
    .unwrap();
    let err = OciDistributionError::RegistryError {
        envelope,
        url: URL.into(),
    };
    let e = Error::from(map(err, URL, "r/x:1", &Source::Anonymous, false));
    assert_eq!(e.message, format!("r/x:1 not found at {URL}"));
    assert!(matches!(
        e.typed::<RegistryError>(),
        Some(RegistryError::NotFound { .. })
    ));
    let err =
        OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
            expected: "sha256:aa".into(),
            actual: "sha256:bb".into(),
        });
    let e = Error::from(map(err, URL, "blob x", &Source::Anonymous, false));
    assert!(matches!(
        e.typed::<RegistryError>(),
        Some(RegistryError::DigestMismatch { .. })
    ));
    // The digest check's own error is the first cause.
    assert_eq!(e.causes().count(), 1);
}

#[test]
fn a_refused_token_is_typed_and_keeps_no_body() {
    let err = OciDistributionError::AuthenticationFailure("the secret body".into());
    let e = Error::from(token_refused(
        err,
        URL,
        "pull of x",
        &Source::Anonymous,
        false,
    ));
    assert!(matches!(
        e.typed::<RegistryError>(),
        Some(RegistryError::TokenRefused { .. })
    ));
    assert!(e.hint.as_deref().unwrap().contains("--creds"));
    assert!(!format!("{e:?}").contains("secret body"));
    let err = OciDistributionError::RegistryTokenDecodeError("<html>".into());
    let e = Error::from(token_refused(
        err,
        URL,
        "pull of x",
        &Source::Anonymous,
        false,
    ));
    assert!(matches!(
        e.typed::<RegistryError>(),
        Some(RegistryError::NotAToken { .. })
    ));
    assert_eq!(e.causes().count(), 0);
}
