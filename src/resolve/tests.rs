use super::*;

const PROFILE: &str = r#"
name: t
platforms: [linux/amd64]
server:
  majors: [15, 17]
  image: "r/pg:{major}"
  layout: tree
extensions:
  pg_cron:
    image: "r/pg_cron:{version}-{major}"
    versions: ["1.6.4", "1.4.2"]
    majors: [15, 17]
  pg_crondor:
    image: "r/pg_crondor:{version}-{major}"
    versions: ["1"]
    majors: [17]
  postgis:
    image: "r/postgis:{version}-{major}"
    versions: ["3.5"]
    majors: [17]
"#;

fn plan_of(major: u32, exts: &[&str]) -> Result<Plan> {
    let profile = Profile::parse(PROFILE, "t").unwrap();
    let exts: Vec<String> = exts.iter().map(|s| s.to_string()).collect();
    plan(
        &profile,
        major,
        &ExtRequest::parse_list(&exts),
        &"linux/amd64".parse().unwrap(),
    )
}

#[test]
fn an_unknown_extension_names_the_nearest() {
    let err = plan_of(17, &["pg_corn"]).err().unwrap();
    let Some(ResolveError::UnknownExtension {
        name,
        major,
        nearest,
    }) = err.typed::<ResolveError>()
    else {
        panic!("{err:?}");
    };
    assert_eq!((name.as_str(), *major), ("pg_corn", 17));
    assert!(nearest.iter().any(|n| n == "pg_cron"), "{nearest:?}");
    assert_eq!(err.kind.exit_code(), 3);
    assert_eq!(
        err.message,
        format!(
            "unknown extension `pg_corn` for PostgreSQL 17; nearest: {}",
            nearest.join(", ")
        )
    );
    assert_eq!(
        err.hint.as_deref(),
        Some("`pgoci catalog --major 17` lists them all")
    );
    // A major no extension is built for has no names to offer.
    let none = ResolveError::UnknownExtension {
        name: "x".into(),
        major: 16,
        nearest: vec![],
    };
    assert_eq!(
        none.to_string(),
        "unknown extension `x` for PostgreSQL 16; nearest: (none)"
    );
}

#[test]
fn what_the_profile_does_not_offer_is_named_with_what_it_does() {
    let err = plan_of(99, &[]).err().unwrap();
    assert!(
        matches!(
            err.typed::<ResolveError>(),
            Some(ResolveError::UnknownMajor { major: 99, offered, .. }) if offered == &[15, 17]
        ),
        "{err:?}"
    );
    assert_eq!(
        err.message,
        "major 99 is not in profile t; it offers: 15, 17"
    );
    assert_eq!(
        err.hint.as_deref(),
        Some("pass --major with one of those, or another --profile")
    );
    assert_eq!(err.kind.exit_code(), 3);

    let err = plan_of(15, &["postgis"]).err().unwrap();
    assert!(
        matches!(
            err.typed::<ResolveError>(),
            Some(ResolveError::NotBuiltFor { major: 15, .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.message,
        "extension postgis is not built for PostgreSQL 15; it is for: 17"
    );
    assert!(err.hint.is_none());

    let err = plan_of(17, &["pg_cron@9"]).err().unwrap();
    assert!(
        matches!(err.typed::<ResolveError>(), Some(ResolveError::UnknownVersion { version, .. }) if version == "9"),
        "{err:?}"
    );
    assert_eq!(
        err.message,
        "extension pg_cron has no version 9 for PostgreSQL 17; versions: 1.6.4, 1.4.2"
    );

    let profile = Profile::parse(PROFILE, "t").unwrap();
    let arm: Platform = "linux/arm64".parse().unwrap();
    let err = plan(&profile, 17, &[], &arm).err().unwrap();
    assert!(
        matches!(err.typed::<ResolveError>(), Some(ResolveError::PlatformNotInProfile { platform, .. }) if platform == &arm),
        "{err:?}"
    );
    assert_eq!(
        err.message,
        "platform linux/arm64 is not in profile t; it offers: linux/amd64"
    );
    assert_eq!(err.kind.exit_code(), 3);
}

#[test]
fn what_an_image_gets_wrong_is_an_integrity_or_resolve_failure() {
    let digest = Digest::of_bytes(b"config");
    let malformed = serde_json::from_slice::<ImageIndex>(br#"{"schemaVersion":2}"#)
        .err()
        .unwrap();
    let cases: Vec<(ResolveError, String, Kind)> = vec![
        (
            ResolveError::IndexMalformed {
                reference: "r/x:1".into(),
                source: malformed,
            },
            "image index of r/x:1 is malformed: missing field `manifests` at line 1 column 19"
                .into(),
            Kind::Integrity,
        ),
        (
            ResolveError::NestedIndex {
                reference: "r/x:1".into(),
            },
            "r/x:1: nested image indexes are not supported".into(),
            Kind::Resolve,
        ),
        (
            ResolveError::UnsupportedLayer {
                reference: "r/x:1".into(),
                media_type: "text/plain".into(),
            },
            "r/x:1 has a layer of unsupported media type text/plain".into(),
            Kind::Resolve,
        ),
        (
            ResolveError::ConfigTooLarge {
                digest: digest.clone(),
                size: 5 << 20,
            },
            format!("config {digest} is 5242880 bytes, more than a config can be"),
            Kind::Integrity,
        ),
        (
            ResolveError::ConfigUnreadable {
                digest: digest.clone(),
                source: std::io::Error::other("cut"),
            },
            format!("reading config {digest}: cut"),
            Kind::Registry,
        ),
        (
            ResolveError::ConfigDigest {
                digest: digest.clone(),
            },
            format!("config blob {digest} does not match its digest"),
            Kind::Integrity,
        ),
    ];
    for (err, message, kind) in cases {
        let err = crate::error::Error::from(err);
        assert_eq!(err.message, message);
        assert_eq!(err.kind, kind, "{message}");
        assert!(err.hint.is_none() && !err.transient, "{message}");
    }
}

#[test]
fn the_labels_of_a_config_are_read_as_oci_spec_reads_it() {
    // A Docker config as umoci and buildah write them: Go maps of empty
    // objects, nulls, history, keys oci-spec does not know.
    let config = br#"{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z",
        "config":{"Env":["PATH=/usr/bin"],"ExposedPorts":{"5432/tcp":{}},"Volumes":null,
        "Labels":{"org.opencontainers.image.version":"17.2","io.pgoci.pg.version":"17"},
        "ArgsEscaped":true,"Healthcheck":{"Test":["NONE"]}},
        "rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]},
        "history":[{"created_by":"x","empty_layer":true}],"container_config":{}}"#;
    let read = labels_of(config);
    assert_eq!(read["org.opencontainers.image.version"], "17.2");
    assert_eq!(read.len(), 2);
    // Without labels, or not a config (an artifact's empty `{}`): none.
    let bare = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    assert!(labels_of(bare).is_empty());
    assert!(labels_of(b"{}").is_empty());
    assert!(labels_of(b"not json").is_empty());
}

fn labels_of(config: &[u8]) -> BTreeMap<String, String> {
    labels(config)
}

#[test]
fn docker_schema_2_manifests_and_lists_read_as_oci_spec_documents() {
    let d = Digest::of_bytes(b"x");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{d}","size":1}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{d}","size":3}}]}}"#,
        crate::registry::DOCKER_MANIFEST
    );
    let doc: ImageManifest = serde_json::from_str(&manifest).unwrap();
    let layer = to_blob(&doc.layers()[0]).unwrap();
    assert_eq!(
        layer.media_type,
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    assert!(crate::unpack::Compression::from_media_type(&layer.media_type).is_some());
    assert_eq!((layer.digest, layer.size), (d.clone(), 3));
    assert_eq!(
        crate::registry::media_type_of(manifest.as_bytes()),
        crate::registry::DOCKER_MANIFEST
    );
    // A digest of another algorithm is refused as pgoci's own parser does.
    let other = manifest.replace(&d.to_string(), &format!("sha512:{}", "a".repeat(128)));
    let doc: ImageManifest = serde_json::from_str(&other).unwrap();
    let err = to_blob(doc.config()).unwrap_err();
    assert_eq!(err.kind, Kind::Integrity);
    assert!(err.message.contains("only sha256"), "{}", err.message);
}
