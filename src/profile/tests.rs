use super::*;

const SAMPLE: &str = r#"
name: t
platforms: [linux/amd64]
server:
  majors: [15, 17]
  image: {15: "r/pg-debian:15", 17: "r/pg:{major}"}
  layout: {15: rootfs, 17: tree}
  paths:
    15: {bin: "/usr/lib/postgresql/{major}/bin", lib: /usr/lib/postgresql/15/lib, share: /usr/share/postgresql/15}
extensions:
  pg_cron:
    image: "r/pg_cron:{version}-{major}"
    versions: ["1.4.2"]
    majors: [15]
    preload: pg_cron
    settings: {cron.database_name: postgres}
"#;

#[test]
fn parses_per_major_fields() {
    let p = Profile::parse(SAMPLE, "sample").unwrap();
    assert_eq!(p.server_layout(15), Layout::Rootfs);
    assert_eq!(p.server_layout(17), Layout::Tree);
    assert_eq!(
        p.server_paths(15).unwrap().bin,
        "/usr/lib/postgresql/15/bin"
    );
    assert_eq!(p.server.image.get(17).unwrap(), "r/pg:{major}");
    assert_eq!(p.extensions["pg_cron"].preload.as_deref(), Some("pg_cron"));
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let bad = SAMPLE.replace("preload: pg_cron", "preloads: pg_cron");
    let err = Profile::parse(&bad, "sample").unwrap_err();
    assert!(err.message.contains("preloads"), "{}", err.message);
    assert!(
        matches!(err.typed::<ProfileError>(), Some(ProfileError::Malformed { origin, .. }) if origin == "sample"),
        "{err:?}"
    );
    assert!(
        err.message.starts_with("profile sample is not valid: "),
        "{}",
        err.message
    );
    assert!(!err.message.contains('\n'), "{}", err.message);
    assert_eq!(err.kind.exit_code(), 3);
    assert_eq!(
        err.hint.as_deref(),
        Some("see docs/formats.md for the profile format")
    );
    // The parser's own error is kept below, for `-v`.
    assert_eq!(err.causes().count(), 1, "{err:?}");
}

#[test]
fn a_profile_that_is_nowhere_is_a_usage_error_listing_the_embedded_ones() {
    let root = tempfile::tempdir().unwrap();
    let err = Profile::load("nosuch", root.path()).unwrap_err();
    let Some(ProfileError::NotFound {
        name,
        embedded,
        looked_in,
    }) = err.typed::<ProfileError>()
    else {
        panic!("{err:?}");
    };
    assert_eq!(name, "nosuch");
    assert_eq!(embedded, &["cnpg-trixie", "cnpg-bookworm"]);
    assert_eq!(
        looked_in,
        &root.path().join("etc/pgoci/profiles/nosuch.yaml")
    );
    assert_eq!(err.kind.exit_code(), 2);
    assert_eq!(
        err.message,
        format!(
            "no profile named `nosuch` (embedded: cnpg-trixie, cnpg-bookworm; also looked in {})",
            looked_in.display()
        )
    );
    assert_eq!(
        err.hint.as_deref(),
        Some("pass --profile PATH to a profile YAML file")
    );
    // A path that cannot be read is a usage error too; one too large or
    // not UTF-8 is a bad profile (exit 3).
    let gone = root.path().join("gone.yaml");
    let err = Profile::load(gone.to_str().unwrap(), root.path()).unwrap_err();
    assert!(
        matches!(err.typed::<ProfileError>(), Some(ProfileError::Unreadable { path, .. }) if path == &gone),
        "{err:?}"
    );
    assert_eq!(err.kind.exit_code(), 2);
    let latin = root.path().join("latin.yaml");
    std::fs::write(&latin, b"name: caf\xe9\n").unwrap();
    let err = Profile::load(latin.to_str().unwrap(), root.path()).unwrap_err();
    assert!(
        matches!(
            err.typed::<ProfileError>(),
            Some(ProfileError::NotUtf8 { .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.message,
        format!("profile {} is not UTF-8", latin.display())
    );
    assert_eq!(err.kind.exit_code(), 3);
}

#[test]
fn a_requirement_of_no_extension_names_both() {
    let bad = SAMPLE.replace(
        "preload: pg_cron",
        "preload: pg_cron\n    requires: [pg_partman]",
    );
    let err = Profile::parse(&bad, "sample").unwrap_err();
    let Some(ProfileError::UnknownRequirement {
        origin,
        extension,
        requires,
    }) = err.typed::<ProfileError>()
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        (origin.as_str(), extension.as_str(), requires.as_str()),
        ("sample", "pg_cron", "pg_partman")
    );
    assert_eq!(
        err.message,
        "profile sample: extension pg_cron requires unknown extension pg_partman"
    );
    assert_eq!(err.kind.exit_code(), 3);
    assert!(err.hint.is_none());
}

#[test]
fn embedded_profiles_parse() {
    for (name, text) in EMBEDDED {
        Profile::parse(text, name).unwrap();
    }
}

#[test]
fn reads_a_cloudnativepg_image_catalog() {
    let catalog = r#"
apiVersion: postgresql.cnpg.io/v1
kind: ClusterImageCatalog
metadata:
  name: postgresql-minimal-trixie
spec:
  images:
    - major: 17
      image: ghcr.io/cloudnative-pg/postgresql:17.6-minimal-trixie@sha256:aaaa
      extensions:
        - name: postgis
          image:
            reference: ghcr.io/cloudnative-pg/postgis-extension:3.5.4-17-trixie
          ld_library_path: [system, lib17]
          env:
            - name: PROJ_DATA
              value: ${image_root}/share/proj17
    - major: 18
      image: ghcr.io/cloudnative-pg/postgresql:18.1-minimal-trixie
      extensions:
        - name: postgis
          image:
            reference: ghcr.io/cloudnative-pg/postgis-extension:3.6.1-18-trixie
          ld_library_path: [system]
          env:
            - name: PROJ_DATA
              value: ${image_root}/share/proj
"#;
    let p = Profile::parse(catalog, "catalog").unwrap();
    assert_eq!(p.name, "postgresql-minimal-trixie");
    assert_eq!(p.server.majors, vec![17, 18]);
    assert_eq!(p.server_layout(18), Layout::Rootfs);
    assert_eq!(
        p.server_paths(18).unwrap().share,
        "/usr/share/postgresql/18"
    );
    // Each major keeps its own version, library path and environment.
    let postgis = &p.extensions["postgis"];
    assert_eq!(postgis.majors, vec![17, 18]);
    assert_eq!(postgis.versions(18), ["3.6.1"]);
    assert_eq!(postgis.versions(17), ["3.5.4"]);
    let paths = |m| -> Vec<String> {
        let paths = postgis.ld_library_path(m);
        paths.iter().map(|p| p.as_str().to_string()).collect()
    };
    assert_eq!(paths(18), ["system"]);
    assert_eq!(paths(17), ["system", "lib17"]);
    assert_eq!(postgis.env(18)["PROJ_DATA"], "${image_root}/share/proj");
    assert_eq!(postgis.env(17)["PROJ_DATA"], "${image_root}/share/proj17");
    assert!(postgis.image.get(17).unwrap().contains("3.5.4-17"));
}

#[test]
fn versions_and_paths_may_be_given_per_major() {
    let text = SAMPLE
        .replace(
            "majors: [15]
    preload",
            "majors: [15, 17]
    preload",
        )
        .replace(
            r#"versions: ["1.4.2"]"#,
            r#"versions: {15: ["1.4.2"], 17: ["1.6.4", "1.6.2"]}
    ld_library_path: {17: [system]}"#,
        );
    let p = Profile::parse(&text, "sample").unwrap();
    let cron = &p.extensions["pg_cron"];
    assert_eq!(cron.versions(15), ["1.4.2"]);
    assert_eq!(cron.versions(17), ["1.6.4", "1.6.2"]);
    assert!(cron.ld_library_path(15).is_empty());
    assert_eq!(cron.ld_library_path(17)[0].as_str(), "system");
    // A major the extension is built for needs a version.
    let missing = text.replace(r#"15: ["1.4.2"], "#, "");
    let err = Profile::parse(&missing, "sample").unwrap_err();
    assert!(
        err.message.contains("no versions for major 15"),
        "{}",
        err.message
    );
    assert!(
        matches!(
            err.typed::<ProfileError>(),
            Some(ProfileError::NoVersions { major: 15, extension, .. }) if extension.as_str() == "pg_cron"
        ),
        "{err:?}"
    );
}

/// Each hostile edit of a good profile is refused with exit 3, naming the field.
#[test]
fn hostile_fields_are_refused_naming_them() {
    let cases = [
        ("  pg_cron:\n", "  ../../x:\n", "extension name"),
        (
            "settings: {cron.database_name: postgres}",
            "settings: {\"a\\narchive_command\": x}",
            "settings key",
        ),
        (
            "settings: {cron.database_name: postgres}",
            "settings: {cron.database_name: \"a'\\nb\"}",
            "settings.cron.database_name",
        ),
        (
            "settings: {cron.database_name: postgres}",
            "env: {\"A\\\"\\nUser=root\": x}",
            "environment variable name",
        ),
        (
            "settings: {cron.database_name: postgres}",
            "ld_library_path: [\"../..\"]",
            "image path",
        ),
        (
            "lib: /usr/lib/postgresql/15/lib",
            "lib: /usr/lib/../../../etc",
            "image path",
        ),
        ("preload: pg_cron", "preload: \"a,b\"", "preload library"),
    ];
    for (from, to, names) in cases {
        assert!(SAMPLE.contains(from), "{from}");
        let bad = SAMPLE.replacen(from, to, 1);
        let err = Profile::parse(&bad, "t").unwrap_err();
        assert_eq!(err.kind.exit_code(), 3, "{to}: {}", err.message);
        assert!(err.message.contains(names), "{to}: {}", err.message);
    }
}

#[test]
fn specs_parse_in_both_forms() {
    let key: SignatureSpec = serde_saphyr::from_str("key: keys/cosign.pub").unwrap();
    assert_eq!(key, SignatureSpec::Key("keys/cosign.pub".into()));
    let keyless: SignatureSpec = serde_saphyr::from_str(
        "keyless: {issuer: https://i.example, subject: me@example.org, trusted_root: r.json}",
    )
    .unwrap();
    assert!(
        matches!(keyless, SignatureSpec::Keyless(k) if k.subject.as_deref() == Some("me@example.org"))
    );
    assert!(serde_saphyr::from_str::<SignatureSpec>("kee: x").is_err());
    assert!(serde_saphyr::from_str::<SignatureSpec>("keyless: {issuer: i}").is_err());
}
