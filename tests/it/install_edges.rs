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

/// Under a `--root` they own, users install, run and uninstall an instance
/// as themselves (the server runs as them: nothing needs another owner);
/// any other service user, or the host itself, still needs root.
#[test]
fn a_user_installs_under_a_root_of_their_own_as_themself() {
    let dir = scratch();
    let root = dir.path().join("root");
    let cache = dir.path().join("nobody-cache");
    for d in [&root, &cache] {
        std::fs::create_dir(d).unwrap();
        rustix::fs::chown(
            d,
            Some(rustix::fs::Uid::from_raw(65534)),
            Some(rustix::fs::Gid::from_raw(65534)),
        )
        .unwrap();
    }
    // Copies the user can reach (the target dir may be under /root).
    let bin = dir.path().join("pgoci");
    std::fs::copy(assert_cmd::cargo::cargo_bin("pgoci"), &bin).unwrap();
    let profile = dir.path().join("profile.yaml");
    std::fs::copy(&bed().profile, &profile).unwrap();
    let as_nobody = |root: &Path, args: &[&str]| {
        std::process::Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&bin)
            .env("PGOCI_CACHE_DIR", &cache)
            .arg("--profile")
            .arg(&profile)
            .args(["--insecure-registry", &bed().registry, "--root"])
            .arg(root)
            .args(args)
            .output()
            .unwrap()
    };
    let lock_dir = Path::new("/run/lock/pgoci-65534");
    let lock_dir_was_there = lock_dir.exists();
    let port = free_port().to_string();
    let install = [
        "install",
        "--yes",
        "--major",
        "15",
        "--service",
        "none",
        "--instance",
        "me",
        "--port",
        &port,
    ];
    let data = root.join("var/lib/pgoci/me/data");
    let _server = StopAs(
        "nobody",
        root.join("opt/pgoci/instances/me/current/bin"),
        data.clone(),
    );

    // The host itself, and a service user other than the caller: exit 6
    // before anything is written, naming the way out.
    let out = as_nobody(Path::new("/"), &install);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("must run as root"),
        "{}",
        stderr(&out)
    );
    let out = as_nobody(&root, &install);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("--user nobody"), "{}", stderr(&out));
    assert!(tree(&root).is_empty(), "wrote {:?}", tree(&root));

    // As themself: installed, initialised and started as nobody.
    let mut as_self = install.to_vec();
    as_self.extend(["--user", "nobody"]);
    let out = as_nobody(&root, &as_self);
    assert_success(&out);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&data).unwrap().uid(), 65534);
    let who = std::process::Command::new("runuser")
        .args([
            "-u", "nobody", "--", "psql", "-X", "-tA", "-U", "nobody", "-d", "postgres",
        ])
        .arg("-h")
        .arg(root.join("run/pgoci/me"))
        .args([
            "-p",
            &port,
            "-c",
            "SELECT current_user || ' ' || current_setting('server_version_num')::int / 10000",
        ])
        .output()
        .unwrap();
    assert_success(&who);
    assert_eq!(String::from_utf8_lossy(&who.stdout).trim(), "nobody 15");
    // A re-run changes nothing; uninstall stops it and keeps the data.
    let out = as_nobody(&root, &[&["--json"][..], &as_self].concat());
    assert_success(&out);
    assert_eq!(json(&out)["changed"], false);
    let out = as_nobody(&root, &["uninstall", "--yes", "--instance", "me"]);
    assert_success(&out);
    assert!(data.join("PG_VERSION").exists());
    assert!(!root
        .join("run/pgoci/me/.s.PGSQL.".to_string() + &port)
        .exists());

    if !lock_dir_was_there {
        let _ = std::fs::remove_dir_all(lock_dir);
    }
}

/// Stops a server as `user` when the test ends, however it ends.
struct StopAs(&'static str, std::path::PathBuf, std::path::PathBuf);

impl Drop for StopAs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", self.0, "--"])
            .arg(self.1.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&self.2)
            .output();
    }
}

/// An uninstall that fails midway puts everything back: the instance, its
/// files, and its server running again.
#[test]
fn a_failed_uninstall_puts_the_instance_back_running() {
    let dir = scratch();
    let root = dir.path().join("root");
    let cache = dir.path().join("cache");
    let _servers = Servers::of(&root, "u");
    let port = free_port().to_string();
    let out = run(
        &root,
        &cache,
        &[
            "install",
            "--yes",
            "--major",
            "15",
            "--service",
            "none",
            "--instance",
            "u",
            "--port",
            &port,
        ],
    );
    assert_success(&out);
    let socket = root.join("run/pgoci/u");
    let port: u16 = port.parse().unwrap();
    psql(&socket, port, "CREATE TABLE kept AS SELECT 42 AS answer").unwrap();
    let instance = root.join("opt/pgoci/instances/u");
    let listing = tree(&instance);

    // The instance directory cannot be moved aside: its place is taken
    // by a file, after the server was stopped and the socket and log
    // directories were moved aside.
    let blocker = root.join("opt/pgoci/instances/.tmp-removed-u");
    std::fs::write(&blocker, "in the way").unwrap();
    let out = run(&root, &cache, &["uninstall", "--yes", "--instance", "u"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("every change of this run was undone"),
        "{}",
        stderr(&out)
    );
    assert_eq!(tree(&instance), listing);
    assert!(root.join("var/log/pgoci/u").is_dir());
    assert_eq!(
        psql(&socket, port, "SELECT answer FROM kept").unwrap(),
        "42"
    );

    std::fs::remove_file(&blocker).unwrap();
    let out = run(&root, &cache, &["uninstall", "--yes", "--instance", "u"]);
    assert_success(&out);
    assert!(!instance.exists());
    assert!(psql(&socket, port, "SELECT 1").is_err());
}
