use super::*;

#[test]
fn what_an_artifact_is_comes_from_its_own_words_first() {
    let d = |b: &[u8]| Digest::of_bytes(b).to_string();
    let oras = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "artifactType":"application/spdx+json",
            "config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},
            "layers":[{{"mediaType":"application/spdx+json","digest":"{}","size":5}}],
            "subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":9}}}}"#,
        d(b"{}"),
        d(b"sbom!"),
        d(b"subject")
    );
    let p = parse(oras.as_bytes(), "t").unwrap();
    assert_eq!(p.artifact_type.as_deref(), Some("application/spdx+json"));
    assert_eq!(p.blobs.len(), 2);
    assert_eq!(p.subject, Some(Digest::of_bytes(b"subject")));
    // cosign's tag-scheme manifests say it by their layers.
    let cosign = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},
            "layers":[{{"mediaType":"application/vnd.dsse.envelope.v1+json","digest":"{}","size":3}}]}}"#,
        d(b"{}"),
        d(b"att")
    );
    let p = parse(cosign.as_bytes(), "t").unwrap();
    assert_eq!(
        p.artifact_type.as_deref(),
        Some("application/vnd.dsse.envelope.v1+json")
    );
    assert!(p.subject.is_none());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":1}}]}}"#,
        d(b"m")
    );
    let p = parse(index.as_bytes(), "t").unwrap();
    assert_eq!(p.manifests.len(), 1);
    assert!(p.blobs.is_empty());
    // oci-spec reads a digest of any algorithm; pgoci takes sha256 only.
    let md5 = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},
            "layers":[{{"mediaType":"x","digest":"md5:1","size":1}}]}}"#,
        d(b"{}")
    );
    let err = parse(md5.as_bytes(), "m").err().unwrap();
    assert_eq!(err.kind, crate::Kind::Integrity);
    assert_eq!(err.message, "m names `md5:1`, not a sha256 digest");
    assert!(matches!(
        err.typed::<CompanionError>(),
        Some(CompanionError::NotSha256 { digest, .. }) if digest == "md5:1"
    ));
    // Bytes that are no manifest say so.
    let err = parse(br#"{"layers":[]}"#, "m").err().unwrap();
    assert_eq!(err.kind, crate::Kind::Integrity);
    assert!(
        err.message.starts_with("m is not a manifest: "),
        "{}",
        err.message
    );
    assert!(matches!(
        err.typed::<CompanionError>(),
        Some(CompanionError::NotAManifest { .. })
    ));
}

#[test]
fn a_companion_is_published_by_tag_or_by_digest() {
    let c = Companion {
        repository: "reg.example/pgoci/pg_cron".into(),
        tag: Some("sha256-abc.att".into()),
        role: Role::Referrer,
        subject: None,
        artifact_type: None,
        manifest: Blob {
            digest: Digest::of_bytes(b"m"),
            size: 1,
            media_type: crate::registry::OCI_INDEX.into(),
        },
        blobs: vec![],
    };
    assert_eq!(c.reference(), "reg.example/pgoci/pg_cron:sha256-abc.att");
    assert!(c.is_index());
    let untagged = Companion { tag: None, ..c };
    assert_eq!(
        untagged.reference(),
        format!("reg.example/pgoci/pg_cron@{}", Digest::of_bytes(b"m"))
    );
    for r in [Role::Index, Role::Manifest, Role::Referrer] {
        assert_eq!(Role::parse(r.as_str()), Some(r));
    }
}
