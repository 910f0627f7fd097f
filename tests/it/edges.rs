//! Nothing lost at the edges (issue 20): an export never deletes a user's
//! files, never panics on `-o .` and leaves no temporary behind; a closed
//! stderr is no panic; doctor shows every check when one fails; the same
//! lock twice is one lock; a full disk is the host's, naming the place;
//! the prefix lock is not a symlink anyone may plant; and an export after
//! a pull needs no registry.

use crate::support::*;
use std::path::{Path, PathBuf};

/// The PG 15 + pg_cron lock of the shared bed, into `dir`.
fn lock15(dir: &Path) -> PathBuf {
    let bed = bed();
    let lock = dir.join("pg15.lock");
    pgoci(&bed.profile, &bed.registry, &dir.join("cache"))
        .args(["resolve", "--major", "15", "--ext", "pg_cron", "-o"])
        .arg(&lock)
        .assert()
        .success();
    lock
}

/// `bundle export --lock LOCK -o OUT` from `cwd`, with the shared bed.
fn export(dir: &Path, cwd: &Path, lock: &Path, out: &str) -> std::process::Output {
    let bed = bed();
    pgoci(&bed.profile, &bed.registry, &dir.join("cache"))
        .current_dir(cwd)
        .args(["bundle", "export", "--lock"])
        .arg(lock)
        .args(["-o", out])
        .output()
        .unwrap()
}

/// Every name in a directory (not recursive), sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// A refusal of the contract's kind: exit 2, one `error:` line naming
/// `what`, a hint, no panic.
#[track_caller]
fn assert_refused(out: &std::process::Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(what), "names {what}: {err}");
    assert!(err.lines().any(|l| l.starts_with("hint:")), "{err}");
}

#[test]
fn export_replaces_only_a_previous_bundle_and_never_a_users_files() {
    let dir = scratch();
    let d = dir.path();
    let lock = lock15(d);
    let work = d.join("work");
    std::fs::create_dir(&work).unwrap();

    // A directory of the user's own: refused, untouched, nothing beside it.
    let mine = work.join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), b"precious").unwrap();
    let out = export(d, &work, &lock, "mine");
    assert_refused(&out, "mine");
    assert_eq!(names(&mine), ["notes.txt"]);
    assert_eq!(std::fs::read(mine.join("notes.txt")).unwrap(), b"precious");
    assert_eq!(names(&work), ["mine"], "a temporary was left");

    // A file that is not a bundle, even named .tar: the same.
    let file = work.join("mine.tar");
    std::fs::write(&file, b"not a bundle").unwrap();
    assert_refused(&export(d, &work, &lock, "mine.tar"), "mine.tar");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a bundle");
    std::fs::remove_file(&file).unwrap();

    // `.`, `..` and `/`: exit 2, no panic, no `.tmp-PID` anywhere.
    for target in [".", "..", "/", "mine/.", "./"] {
        let out = export(d, &mine, &lock, target);
        assert_refused(&out, target.trim_end_matches('/'));
        assert_eq!(names(&mine), ["notes.txt"], "-o {target}");
        assert_eq!(names(&work), ["mine"], "-o {target}");
    }

    // What may be replaced: an empty directory, a previous bundle (both
    // forms); and a bundle the user added a file to is theirs again.
    let empty = work.join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_success(&export(d, &work, &lock, "empty"));
    assert!(empty.join("pgoci.lock").is_file());
    for target in ["empty", "b.tar", "b.tar"] {
        assert_success(&export(d, &work, &lock, target));
    }
    assert_eq!(names(&work), ["b.tar", "empty", "mine"]);
    std::fs::write(empty.join("README"), b"mine now").unwrap();
    assert_refused(&export(d, &work, &lock, "empty"), "README");
    assert_eq!(std::fs::read(empty.join("README")).unwrap(), b"mine now");
    assert!(empty.join("pgoci.lock").is_file());
}

#[test]
fn a_pull_whose_stdout_and_stderr_are_gone_does_not_panic() {
    // `pgoci pull 2>&1 | head -1`, deterministically: both outputs are a
    // pipe whose reading end is closed before pgoci starts.
    let bed = bed();
    let dir = scratch();
    let d = dir.path();
    let lock = lock15(d);
    for args in [&["pull"][..], &["-v", "pull"][..]] {
        let (read_end, write_end) = rustix::pipe::pipe().unwrap();
        drop(read_end);
        let err_end = write_end.try_clone().unwrap();
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_pgoci"))
            .env_remove("PGOCI_PROFILE")
            .env("PGOCI_CACHE_DIR", d.join("fresh-cache"))
            .arg("--profile")
            .arg(&bed.profile)
            .arg("--insecure-registry")
            .arg(&bed.registry)
            .args(args)
            .arg("--lock")
            .arg(&lock)
            .stdout(std::process::Stdio::from(write_end))
            .stderr(std::process::Stdio::from(err_end))
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: {status:?}");
    }
    // And the pull did its job.
    let cached = std::fs::read_dir(d.join("fresh-cache/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(cached, 6);
}

#[test]
fn doctor_json_lists_every_check_when_one_fails() {
    let bed = bed();
    let dir = scratch();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = pgoci(&bed.profile, &bed.registry, &dir.path().join("cache"))
        .args(["--json", "doctor", "--port", &port, "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json(&out);
    assert_eq!(doc["command"], "doctor", "{doc}");
    assert_eq!(doc["error"]["kind"], "host", "{doc}");
    let checks = doc["checks"].as_array().expect("checks on failure");
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for want in ["root", "systemd", "glibc", "disk", "useradd", "port"] {
        assert!(names.contains(&want), "{want} missing: {doc}");
    }
    let port_check = checks.iter().find(|c| c["name"] == "port").unwrap();
    assert_eq!(port_check["ok"], false, "{doc}");
    // The same checks for people, on stderr, and the error after them.
    let out = pgoci(&bed.profile, &bed.registry, &dir.path().join("cache"))
        .args(["doctor", "--port", &port, "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("port")),
        "{err}"
    );
    assert!(
        err.contains("error: an install would fail here: port"),
        "{err}"
    );
    drop(taken);
}

#[test]
fn the_same_lock_twice_is_one_lock_and_every_lock_keeps_its_own_label() {
    let bed = bed();
    let dir = scratch();
    let d = dir.path();
    let l15 = lock15(d);
    let copy = d.join("copy.lock");
    std::fs::copy(&l15, &copy).unwrap();
    let l18 = d.join("pg18.lock");
    pgoci(&bed.profile, &bed.registry, &d.join("cache"))
        .args(["resolve", "--major", "18", "--ext", "pg_trgm", "-o"])
        .arg(&l18)
        .assert()
        .success();
    let run = |args: &[&Path], out: &Path| {
        let mut cmd = pgoci(&bed.profile, &bed.registry, &d.join("cache"));
        cmd.args(["--json", "bundle", "export"]);
        for a in args {
            cmd.arg("--lock").arg(a);
        }
        let out = cmd.arg("-o").arg(out).output().unwrap();
        assert_success(&out);
        json(&out)
    };
    let twice = run(&[&l15, &copy], &d.join("twice"));
    assert_eq!(twice["locks"].as_array().unwrap().len(), 1, "{twice}");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("twice/index.json")).unwrap()).unwrap();
    assert!(
        index["annotations"].get("io.pgoci.locks").is_none(),
        "{index}"
    );

    // 15, 15 again, then 18: two locks, each artifact labelled with its own major.
    let doc = run(&[&l15, &copy, &l18], &d.join("site"));
    assert_eq!(doc["locks"].as_array().unwrap().len(), 2, "{doc}");
    let out = pgoci(&bed.profile, &bed.registry, &d.join("cache"))
        .args(["--json", "bundle", "inspect"])
        .arg(d.join("site"))
        .output()
        .unwrap();
    assert_success(&out);
    let majors: Vec<u64> = json(&out)["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["server"]["major"].as_u64().unwrap())
        .collect();
    assert_eq!(majors, [15, 18]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("site/index.json")).unwrap()).unwrap();
    let lock18 = pgoci::lock::Lock::read(&l18).unwrap();
    for pinned in lock18.artifacts() {
        let listed = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["digest"] == pinned.digest.to_string())
            .unwrap_or_else(|| panic!("{} not listed: {index}", pinned.digest));
        assert_eq!(listed["annotations"]["io.pgoci.major"], "18", "{listed}");
    }
    pgoci(&bed.profile, &bed.registry, &d.join("cache"))
        .args(["bundle", "verify"])
        .arg(d.join("site"))
        .assert()
        .success();
}

/// A small tmpfs mounted for a test, unmounted when it ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs at {}", at.display());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_during_export_is_the_hosts_naming_the_place_and_leaves_nothing() {
    let dir = scratch();
    let d = dir.path();
    let lock = lock15(d);
    let small = d.join("small");
    let _mounted = Tmpfs::mount(&small, "1m");
    for target in ["out", "out.tar"] {
        let path = small.join(target);
        let out = export(d, d, &lock, path.to_str().unwrap());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{target}: {err}");
        let line = err.lines().find(|l| l.starts_with("error:")).unwrap();
        assert!(line.contains(&path.display().to_string()), "{line}");
        assert!(
            line.contains(&format!("mounted at {} is full", small.display())),
            "{line}"
        );
        assert!(err.lines().any(|l| l.starts_with("hint:")), "{err}");
        assert!(tree(&small).is_empty(), "left {:?}", tree(&small));
    }
}

#[test]
fn the_prefix_lock_is_never_a_planted_symlink_and_no_wait_still_says_busy() {
    use pgoci::install::{exclusive, layout::HostLayout};
    let bed = bed();
    let dir = scratch();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let lock = exclusive::lock_path(&HostLayout::new(&root, Path::new("/opt/pgoci")));
    let gc = |extra: &[&str]| {
        pgoci(&bed.profile, &bed.registry, &dir.path().join("cache"))
            .args(["gc", "--yes"])
            .args(extra)
            .arg("--root")
            .arg(&root)
            .output()
            .unwrap()
    };
    // Made by pgoci: a regular file only root may open.
    assert_success(&gc(&[]));
    let meta = std::fs::symlink_metadata(&lock).unwrap();
    assert!(meta.is_file());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );

    // Planted as a symlink (to a file that does not exist yet): refused,
    // and the link's target is not created.
    std::fs::remove_file(&lock).unwrap();
    let victim = dir.path().join("victim");
    std::os::unix::fs::symlink(&victim, &lock).unwrap();
    let out = gc(&[]);
    std::fs::remove_file(&lock).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains(&lock.display().to_string()), "{err}");
    assert!(err.contains("symlink"), "{err}");
    assert!(!victim.exists(), "the planted link's target was created");

    // Held by another: --no-wait is exit 6.
    assert_success(&gc(&[]));
    let held = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
    fs4::fs_std::FileExt::lock_exclusive(&held).unwrap();
    let out = gc(&["--no-wait"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("another pgoci is changing"), "{err}");
    drop(held);
    std::fs::remove_file(&lock).unwrap();
}

#[test]
fn an_export_after_a_pull_needs_no_registry_and_carries_what_travels_beside() {
    let a = crate::republish::Attached::start("edges-offline");
    let dir = scratch();
    let d = dir.path();
    let lock = d.join("17.lock");
    pgoci(&a.profile, &a.registry, &d.join("cache"))
        .args(["resolve", "--major", "17", "--ext", "hstore", "-o"])
        .arg(&lock)
        .assert()
        .success();
    let out = pgoci(&a.profile, &a.registry, &d.join("cache"))
        .args(["--json", "pull", "--lock"])
        .arg(&lock)
        .output()
        .unwrap();
    assert_success(&out);
    let pulled = json(&out);
    // The same export while the registry answers, from a cache of its own.
    let online = d.join("online.tar");
    pgoci(&a.profile, &a.registry, &d.join("other-cache"))
        .args(["bundle", "export", "--lock"])
        .arg(&lock)
        .arg("-o")
        .arg(&online)
        .assert()
        .success();

    a.stop();
    let offline = d.join("offline.tar");
    let out = pgoci(&a.profile, &a.registry, &d.join("cache"))
        .args(["--json", "bundle", "export", "--lock"])
        .arg(&lock)
        .arg("-o")
        .arg(&offline)
        .output()
        .unwrap();
    assert_success(&out);
    assert!(json(&out)["companions"].as_u64().unwrap() > 0);
    assert_eq!(pulled["companions"], json(&out)["companions"], "{pulled}");
    // The index, signatures, attestation and SBOMs: the same bundle, byte
    // for byte, as the registry would have given.
    assert!(
        std::fs::read(&online).unwrap() == std::fs::read(&offline).unwrap(),
        "the bundle exported from the warm cache differs"
    );
    let out = pgoci(&a.profile, &a.registry, &d.join("cache"))
        .args(["--json", "bundle", "inspect"])
        .arg(&offline)
        .output()
        .unwrap();
    let companions = json(&out)["companions"].as_array().unwrap().clone();
    for (role, suffix) in [("index", "/pgoci/postgresql:17"), ("referrer", "")] {
        assert!(
            companions
                .iter()
                .any(|c| c["role"] == role && c["reference"].as_str().unwrap().ends_with(suffix)),
            "{role} {suffix}: {companions:#?}"
        );
    }
    // --images-only still leaves them out (and asks no registry either).
    let bare = d.join("bare.tar");
    let out = pgoci(&a.profile, &a.registry, &d.join("cache"))
        .args(["--json", "bundle", "export", "--images-only", "--lock"])
        .arg(&lock)
        .arg("-o")
        .arg(&bare)
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(json(&out)["companions"], 0);
    let out = pgoci(&a.profile, &a.registry, &d.join("cache"))
        .args(["--json", "bundle", "inspect"])
        .arg(&bare)
        .output()
        .unwrap();
    assert!(json(&out)["companions"].as_array().unwrap().is_empty());
}
