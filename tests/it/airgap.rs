//! The air-gap round trip: export with registry A up; stop A; on the far
//! side (another cache, no registry) verify, doctor and install from the
//! bundle; push the bundle into the site's registry B; resolve and install
//! from B and get the same digests as from A.

use crate::support::*;

#[test]
fn export_carry_verify_install_push_and_reinstall_from_the_site_registry() {
    let a = OwnRegistry::clone_of(bed(), "airgap-a");
    let dir = scratch();
    let d = dir.path();
    let bundle = d.join("carry.tar");
    let lock_a = d.join("a.lock");
    pgoci(&a.profile, &a.registry, &d.join("cache-a"))
        .args(["resolve", "--major", "15", "--ext", "pg_cron", "-o"])
        .arg(&lock_a)
        .assert()
        .success();
    pgoci(&a.profile, &a.registry, &d.join("cache-a"))
        .args(["bundle", "export", "--lock"])
        .arg(&lock_a)
        .arg("-o")
        .arg(&bundle)
        .assert()
        .success();
    a.stop();

    // The far side: a fresh cache, and a registry address that does not answer.
    let dead = format!("127.0.0.1:{}", free_port());
    let far = |args: &[&str]| {
        let mut cmd = pgoci(&a.profile, &dead, &d.join("cache-far"));
        cmd.args(args);
        cmd
    };
    far(&["bundle", "verify"]).arg(&bundle).assert().success();
    let port = free_port();
    let out = far(&["--json", "doctor", "--port", &port.to_string(), "--bundle"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_success(&out);
    let checks = json(&out)["checks"].clone();
    let names: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for want in ["platform", "integrity", "libraries", "port"] {
        assert!(names.contains(&want), "{checks}");
    }
    let root = d.join("root");
    let out = far(&[
        "--json",
        "install",
        "--yes",
        "--instance",
        "far",
        "--port",
        &port.to_string(),
        "--root",
    ])
    .arg(&root)
    .arg("--bundle")
    .arg(&bundle)
    .output()
    .unwrap();
    assert_success(&out);
    let mut servers = Servers::of(&root, "far");
    psql(
        &root.join("run/pgoci/far"),
        port,
        "CREATE EXTENSION pg_cron",
    )
    .unwrap();
    // The licence texts pg_cron's image carried, in the generation, listed.
    let out = far(&["--json", "status", "--instance", "far", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert_success(&out);
    let licenses = json(&out)["instances"][0]["licenses"].clone();
    assert_eq!(licenses[0]["extension"], "pg_cron", "{licenses}");
    let file = licenses[0]["files"][0].as_str().unwrap();
    assert_eq!(file, "licenses/pg_cron/copyright", "{licenses}");
    let gen = root.join("opt/pgoci/instances/far/current");
    assert!(std::fs::read_to_string(gen.join(file))
        .unwrap()
        .contains("pg_cron"));
    let out = far(&["status", "--instance", "far", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("licenses of pg_cron:")
                && l.ends_with("/licenses/pg_cron/copyright")),
        "{text}"
    );

    // The site's own registry B, empty; the bundle goes in with its digests.
    let b_state = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bed-airgap-b");
    let b = bed_sh(&["registry-only", b_state.to_str().unwrap()])
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("REGISTRY=").map(str::to_string))
        .unwrap();
    let _b_guard = StopOnDrop(b_state.clone());
    let out = pgoci(&a.profile, &b, &d.join("cache-far"))
        .args(["--json", "bundle", "push", "--to", &format!("{b}/site")])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_success(&out);
    let pushed = json(&out);
    assert_eq!(pushed["artifacts"].as_array().unwrap().len(), 2);

    // Resolve from B (a profile naming B) gives the same artifact digests.
    let profile_b = d.join("b.yaml");
    let text = std::fs::read_to_string(&a.profile)
        .unwrap()
        .replace(&a.registry, &format!("{b}/site"));
    std::fs::write(&profile_b, text).unwrap();
    let lock_b = d.join("b.lock");
    pgoci(&profile_b, &b, &d.join("cache-b"))
        .args(["resolve", "--major", "15", "--ext", "pg_cron", "-o"])
        .arg(&lock_b)
        .assert()
        .success();
    let digests = |p: &std::path::Path| -> Vec<String> {
        let lock = pgoci::lock::Lock::read(p).unwrap();
        lock.blobs()
            .into_iter()
            .map(|b| b.digest.to_string())
            .collect()
    };
    assert_eq!(digests(&lock_a), digests(&lock_b));
    // More: the whole lock is the origin's, byte for byte, but for the
    // names the site gave (its registry, hence its profile's digest).
    let profile_digest = |p: &std::path::Path| {
        pgoci::digest::Digest::of_bytes(&std::fs::read(p).unwrap()).to_string()
    };
    let renamed = std::fs::read_to_string(&lock_a)
        .unwrap()
        .replace(&a.registry, &format!("{b}/site"))
        .replace(&profile_digest(&a.profile), &profile_digest(&profile_b));
    assert_eq!(renamed, std::fs::read_to_string(&lock_b).unwrap());

    let port_b = free_port();
    let out = pgoci(&profile_b, &b, &d.join("cache-b"))
        .args([
            "--json",
            "install",
            "--yes",
            "--instance",
            "site",
            "--port",
            &port_b.to_string(),
            "--lock",
        ])
        .arg(&lock_b)
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    assert_success(&out);
    servers.0.push(instance_server(&root, "site"));
    psql(
        &root.join("run/pgoci/site"),
        port_b,
        "CREATE EXTENSION pg_cron",
    )
    .unwrap();
    // Same artifacts: one store entry each, shared by both instances.
    assert_eq!(
        std::fs::read_dir(root.join("opt/pgoci/store"))
            .unwrap()
            .filter(|e| {
                let e = e.as_ref().unwrap();
                e.path().is_dir() && e.file_name() != "layers"
            })
            .count(),
        2
    );
}

/// Stops a bed registry when the test ends.
struct StopOnDrop(std::path::PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bed/bed.sh"))
            .arg("down")
            .arg(&self.0)
            .output();
    }
}
