//! Bad input gets one clear line, the spec's exit code, and no change.

use crate::support::*;

#[test]
fn unknown_major_or_extension_is_exit_3_with_nearest_names() {
    let bed = bed();
    let dir = scratch();
    let out = pgoci(&bed.profile, &bed.registry, dir.path())
        .args(["resolve", "--major", "16", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("15, 17, 18"), "{}", stderr(&out));

    let out = pgoci(&bed.profile, &bed.registry, dir.path())
        .args(["resolve", "--major", "15", "--ext", "pg_corn", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("nearest: pg_cron"),
        "{}",
        stderr(&out)
    );

    let out = pgoci(&bed.profile, &bed.registry, dir.path())
        .args([
            "--json", "resolve", "--major", "15", "--ext", "hstore", "-o", "-",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let doc = json(&out);
    assert_eq!(doc["error"]["kind"], "resolve");
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not built for PostgreSQL 15"));
}

#[test]
fn unreachable_registry_is_exit_4_naming_the_url() {
    let dir = scratch();
    let port = free_port(); // nothing listens there
    let addr = format!("127.0.0.1:{port}");
    let profile = dir.path().join("dead.yaml");
    std::fs::write(
        &profile,
        format!("name: dead\nplatforms: [linux/amd64]\nserver:\n  majors: [17]\n  image: \"{addr}/pgoci/postgresql:17\"\n  layout: tree\n"),
    )
    .unwrap();
    let out = pgoci(&profile, &addr, dir.path())
        .args(["resolve", "--major", "17", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("http://{addr}/v2/")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn install_without_a_source_and_no_terminal_is_exit_2_naming_the_flag() {
    let dir = scratch();
    let out = assert_cmd::Command::cargo_bin("pgoci")
        .unwrap()
        .args(["install", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--major"), "{}", stderr(&out));
    assert!(tree(dir.path()).is_empty());
}

#[test]
fn foreign_data_dir_is_exit_6_and_left_untouched() {
    let bed = bed();
    let dir = scratch();
    let cache = dir.path().join("cache");
    let bundle = dir.path().join("b");
    pgoci(&bed.profile, &bed.registry, &cache)
        .args(["bundle", "export", "--major", "17", "-o"])
        .arg(&bundle)
        .assert()
        .success();
    let root = dir.path().join("root");
    let data = root.join("srv/data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("precious.txt"), "mine").unwrap();
    let before = tree(&root);
    let out = pgoci(&bed.profile, &bed.registry, &cache)
        .args(["install", "--yes", "--bundle"])
        .arg(&bundle)
        .arg("--root")
        .arg(&root)
        .args(["--data-dir", "/srv/data", "--port"])
        .arg(free_port().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not created by pgoci"),
        "{}",
        stderr(&out)
    );
    assert_eq!(tree(&root), before, "nothing may be written on the host");
    assert_eq!(
        std::fs::read_to_string(data.join("precious.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn hostile_instance_names_settings_and_data_dirs_are_refused_before_anything_is_written() {
    let bed = bed();
    let dir = scratch();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let run = |extra: &[&str]| {
        pgoci(&bed.profile, &bed.registry, dir.path())
            .arg("--root")
            .arg(&root)
            .args(["install", "--yes", "--major", "18", "--port"])
            .arg(free_port().to_string())
            .args(extra)
            .output()
            .unwrap()
    };
    for name in ["..", "../../etc", "a b", "a\nb", "Upper", "-x", ""] {
        let out = run(&[&format!("--instance={name}")]);
        assert_eq!(out.status.code(), Some(2), "{name:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("instance name"), "{}", stderr(&out));
    }
    for set in [
        "work_mem\narchive_command=x",
        "a b=1",
        "work_mem=1\narchive_command = 'rm -rf /'",
    ] {
        let out = run(&["--instance", "ok", "--set", set]);
        assert_eq!(out.status.code(), Some(2), "{set:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("--set"), "{}", stderr(&out));
    }
    // A service user name useradd would read as an option.
    for user in ["-ofoo", "a b", "root\nx"] {
        let out = run(&["--instance", "ok", &format!("--user={user}")]);
        assert_eq!(out.status.code(), Some(2), "{user:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("service user"), "{}", stderr(&out));
    }
    // A prefix that would split the path lists it goes into.
    for prefix in [
        "/opt/a:b",
        "/opt/a;b",
        "relative",
        "/opt/../etc",
        "/opt/a\nb",
    ] {
        let out = run(&["--instance", "ok", &format!("--prefix={prefix}")]);
        assert_eq!(out.status.code(), Some(2), "{prefix:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("--prefix"), "{}", stderr(&out));
    }
    // A relative data directory would be a guess: exit 2, nothing written.
    let out = run(&["--instance", "ok", "--data-dir", "rel/data"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("relative"), "{}", stderr(&out));
    assert!(tree(&root).is_empty(), "wrote {:?}", tree(&root));
    // A regular file as the data directory: refused in preflight (exit 6).
    // (--data-dir is a host path: under --root it is placed in the root.)
    std::fs::write(root.join("not-a-dir"), "x").unwrap();
    let _servers = Servers::of(&root, "ok");
    let out = run(&["--instance", "ok", "--data-dir", "/not-a-dir"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));
    assert_eq!(tree(&root), [root.join("not-a-dir")]);
    for name in ["..", "../x"] {
        for cmd in ["rollback", "uninstall"] {
            let out = pgoci(&bed.profile, &bed.registry, dir.path())
                .arg("--root")
                .arg(&root)
                .args([cmd, "--yes", "--instance", name])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{cmd} {name}: {}", stderr(&out));
        }
    }
}

/// Global flags are checked once, before any command runs: a bad value is
/// exit 2 naming the flag whatever the command (`--jobs 0` was taken as 1
/// and `--platform linux` ignored by commands that resolve nothing); a
/// relative `--root` is taken from the working directory.
#[test]
fn global_flags_are_checked_before_any_command() {
    let dir = scratch();
    for (flags, named) in [
        (&["--jobs", "0"][..], "--jobs 0"),
        (&["--jobs", "65"][..], "--jobs 65"),
        (&["--platform", "linux"][..], "linux"),
    ] {
        let out = assert_cmd::Command::cargo_bin("pgoci")
            .unwrap()
            .current_dir(dir.path())
            .args(flags)
            .args(["--json", "status"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        let doc = json(&out);
        assert_eq!(doc["error"]["kind"], "usage", "{doc}");
        assert!(
            doc["error"]["message"].as_str().unwrap().contains(named),
            "{doc}"
        );
    }
    std::fs::create_dir_all(dir.path().join("rel/opt/pgoci/instances")).unwrap();
    let out = assert_cmd::Command::cargo_bin("pgoci")
        .unwrap()
        .current_dir(dir.path())
        .args(["--root", "rel", "--json", "status"])
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(json(&out)["instances"], serde_json::json!([]));
}
