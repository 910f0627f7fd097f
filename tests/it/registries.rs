//! Registries as users have them: TLS with a private CA, basic auth with
//! credentials from every documented source, and secrets kept out of sight.

use crate::support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const USER: &str = "pgoci";
const PASSWORD: &str = "pgoci-secret-pw";

/// pgoci against the secure registry: its CA, no --insecure-registry.
fn secure_pgoci(reg: &OwnRegistry, cache: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("pgoci").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", cache) // no ~/.docker/config.json unless a test writes one
        .env("PGOCI_CACHE_DIR", cache)
        .arg("--profile")
        .arg(&reg.profile)
        .arg("--ca-file")
        .arg(reg.ca_file());
    cmd
}

/// `resolve` of PG 15 + pg_cron; the output path follows.
const RESOLVE: [&str; 6] = ["resolve", "--major", "15", "--ext", "pg_cron", "-o"];

#[test]
fn tls_and_basic_auth_with_every_credential_source() {
    let reg = OwnRegistry::secure_of(bed(), "secure");
    let dir = scratch();
    let d = dir.path();

    // 1. --creds
    let lock = d.join("flag.lock");
    secure_pgoci(&reg, d)
        .arg("--creds")
        .arg(format!("{USER}:{PASSWORD}"))
        .args(RESOLVE)
        .arg(&lock)
        .assert()
        .success();
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(
        !text.contains(PASSWORD),
        "the secret never reaches the lock"
    );

    // 2. environment variables; then a pull over TLS with them.
    secure_pgoci(&reg, d)
        .env("PGOCI_REGISTRY_USER", USER)
        .env("PGOCI_REGISTRY_PASSWORD", PASSWORD)
        .args(["pull", "--lock"])
        .arg(&lock)
        .assert()
        .success();

    // 3. REGISTRY_AUTH_FILE with `auths`.
    let auth_file = d.join("auth.json");
    let encoded = base64(&format!("{USER}:{PASSWORD}"));
    std::fs::write(
        &auth_file,
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{encoded}"}}}}}}"#,
            reg.registry
        ),
    )
    .unwrap();
    secure_pgoci(&reg, d)
        .env("REGISTRY_AUTH_FILE", &auth_file)
        .args(RESOLVE)
        .arg(d.join("a.lock"))
        .assert()
        .success();

    // 4. ~/.docker/config.json with a credential helper (a tiny script on PATH).
    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-pgocitest");
    std::fs::write(
        &helper,
        format!("#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread host\n[ \"$host\" = \"{}\" ] || exit 1\necho '{{\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n", reg.registry),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = d.join("home");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    std::fs::write(
        home.join(".docker/config.json"),
        format!(r#"{{"credHelpers": {{"{}": "pgocitest"}}}}"#, reg.registry),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    secure_pgoci(&reg, d)
        .env("HOME", &home)
        .env("PATH", &path)
        .args(RESOLVE)
        .arg(d.join("h.lock"))
        .assert()
        .success();
    let same = |a: &str| std::fs::read_to_string(d.join(a)).unwrap();
    assert_eq!(same("a.lock"), same("flag.lock"));
    assert_eq!(same("h.lock"), same("flag.lock"));

    // A wrong password: exit 4, says 401 and where the credentials came from, never the secret.
    let out = secure_pgoci(&reg, d)
        .env("REGISTRY_AUTH_FILE", {
            let f = d.join("wrong.json");
            std::fs::write(
                &f,
                format!(
                    r#"{{"auths": {{"{}": {{"auth": "{}"}}}}}}"#,
                    reg.registry,
                    base64("pgoci:not-the-password")
                ),
            )
            .unwrap();
            f
        })
        .arg("--json")
        .args(RESOLVE)
        .arg("-")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("401"), "{all}");
    assert!(
        all.contains("wrong.json"),
        "names the credential source: {all}"
    );
    assert!(!all.contains("not-the-password"), "{all}");

    let out = secure_pgoci(&reg, d)
        .arg("--creds")
        .arg(format!("{USER}:nope-{PASSWORD}"))
        .arg("-v")
        .args(RESOLVE)
        .arg("-")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("credentials from --creds") && !err.contains(PASSWORD),
        "{err}"
    );

    // Without the CA: a TLS error that points at --ca-file.
    let out = assert_cmd::Command::cargo_bin("pgoci")
        .unwrap()
        .env("PGOCI_CACHE_DIR", d)
        .arg("--profile")
        .arg(&reg.profile)
        .args(RESOLVE)
        .arg("-")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ca-file"));
}

/// The system's CA roots are read only when a TLS registry is used: on a
/// host without any (`SSL_CERT_FILE` naming no file stands for one), a
/// plain-HTTP run says nothing about them, and a TLS registry still works
/// with --ca-file (with a warning that others need it too).
#[test]
fn ca_roots_are_read_only_for_tls() {
    let dir = scratch();
    let d = dir.path();
    let no_roots = d.join("no-ca-bundle.pem");
    let bed = bed();
    let out = pgoci(&bed.profile, &bed.registry, &d.join("plain"))
        .env("SSL_CERT_FILE", &no_roots)
        .env_remove("SSL_CERT_DIR")
        .args(["resolve", "--major", "17", "--ext", "hstore", "-o", "-"])
        .output()
        .unwrap();
    assert_success(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("CA certificates"),
        "plain HTTP read the CA roots: {err}"
    );

    let reg = OwnRegistry::secure_of(bed, "secure-no-roots");
    let out = secure_pgoci(&reg, d)
        .env("SSL_CERT_FILE", &no_roots)
        .arg("--creds")
        .arg(format!("{USER}:{PASSWORD}"))
        .args(RESOLVE)
        .arg("-")
        .output()
        .unwrap();
    assert_success(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no CA certificates"), "{err}");
}

/// Standard base64, for auth files.
fn base64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
