use super::*;

#[test]
fn repository_names_and_tags_follow_the_distribution_spec() {
    for good in [
        "pgoci/postgresql",
        "cloudnative-pg/postgresql",
        "library/postgres",
        "a",
        "a/b/c",
        "pg_cron",
        "a__b",
        "a--b",
        "a.b/c-d",
    ] {
        assert!(RepositoryName::parse(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "/",
        "a/",
        "/a",
        "a//b",
        "..",
        "../etc",
        "a/../b",
        ".",
        "a/./b",
        "A",
        "a%2f..",
        "a b",
        "a/.hidden",
        "a___b",
        "a-",
        "-a",
        "a._b",
        "a\0b",
        &"a".repeat(256),
    ] {
        assert!(RepositoryName::parse(bad).is_err(), "{bad:?}");
    }
    for good in ["17", "1.4.2-15", "sha256-abc.sig", "_x", "Latest"] {
        assert!(TagName::parse(good).is_ok(), "{good}");
    }
    for bad in ["", ".x", "-x", "a/b", "a:b", "..", &"a".repeat(129), "a%2e"] {
        assert!(TagName::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn extension_and_instance_names() {
    for good in [
        "pg_cron",
        "vector",
        "postgis",
        "postgis_topology",
        "pg_stat_statements",
        "hstore",
        "pg_trgm",
        "pgaudit",
        "uuid-ossp",
        "pg17",
        &"a".repeat(63),
    ] {
        ExtensionName::parse(good).unwrap();
        InstanceName::parse(good).unwrap();
    }
    for bad in [
        "",
        "..",
        "../../x",
        "/etc",
        "a/b",
        "Pg",
        "-x",
        "_x",
        "a.b",
        "a b",
        "a\n",
        &"a".repeat(64),
    ] {
        let err = ExtensionName::parse(bad).unwrap_err();
        assert!(err.to_string().contains("extension name"), "{err}");
        assert!(InstanceName::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn locale_names() {
    for good in [
        "C",
        "POSIX",
        "C.UTF-8",
        "C.utf8",
        "de_DE.UTF-8",
        "de_DE.utf8",
        "sr_RS@latin",
        "en_US",
        "und-u-ks-level2",
        "PG_UNICODE_FAST",
        &"a".repeat(127),
    ] {
        LocaleName::parse(good).unwrap();
    }
    for bad in [
        "",
        "de_DE.UTF-8; x",
        "de DE",
        "'C'",
        "\"C\"",
        "-C",
        ".C",
        "@x",
        "../C",
        "/usr/lib/locale/C",
        "de_DE.UTF-8\n",
        "a=b",
        "é",
        &"a".repeat(128),
    ] {
        let err = LocaleName::parse(bad).unwrap_err();
        assert!(err.to_string().contains("locale name"), "{err}");
    }
}

#[test]
fn env_keys() {
    for good in ["PROJ_DATA", "_x", "a1", &"A".repeat(255)] {
        EnvKey::parse(good).unwrap();
    }
    for bad in [
        "",
        "1A",
        "A=B",
        "A\"\nUser=root\nX",
        "A B",
        "A-B",
        &"A".repeat(256),
    ] {
        assert!(EnvKey::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn config_params() {
    for good in [
        "work_mem",
        "cron.database_name",
        "pg_stat_statements.max",
        "A1",
    ] {
        ConfigParam::parse(good).unwrap();
    }
    for bad in [
        "",
        "a.b.c",
        ".a",
        "a.",
        "1a",
        "a$b",
        "a = 1\narchive_command",
        "work_mem\n",
        "a-b",
    ] {
        assert!(ConfigParam::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn library_names() {
    for good in [
        "pg_cron",
        "pg_stat_statements",
        "auto_explain",
        "vectors.so",
    ] {
        LibraryName::parse(good).unwrap();
    }
    for bad in ["", "a,b", "a'b", "/tmp/x", "a b", "$libdir/x"] {
        assert!(LibraryName::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn image_paths() {
    let p = ImagePath::parse("/usr/lib/postgresql/17/bin").unwrap();
    assert_eq!(p.as_relative(), Path::new("usr/lib/postgresql/17/bin"));
    assert_eq!(p.to_string(), "/usr/lib/postgresql/17/bin");
    assert_eq!(
        Path::new("/store").join(&p),
        Path::new("/store/usr/lib/postgresql/17/bin")
    );
    assert_eq!(
        ImagePath::parse("system/").unwrap().as_relative(),
        Path::new("system")
    );
    ImagePath::parse("/usr/lib/postgresql/{major}/bin").unwrap();
    for bad in [
        "", "/", "..", "../..", "/a/../b", "a/./b", "./a", "a//b", "a\nb", "a\0b", "a//",
    ] {
        let err = ImagePath::parse(bad).unwrap_err();
        assert!(err.to_string().contains("image path"), "{err}");
    }
}

#[test]
fn serde_validates_and_keeps_bytes() {
    let v: Vec<ImagePath> = serde_json::from_str(r#"["/usr/lib", "system"]"#).unwrap();
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        r#"["/usr/lib","system"]"#
    );
    let err = serde_json::from_str::<ExtensionName>(r#""../../x""#).unwrap_err();
    assert!(err.to_string().contains("invalid extension name"), "{err}");
}

#[test]
fn text_refuses_control_characters() {
    check_text("v", "${image_root}/share/proj ok").unwrap();
    for bad in ["a\nb", "a\rb", "a\0b", "a\u{7f}", "a\tb", "a\u{85}"] {
        let err = check_text("settings value", bad).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid settings value"),
            "{err}"
        );
    }
}

#[test]
fn errors_map_to_their_exit_codes() {
    let e = || ExtensionName::parse("..").unwrap_err();
    assert_eq!(e().usage().kind.exit_code(), 2);
    assert_eq!(e().resolve().kind.exit_code(), 3);
    assert_eq!(e().integrity().kind.exit_code(), 5);
    assert_eq!(
        e().to_string(),
        r#"invalid extension name "..": must match [a-z0-9][a-z0-9_-]{0,62}"#
    );
}
