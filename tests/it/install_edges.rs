//! Where an install used to lose a user's data or time (issue 20): a
//! failed first install into an existing empty data directory (a mount
//! point) is undone without debris and can be run again; a changed --user
//! or --service on an existing instance is refused; `install --check` and
//! `status` work for an unprivileged user on a root-owned instance.

use crate::support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn run(root: &Path, cache: &Path, args: &[&str]) -> std::process::Output {
    let bed = bed();
    let mut cmd = pgoci(&bed.profile, &bed.registry, cache);
    cmd.arg("--json").arg("--root").arg(root).args(args);
    cmd.output().unwrap()
}

#[test]
fn a_failed_first_install_into_an_empty_mount_point_is_undone_and_runs_again() {
    let dir = scratch();
    let root = dir.path().join("root");
    let cache = dir.path().join("cache");
    let data = root.join("var/lib/pgoci/e/data");
    std::fs::create_dir_all(&data).unwrap();
    let port = free_port().to_string();
    let _servers = Servers::of(&root, "e");
    let base = [
        "install",
        "--yes",
        "--service",
        "none",
        "--instance",
        "e",
        "--major",
        "17",
        "--port",
        &port,
    ];
    // The server refuses this setting: initdb has filled the directory by then.
    let mut bad = base.to_vec();
    bad.extend(["--set", "shared_buffers=lots"]);
    let out = run(&root, &cache, &bad);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert!(data.is_dir(), "the mount point stays");
    assert_eq!(
        std::fs::read_dir(&data).unwrap().count(),
        0,
        "emptied again"
    );
    for debris in [
        "run/pgoci/e",
        "var/log/pgoci/e",
        "opt/pgoci/instances/e/state.json",
    ] {
        assert!(!root.join(debris).exists(), "{debris} left behind");
    }
    // The same install without the bad setting now goes through.
    let out = run(&root, &cache, &base);
    assert_success(&out);
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("opt/pgoci/instances/e/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["data_dir_created"], false, "pgoci did not create it");

    // An existing instance keeps its user and service manager.
    let mut other_user = base.to_vec();
    other_user.extend(["--user", "nobody"]);
    assert_eq!(run(&root, &cache, &other_user).status.code(), Some(2));
    let mut other_service = base.to_vec();
    other_service[2] = "systemd";
    assert_eq!(run(&root, &cache, &other_service).status.code(), Some(2));
    // Leaving them out keeps the instance's own: a re-run, no change.
    let again = base
        .iter()
        .copied()
        .filter(|a| *a != "--service" && *a != "none")
        .collect::<Vec<_>>();
    let doc = json(&run(&root, &cache, &again));
    assert_eq!(doc["changed"], false, "{doc}");

    // Unprivileged: --check reads what the instance recorded, status sees
    // the running server through its socket.
    for p in [dir.path(), root.as_path(), &cache] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // A copy the unprivileged user can reach (the target dir may be under
    // /root, which it cannot).
    let bin = dir.path().join("pgoci");
    std::fs::copy(assert_cmd::cargo::cargo_bin("pgoci"), &bin).unwrap();
    let profile = dir.path().join("profile.yaml");
    std::fs::copy(&bed().profile, &profile).unwrap();
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&bin)
            .env("PGOCI_CACHE_DIR", dir.path().join("nobody-cache"))
            .arg("--profile")
            .arg(&profile)
            .args(["--insecure-registry", &bed().registry, "--json", "--root"])
            .arg(&root)
            .args(args)
            .output()
            .unwrap()
    };
    let mut check = again.clone();
    check.push("--check");
    let out = as_nobody(&check);
    assert_success(&out);
    let doc = json(&out);
    assert_eq!(doc["changed"], false, "{doc}");
    let status = json(&as_nobody(&["status"]));
    assert_eq!(status["instances"][0]["running"], true, "{status}");
}
