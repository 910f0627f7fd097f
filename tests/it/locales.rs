//! Locales and the locale provider: a locale name is checked as a name
//! (exit 2) and for being on the host (exit 6) before anything changes;
//! providers reach initdb where the major has them.

use crate::support::*;

#[test]
fn locales_are_checked_before_anything_is_written() {
    let bed = bed();
    let dir = scratch();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let run = |extra: &[&str]| {
        pgoci(&bed.profile, &bed.registry, &dir.path().join("cache"))
            .arg("--root")
            .arg(&root)
            .args(["install", "--yes", "--major", "18", "--port"])
            .arg(free_port().to_string())
            .args(extra)
            .output()
            .unwrap()
    };
    // Not a locale name: exit 2 naming the flag, before any resolve.
    for (flag, value) in [
        ("--locale", "de_DE.UTF-8; x"),
        ("--locale", "-C"),
        ("--lc-collate", "de DE"),
        ("--icu-locale", "'und'"),
        ("--builtin-locale", "../C"),
    ] {
        let out = run(&[&format!("{flag}={value}")]);
        assert_eq!(out.status.code(), Some(2), "{value:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{flag}: invalid locale name")),
            "{err}"
        );
        assert!(err.contains("hint: "), "{err}");
    }
    // A provider the major lacks: exit 2 naming the major.
    let out = pgoci(&bed.profile, &bed.registry, &dir.path().join("cache"))
        .arg("--root")
        .arg(&root)
        .args([
            "install",
            "--yes",
            "--major",
            "15",
            "--locale-provider",
            "builtin",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("this is PostgreSQL 15"),
        "{}",
        stderr(&out)
    );
    assert!(tree(&root).is_empty(), "wrote {:?}", tree(&root));

    // A locale neither the root nor the image has: exit 6 naming it, with
    // nothing unpacked, composed or initialised (and --check says so too).
    for check in [false, true] {
        let mut args = vec!["--locale", "xx_YY.UTF-8"];
        if check {
            args.push("--check");
        }
        let out = run(&args);
        assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("locale xx_YY.UTF-8 is not available"), "{err}");
        assert!(
            err.contains("localedef -i xx_YY -f UTF-8 xx_YY.UTF-8"),
            "{err}"
        );
        assert!(tree(&root).is_empty(), "wrote {:?}", tree(&root));
    }
    let out = pgoci(&bed.profile, &bed.registry, &dir.path().join("cache"))
        .arg("--root")
        .arg(&root)
        .args([
            "--json",
            "install",
            "--yes",
            "--major",
            "18",
            "--lc-ctype",
            "xx_YY.utf8",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(json(&out)["error"]["kind"], "host");
    assert!(tree(&root).is_empty(), "wrote {:?}", tree(&root));

    // The root's own compiled locales do not count: initdb runs on this
    // machine, whose glibc finds locales by absolute path, so a locale
    // only the root has would fail initdb after changes. Refused first.
    assert!(
        !pgoci::install::locale::Locales::of_root(std::path::Path::new("/")).has("sq_MK.UTF-8"),
        "this machine has sq_MK.UTF-8: the case below needs a locale it lacks"
    );
    let sq = root.join("usr/lib/locale/sq_MK.utf8");
    std::fs::create_dir_all(&sq).unwrap();
    std::fs::write(sq.join("LC_COLLATE"), "").unwrap();
    let out = run(&["--check", "--locale", "sq_MK.UTF-8"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("locale sq_MK.UTF-8 is not available"),
        "{}",
        stderr(&out)
    );
}

/// Installs `major` with `flags`, and asks the new cluster `sql`.
fn install_and_ask(major: &str, flags: &[&str], sql: &str) -> String {
    let bed = bed();
    let dir = scratch();
    let root = dir.path().join("root");
    let port = free_port();
    let out = pgoci(&bed.profile, &bed.registry, &dir.path().join("cache"))
        .arg("--root")
        .arg(&root)
        .args([
            "--json",
            "install",
            "--yes",
            "--major",
            major,
            "--instance",
            "loc",
        ])
        .args(["--port", &port.to_string()])
        .args(flags)
        .output()
        .unwrap();
    let _servers = Servers::of(&root, "loc");
    assert_success(&out);
    let doc = json(&out);
    let socket = std::path::PathBuf::from(doc["instance"]["socket_dir"].as_str().unwrap());
    psql(&socket, port, sql).unwrap()
}

#[test]
fn builtin_provider_on_18_with_checksums() {
    let got = install_and_ask(
        "18",
        &["--locale-provider", "builtin"],
        "SELECT datlocprovider::text || ' ' || datlocale || ' ' || current_setting('data_checksums') \
         FROM pg_database WHERE datname = 'postgres'",
    );
    assert_eq!(got, "b C.UTF-8 on");
}

#[test]
fn icu_provider_on_15() {
    let got = install_and_ask(
        "15",
        &["--icu-locale", "und", "--lc-collate", "C"],
        "SELECT datlocprovider::text || ' ' || daticulocale || ' ' || datcollate || ' ' || datctype \
         FROM pg_database WHERE datname = 'postgres'",
    );
    assert_eq!(got, "i und C C.UTF-8");
}
