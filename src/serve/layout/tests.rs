use super::*;

/// A layout directory of `index.json` listing `manifest` (named
/// `reg.example/a/b:1`), with the blobs given.
fn layout_with(dir: &Path, manifest: &[u8], blobs: &[&[u8]]) -> Digest {
    let sha = dir.join("blobs/sha256");
    std::fs::create_dir_all(&sha).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for b in blobs {
        std::fs::write(sha.join(Digest::of_bytes(b).hex()), b).unwrap();
    }
    let digest = Digest::of_bytes(manifest);
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{digest}","size":{},"annotations":{{"{REF_NAME}":"reg.example/a/b:1"}}}}]}}"#,
        crate::registry::OCI_MANIFEST,
        manifest.len()
    );
    std::fs::write(dir.join("index.json"), index).unwrap();
    digest
}

fn layout_error(err: &Error) -> &LayoutError {
    err.typed::<LayoutError>()
        .unwrap_or_else(|| panic!("not a layout error: {}", err.message))
}

#[test]
fn a_layout_is_served_or_refused_naming_what_is_wrong() {
    let config = br#"{"architecture":"amd64"}"#;
    let manifest_of = |layer_digest: &str| {
        format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":1}}]}}"#,
            Digest::of_bytes(config),
            config.len()
        )
    };
    let dir = tempfile::tempdir().unwrap();

    let good = dir.path().join("good");
    let manifest = manifest_of(&Digest::of_bytes(b"l").to_string());
    let digest = layout_with(
        &good,
        manifest.as_bytes(),
        &[manifest.as_bytes(), config, b"l"],
    );
    let layout = Layout::open(&good).unwrap();
    let repo = layout.repo(&RepositoryName::parse("a/b").unwrap()).unwrap();
    assert_eq!(repo.tags.values().collect::<Vec<_>>(), [&digest]);
    assert_eq!(layout.counts().blobs, 2);

    // A manifest listing a layer by another algorithm's digest.
    let other = format!("sha512:{}", "a".repeat(128));
    let odd = dir.path().join("odd");
    let manifest = manifest_of(&other);
    layout_with(&odd, manifest.as_bytes(), &[manifest.as_bytes(), config]);
    let err = Layout::open(&odd).err().unwrap();
    assert!(matches!(
        layout_error(&err),
        LayoutError::ManifestDigest { .. }
    ));
    assert_eq!(err.kind, crate::Kind::Integrity);
    assert!(err.message.contains("only sha256"), "{}", err.message);
    assert_eq!(
        err.hint.as_deref(),
        Some("check it with `pgoci bundle verify`, or export it again")
    );

    // index.json names a manifest the layout does not hold.
    let empty = dir.path().join("empty");
    let digest = layout_with(&empty, manifest.as_bytes(), &[]);
    let err = Layout::open(&empty).err().unwrap();
    assert!(matches!(
        layout_error(&err),
        LayoutError::Unheld { digest: d, .. } if *d == digest
    ));

    // Nothing there: a usage error, with what to pass.
    let err = Layout::open(&dir.path().join("nothing")).err().unwrap();
    assert!(matches!(layout_error(&err), LayoutError::Missing { .. }));
    assert_eq!(err.kind, crate::Kind::Usage);
    assert_eq!(
        err.hint.as_deref(),
        Some("pass a bundle directory or .tar (an OCI image layout)")
    );
}

#[test]
fn references_become_repository_paths() {
    let at = |name: &str| published_at(&BTreeMap::from([(REF_NAME.to_string(), name.to_string())]));
    assert_eq!(
        at("127.0.0.1:5000/pgoci/postgresql:17"),
        Some(("pgoci/postgresql".into(), Some("17".into())))
    );
    assert_eq!(
        at("ghcr.io/cloudnative-pg/postgresql:18-minimal-trixie"),
        Some((
            "cloudnative-pg/postgresql".into(),
            Some("18-minimal-trixie".into())
        ))
    );
    assert_eq!(
        at("docker.io/postgres:17"),
        Some(("library/postgres".into(), Some("17".into())))
    );
    assert_eq!(at("localhost/a/b@sha256:00"), Some(("a/b".into(), None)));
    assert_eq!(at("pgoci/x:1"), Some(("pgoci/x".into(), Some("1".into()))));
    // Short names (oras's) name no repository.
    assert_eq!(at("postgresql-17"), None);
    let by_repo = published_at(&BTreeMap::from([(
        REPOSITORY.to_string(),
        "127.0.0.1:5000/pgoci/pg_cron".to_string(),
    )]));
    assert_eq!(by_repo, Some(("pgoci/pg_cron".into(), None)));
}
