use super::*;

fn name(s: &str) -> LocaleName {
    LocaleName::parse(s).unwrap()
}

#[test]
fn default_settings_render_every_option_for_each_major() {
    let d = InitdbSettings::default();
    assert_eq!(
        d.args(14).unwrap(),
        [
            "--locale=C.UTF-8",
            "--encoding=UTF8",
            "--data-checksums",
            "--auth-local=peer",
            "--auth-host=scram-sha-256"
        ]
    );
    assert_eq!(
        d.args(17).unwrap(),
        [
            "--locale=C.UTF-8",
            "--encoding=UTF8",
            "--locale-provider=libc",
            "--data-checksums",
            "--auth-local=peer",
            "--auth-host=scram-sha-256"
        ]
    );
    // 18 checksums by default: off is said explicitly.
    let off = InitdbSettings {
        data_checksums: false,
        ..InitdbSettings::default()
    };
    assert!(off
        .args(18)
        .unwrap()
        .contains(&"--no-data-checksums".into()));
    assert!(!off
        .args(17)
        .unwrap()
        .iter()
        .any(|a| a.contains("checksums")));
    assert!(d.args(18).unwrap().contains(&"--data-checksums".into()));
}

#[test]
fn carried_over_settings_render_as_given() {
    let s = InitdbSettings {
        locale: name("de_DE.UTF-8"),
        lc_collate: Some(name("C")),
        lc_ctype: Some(name("de_DE.utf8")),
        provider: LocaleProvider::Icu,
        icu_locale: Some(name("und-u-ks-level2")),
        wal_segsize_mb: Some(64),
        ..InitdbSettings::default()
    };
    assert_eq!(
        s.args(16).unwrap(),
        [
            "--locale=de_DE.UTF-8",
            "--lc-collate=C",
            "--lc-ctype=de_DE.utf8",
            "--encoding=UTF8",
            "--locale-provider=icu",
            "--icu-locale=und-u-ks-level2",
            "--data-checksums",
            "--wal-segsize=64",
            "--auth-local=peer",
            "--auth-host=scram-sha-256"
        ]
    );
    assert_eq!(
        s.libc_locales(),
        [&name("de_DE.UTF-8"), &name("C"), &name("de_DE.utf8")]
    );
}

#[test]
fn providers_need_a_major_that_has_them() {
    let usage = |s: &InitdbSettings, major: u32| {
        let e = s.args(major).unwrap_err();
        assert_eq!(e.kind.exit_code(), 2, "{}", e.message);
        e.message
    };
    let icu = InitdbSettings {
        provider: LocaleProvider::Icu,
        icu_locale: Some(name("und")),
        ..InitdbSettings::default()
    };
    assert_eq!(
        usage(&icu, 14),
        "--locale-provider icu needs PostgreSQL 15 or later; this is PostgreSQL 14"
    );
    assert!(icu.args(15).unwrap().contains(&"--icu-locale=und".into()));
    let no_icu_locale = InitdbSettings {
        icu_locale: None,
        ..icu.clone()
    };
    assert!(usage(&no_icu_locale, 17).contains("needs --icu-locale"));

    let builtin = InitdbSettings {
        provider: LocaleProvider::Builtin,
        ..InitdbSettings::default()
    };
    assert_eq!(
        usage(&builtin, 16),
        "--locale-provider builtin needs PostgreSQL 17 or later; this is PostgreSQL 16"
    );
    // Without --builtin-locale, --locale (C.UTF-8) is the builtin one.
    assert!(builtin
        .args(17)
        .unwrap()
        .contains(&"--builtin-locale=C.UTF-8".into()));
    let fast = InitdbSettings {
        builtin_locale: Some(name("PG_UNICODE_FAST")),
        ..builtin.clone()
    };
    assert!(usage(&fast, 17).contains("PostgreSQL 18 or later; this is PostgreSQL 17"));
    fast.args(18).unwrap();
    let latin1 = InitdbSettings {
        encoding: "LATIN1".into(),
        ..builtin.clone()
    };
    assert!(usage(&latin1, 17).contains("needs --encoding UTF8, not LATIN1"));
    let not_builtin = InitdbSettings {
        locale: name("de_DE.UTF-8"),
        ..builtin.clone()
    };
    assert!(usage(&not_builtin, 17).contains("the builtin provider has C and C.UTF-8"));

    // A provider's locale without that provider.
    let stray = InitdbSettings {
        icu_locale: Some(name("und")),
        ..InitdbSettings::default()
    };
    assert!(usage(&stray, 17).contains("--icu-locale is for the icu locale provider"));
    let stray = InitdbSettings {
        builtin_locale: Some(name("C")),
        ..InitdbSettings::default()
    };
    assert!(usage(&stray, 17).contains("--builtin-locale is for the builtin"));
}

#[test]
fn wal_segment_sizes_are_powers_of_two() {
    for bad in [0, 3, 2048] {
        let s = InitdbSettings {
            wal_segsize_mb: Some(bad),
            ..InitdbSettings::default()
        };
        assert_eq!(s.args(17).unwrap_err().kind.exit_code(), 2, "{bad}");
    }
    let s = InitdbSettings {
        wal_segsize_mb: Some(1),
        ..InitdbSettings::default()
    };
    assert!(s.args(13).unwrap().contains(&"--wal-segsize=1".into()));
}

#[test]
fn refused_settings_are_typed_with_their_hint() {
    let icu = InitdbSettings {
        provider: LocaleProvider::Icu,
        icu_locale: Some(name("und")),
        ..InitdbSettings::default()
    };
    let e = icu.args(14).unwrap_err();
    match e.typed::<PostgresError>() {
        Some(PostgresError::TooOld { what, since, major }) => {
            assert_eq!(
                (what.as_str(), *since, *major),
                ("--locale-provider icu", 15, 14)
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.kind, crate::Kind::Usage);
    assert_eq!(
        e.hint.as_deref(),
        Some("install PostgreSQL 15+ (--major 15), or leave --locale-provider icu out")
    );
    let s = InitdbSettings {
        wal_segsize_mb: Some(3),
        ..InitdbSettings::default()
    };
    let e = s.args(17).unwrap_err();
    assert!(matches!(
        e.typed::<PostgresError>(),
        Some(PostgresError::WalSegmentSize { mb: 3 })
    ));
    assert_eq!(
        e.to_string(),
        "WAL segment size 3 MB: must be a power of two from 1 to 1024"
    );
}

#[test]
fn majors_of_versions() {
    assert_eq!(major_of_version("17.10"), Some(17));
    assert_eq!(major_of_version("18beta1"), Some(18));
    assert_eq!(major_of_version("x"), None);
}
