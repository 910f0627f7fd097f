//! Major upgrades' pure parts.

use super::checks::*;
use super::phases::*;
use super::rollback::*;
use super::*;

fn options(provider: &str, locale: Option<&str>) -> ClusterOptions {
    ClusterOptions {
        encoding: "UTF8".into(),
        lc_collate: "de_DE.UTF-8".into(),
        lc_ctype: "de_DE.UTF-8".into(),
        provider: provider.into(),
        provider_locale: locale.map(str::to_string),
        data_checksums: false,
        wal_segsize_mb: Some(64),
    }
}

#[test]
fn the_old_clusters_options_become_the_new_initdb_arguments() {
    let args = initdb_settings(&options("c", None), 17)
        .unwrap()
        .args(17)
        .unwrap();
    for want in [
        "--locale=de_DE.UTF-8",
        "--encoding=UTF8",
        "--locale-provider=libc",
        "--wal-segsize=64",
    ] {
        assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
    }
    assert!(!args.iter().any(|a| a == "--data-checksums"), "{args:?}");
    let icu = initdb_settings(&options("i", Some("de-DE")), 17)
        .unwrap()
        .args(17)
        .unwrap();
    assert!(icu.iter().any(|a| a == "--icu-locale=de-DE"), "{icu:?}");
    let builtin = initdb_settings(&options("b", Some("C.UTF-8")), 18)
        .unwrap()
        .args(18)
        .unwrap();
    assert!(
        builtin.iter().any(|a| a == "--builtin-locale=C.UTF-8"),
        "{builtin:?}"
    );
    assert!(
        builtin.iter().any(|a| a == "--no-data-checksums"),
        "{builtin:?}"
    );
}

#[test]
fn phases_are_ordered_and_recorded_by_name() {
    assert!(Phase::Prepared < Phase::Upgraded && Phase::Upgraded < Phase::Started);
    assert!(Phase::Started < Phase::Done);
    assert_eq!(serde_json::to_value(Phase::Stopping).unwrap(), "stopping");
}

#[test]
fn a_link_upgrade_is_refused_rollback_once_started_and_not_before() {
    let name = InstanceName::parse("main").unwrap();
    let mut rec = MajorRecord {
        from_major: 15,
        to_major: 17,
        from_generation: "1-a".into(),
        to_generation: "2-b".into(),
        old_data_dir: "/d".into(),
        new_data_dir: "/d-17".into(),
        method: Method::Link,
        phase: Phase::Switched,
        old_collation: None,
        collation_change: None,
    };
    assert!(refuse_link_rollback(&name, &rec).is_ok());
    rec.phase = Phase::Started;
    let e = refuse_link_rollback(&name, &rec).unwrap_err();
    assert_eq!(e.kind, crate::Kind::Host);
    rec.method = Method::Copy;
    assert!(refuse_link_rollback(&name, &rec).is_ok());
}

#[test]
fn without_reflinks_the_default_is_copy_and_link_stays_on_one_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    let chosen = choose_method(None, &data, dir.path()).unwrap();
    assert_eq!(chosen == Method::Clone, can_reflink(dir.path()));
    assert_eq!(
        choose_method(Some(Method::Link), &data, dir.path()).unwrap(),
        Method::Link
    );
    assert!(!dir
        .path()
        .join(format!(".pgoci-reflink-a-{}", std::process::id()))
        .exists());
}

#[test]
fn a_pg_control_renamed_by_link_mode_is_put_back() {
    let dir = tempfile::tempdir().unwrap();
    let global = dir.path().join("global");
    fs::create_dir(&global).unwrap();
    fs::write(global.join("pg_control.old"), "x").unwrap();
    restore_pg_control(dir.path()).unwrap();
    assert!(global.join("pg_control").exists() && !global.join("pg_control.old").exists());
}

#[test]
fn a_new_server_that_does_not_start_says_how_the_rollback_went() {
    let cause = || Error::service("PostgreSQL did not start: boom");
    let err: Error = MajorUpgradeError::NewServerNotStarted {
        to_major: 17,
        source: Box::new(cause()),
        rollback: RolledBack::To {
            major: 15,
            data: PathBuf::from("/var/lib/pgoci/main/data"),
        },
    }
    .into();
    assert_eq!(err.kind, crate::Kind::Service);
    assert_eq!(err.hint, None);
    assert_eq!(
        err.to_string(),
        "PostgreSQL 17 did not start: PostgreSQL did not start: boom; rolled back to PostgreSQL 15 on /var/lib/pgoci/main/data"
    );
    // The start's own error stays below it.
    let causes: Vec<String> = err.causes().map(|c| c.to_string()).collect();
    assert_eq!(causes, ["PostgreSQL did not start: boom"]);

    let err: Error = MajorUpgradeError::NewServerNotStarted {
        to_major: 17,
        source: Box::new(cause()),
        rollback: RolledBack::Failed(Box::new(Error::host("cannot rename /x: EIO"))),
    }
    .into();
    assert_eq!(
        err.to_string(),
        "PostgreSQL 17 did not start: PostgreSQL did not start: boom; rolling back also failed: cannot rename /x: EIO"
    );
}

#[test]
fn refusals_of_a_major_upgrade_keep_their_kind_and_hint() {
    let main = InstanceName::parse("main").unwrap();
    let err: Error = MajorUpgradeError::NotNewer {
        instance: main.clone(),
        from: 17,
        to: 16,
    }
    .into();
    assert_eq!(err.kind, crate::Kind::Usage);
    assert_eq!(
        err.to_string(),
        "instance main runs PostgreSQL 17; --major 16 is not newer"
    );
    assert!(matches!(
        err.typed::<MajorUpgradeError>(),
        Some(MajorUpgradeError::NotNewer {
            from: 17,
            to: 16,
            ..
        })
    ));
    let err: Error = MajorUpgradeError::OtherUnfinished {
        instance: main,
        to_major: 17,
    }
    .into();
    assert_eq!(err.kind, crate::Kind::Host);
    assert_eq!(
        err.hint.as_deref(),
        Some("run it again with --major 17 to finish it, or `pgoci rollback --instance main` to undo it")
    );
    let err: Error = MajorUpgradeError::NoSpaceForCopy {
        needed: 11 << 30,
        on: PathBuf::from("/var/lib/pgoci/main"),
        free: 1 << 30,
    }
    .into();
    assert_eq!(
        err.to_string(),
        format!(
            "--method copy needs {} free on /var/lib/pgoci/main (the data dir plus 10%); {} is free",
            human(11 << 30),
            human(1 << 30)
        )
    );
}
